"""What a court report states about one match record: the record, its calibration, its scans and figures.

:func:`assemble_report` gathers everything :mod:`ballistics.report_html` renders, in the order a
statement is read: who and what (lab, case, exhibits, examiner, reviewer, dates), the question
and the two propositions, the method (software, every parameter, the calibration with its
validation figures), the results, the likelihood ratio in numbers and words, the examiner's
conclusion, the figures, and the SHA-256 of every scan, of the record and of every figure.

The figures are drawn again from the scans, found by SHA-256 in the collection's scan store, at
the path the record names, or beside the record file; each candidate is hashed before it is
used. The comparison is recomputed with the record's own parameters and the result is checked
against the record. A record whose scans are not here (a partner's record sent without them)
still gives a report: it says that the figures could not be drawn and why, rather than failing.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ballistics import SOFTWARE_NAME
from ballistics.clock import format_time
from ballistics.errors import BallisticsError
from ballistics.records import MatchRecord, migrate_v1, record_bytes

if TYPE_CHECKING:
    from ballistics.calibration import Calibration
    from ballistics.compare import Comparison
    from ballistics.scan import Scan

SIDES = ("reference", "questioned")


@dataclass(frozen=True)
class Figure:
    """One figure of the report: a PNG, its title and caption."""

    title: str
    caption: str
    png: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()

    @property
    def width_mm(self) -> float:
        """The width the figure was drawn for (millimetres): its pixels at the figures' resolution (PNG header, big-endian)."""
        from ballistics.plots import DPI

        return int.from_bytes(self.png[16:20], "big") / DPI * 25.4


@dataclass(frozen=True)
class ScanSource:
    """Where a scan of the record was found (its SHA-256 checked), or why it was not."""

    side: str
    sha256: str
    name: str
    path: Path | None
    found_in: str | None  # "the collection", "the path in the record", "beside the record"


@dataclass(frozen=True)
class Recomputation:
    """The comparison made again from the scans with the record's parameters, for the figures."""

    comparison: Comparison
    #: Differences from the record, in words (empty when the recomputation agrees).
    differences: tuple[str, ...]

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """CMC counts under both rules (``original``, ``high``), forward and backward (cells)."""
        details = self.comparison.details
        assert details is not None
        tol = details.params.rotation_deg
        return {
            "original": {"forward": details.forward_rules.original.count, "backward": details.backward_rules.original.count},
            "high": {"forward": details.forward_rules.high.count(tol), "backward": details.backward_rules.high.count(tol)},
        }


@dataclass(frozen=True)
class Report:
    """Everything the report states (see the module's docstring)."""

    record: MatchRecord
    #: SHA-256 of the record's stored form (:func:`ballistics.records.record_bytes`).
    record_sha256: str
    #: The record as the user named it: a file, or its id in the collection.
    record_source: str
    calibration: Calibration | None
    #: Why the calibration's validation figures are not stated, when they are not.
    calibration_note: str | None
    scans: tuple[ScanSource, ScanSource]
    recomputation: Recomputation | None
    figures: tuple[Figure, ...]
    #: Why figures of the comparison are missing, when they are.
    figures_note: str | None
    generated: str
    software: dict[str, str]


def record_sha256(record: Mapping[str, Any]) -> str:
    """SHA-256 of a record's stored form: the bytes ``compare --record`` writes and the collection keeps."""
    return hashlib.sha256(record_bytes(record)).hexdigest()


def find_calibration(record: Mapping[str, Any], candidates: Sequence[Callable[[], Calibration]]) -> tuple[Calibration | None, str | None]:
    """The calibration the record's LR names (by SHA-256) among ``candidates`` (loaded in turn), or why none.

    A candidate that cannot be read is passed over (its reason kept): the report states the
    calibration it could find, or says which one is missing.
    """
    statement = record.get("likelihood_ratio")
    if statement is None:
        return None, "the record states no likelihood ratio, so no calibration applies"
    wanted = statement["calibration"]["sha256"]
    problems = []
    for load in candidates:
        try:
            calibration = load()
        except BallisticsError as exc:
            problems.append(f"{exc.path}: {exc.reason}")
            continue
        if calibration.sha256 == wanted:
            return calibration, None
    detail = f" ({'; '.join(problems)})" if problems else ""
    return None, (
        f"the calibration the likelihood ratio was computed with (id {statement['calibration']['id']}, SHA-256 {wanted}) "
        f"is not available to this software (give it with --calibration){detail}: its validation figures are not stated here"
    )


def find_scans(record: Mapping[str, Any], stored: Callable[[str], Path | None], record_file: Path | None) -> tuple[ScanSource, ScanSource]:
    """Each scan of the record, looked for in the collection (``stored``), at its recorded path, beside the record.

    A candidate counts only when its SHA-256 is the record's.
    """
    from ballistics.scan import sha256_file

    out = []
    for side in SIDES:
        ref = record["scans"][side]
        sha, name = ref["sha256"], ref.get("name") or record["exhibits"][side]
        candidates: list[tuple[Path | None, str]] = [(stored(sha), "the collection")]
        if ref.get("path"):
            candidates.append((Path(ref["path"]), "the path in the record"))
        if record_file is not None and ref.get("name"):
            candidates.append((record_file.parent / Path(ref["name"]).name, "beside the record"))
        found: tuple[Path | None, str | None] = (None, None)
        for path, where in candidates:
            try:
                if path is not None and path.is_file() and sha256_file(path) == sha:
                    found = (path, where)
                    break
            except OSError:
                continue
        out.append(ScanSource(side, sha, name, *found))
    return out[0], out[1]


def recompute(record: Mapping[str, Any], scans: tuple[Scan, Scan]) -> Recomputation:
    """The comparison made again with the record's parameters, and how it differs from the record."""
    from ballistics.compare import compare
    from ballistics.method import CmcParams, DecisionParams, PreprocessParams

    parameters = record["comparison"]["method"]["parameters"]

    def fields(stage: str) -> dict[str, Any]:  # JSON lists back to the tuples the dataclasses hold
        return {key: tuple(value) if isinstance(value, list) else value for key, value in parameters[stage].items()}

    preprocess = PreprocessParams(**fields("preprocess"))
    cmc = CmcParams(**fields("cmc"))
    decision = DecisionParams(**parameters["decision"])
    result = compare(scans[0], scans[1], preprocess=preprocess, cmc=cmc, decision=decision)
    scores = record["scores"]
    differences = []
    for key, value in (
        ("cmc", result.cmc),
        ("cmc_original", result.cmc_original),
        ("cmc_high", result.cmc_high),
        ("cmc_forward", result.cmc_forward),
        ("cmc_backward", result.cmc_backward),
    ):
        if key in scores and scores[key] != value:
            differences.append(f"{key} {value} (the record states {scores[key]})")
    if abs(float(scores["rotation_deg"]) - result.rotation_deg) > 0.01:
        differences.append(f"rotation {result.rotation_deg:.2f}° (the record states {float(scores['rotation_deg']):.2f}°)")
    return Recomputation(result, tuple(differences))


def _png(draw: Callable[[Path], Path]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ballistics-report-") as folder:
        return draw(Path(folder) / "figure.png").read_bytes()


def comparison_figures(
    record: Mapping[str, Any], sources: tuple[ScanSource, ScanSource]
) -> tuple[Recomputation | None, tuple[Figure, ...], str | None]:
    """The comparison made again from the scans and its figures (the scans, the congruent cells), or why they cannot be drawn."""
    from ballistics.identifiers import Identifiers
    from ballistics.plots import comparison_figure, crop_figure
    from ballistics.scan import load_scan

    missing = [s for s in sources if s.path is None]
    if missing:
        names = " and ".join(f"the {s.side} scan ({s.name}, SHA-256 {s.sha256})" for s in missing)
        return (
            None,
            (),
            (
                f"{names} {'is' if len(missing) == 1 else 'are'} not available here (not in the collection, not at the path the record "
                "names, not beside the record): the figures of the comparison could not be drawn. The results above are those the "
                "record states."
            ),
        )
    try:
        scans = (load_scan(sources[0].path), load_scan(sources[1].path))  # type: ignore[arg-type]
        again = recompute(record, scans)
    except (BallisticsError, TypeError, KeyError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, BallisticsError) else f"{type(exc).__name__}: {exc}"
        return (
            None,
            (),
            f"the scans are here but the comparison could not be made again with the record's parameters ({reason}): no figures",
        )
    labels = tuple(f"{record['case_id']}/{record['exhibits'][side]}" for side in SIDES)
    faces = again.comparison.surfaces
    assert faces is not None
    crops = _png(lambda path: crop_figure([(scans[k], faces[k], f"{SIDES[k]}: {labels[k]}") for k in range(2)], path))
    # The figure names the case and each exhibit as the record does (never the store's SHA-256 file names).
    identifiers = Identifiers(record["exhibits"]["reference"], record["exhibits"]["questioned"], record["case_id"])
    cells = _png(lambda path: comparison_figure(again.comparison, path, identifiers=identifiers))
    figures = (
        Figure(
            "The scans compared",
            "Each scan as received, with the breech face compared (green), the primer's edge and the crop (pink) and the firing-pin "
            "zone removed (hatched).",
            crops,
        ),
        Figure(
            "Congruent matching cells",
            "Top: both prepared surfaces with their height scales. Bottom left: the reference in shaded relief with its cells and "
            "the questioned case registered onto it, congruent cells in green and the others in orange; bottom right: each "
            "cell's best registration (dx, dy; colour: its angle; size: its correlation) with the tolerance box dashed, and the "
            "CMC counts against the identification and elimination thresholds. Drawn from the scans with the record's parameters.",
            cells,
        ),
    )
    return again, figures, None


def calibration_figure(calibration: Calibration) -> Figure:
    """The Tippett plot of the calibration's held-out LRs (its validation)."""
    from ballistics.plots import tippett_figure

    png = _png(
        lambda path: tippett_figure(calibration.held_out_log10_lr, calibration.pairs.labels, calibration.bounds_log10, path, "Calibration:")
    )
    return Figure(
        "Validation of the calibration",
        "Share of the reference pairs (each scored by a system fitted without its firearms) whose likelihood ratio is at or above "
        "each value: same-source pairs in green, different-source pairs in orange; the calibration's bounds dotted, LR = 1 dashed.",
        png,
    )


def assemble_report(
    record: MatchRecord,
    *,
    record_source: str,
    record_file: Path | None,
    stored_scan: Callable[[str], Path | None],
    calibrations: Sequence[Callable[[], Calibration]],
    generated: datetime | None = None,
) -> Report:
    """Everything a report of ``record`` states (a version-1 record is stated as version 2).

    ``stored_scan`` finds a scan in the collection by SHA-256; ``calibrations`` load the
    candidate calibrations in order of preference (the one the record's LR names is used).
    """
    from ballistics import __version__

    stated = migrate_v1(record) if record["schema_version"] == 1 else record
    calibration, calibration_note = find_calibration(stated, calibrations)
    sources = find_scans(stated, stored_scan, record_file)
    again, figures, figures_note = comparison_figures(stated, sources)
    if calibration is not None:
        figures = (*figures, calibration_figure(calibration))
    return Report(
        record=stated,
        record_sha256=record_sha256(record),
        record_source=record_source,
        calibration=calibration,
        calibration_note=calibration_note,
        scans=sources,
        recomputation=again,
        figures=figures,
        figures_note=figures_note,
        generated=format_time(generated),
        software={"name": SOFTWARE_NAME, "version": __version__},
    )
