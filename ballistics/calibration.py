"""Calibrations: the versioned document that turns a comparison's score into a likelihood ratio.

A calibration states everything a court or a partner lab needs to weigh an LR quoted from it:
the score it calibrates (the deciding CMC count, or CMC fused with the registered correlation),
the calibrator and its fitted parameters, the empirical bounds, the propositions and the
relevant population, the reference set (firearms, pair counts, SHA-256 of every scan, make, model
and calibre where known, provenance and licence), the metrics of its leave-firearms-out
validation, and the software that built it. The reference pairs themselves are inside, so the
system is refitted from the document alone and checked against the bounds it states; the
SHA-256 of the file's bytes identifies it wherever an LR is quoted.

A default calibration built from the Fadul and Weller known cases ships with the package
(``calibrations/default.json``); ``calibration.json`` in a lab's home replaces it, and
``--calibration FILE`` replaces both (docs/likelihood-ratios.md).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np

from ballistics import SOFTWARE_NAME, lr
from ballistics.clock import format_time
from ballistics.errors import CalibrationError
from ballistics.files import read_bounded, write_atomic
from ballistics.method import CmcParams, DecisionParams
from ballistics.validate import PairResult

FORMAT = "ballistics-calibration"
VERSION = 1
#: A lab's own calibration, in its home, replaces the packaged default.
HOME_FILE = "calibration.json"
#: Calibrations carry their reference pairs; a larger file is refused before it is parsed.
MAX_BYTES = 32 * 1024 * 1024
#: The comparison parameters that change the score a calibration was fitted to: an LR is given
#: only when a comparison used the same values (the search's speed settings do not count).
SCORING_PARAMETERS = ("cells", "region_factor", "max_missing", "translation_um", "rotation_deg", "ccf_threshold", "tau", "full_circle")
_ROWS = "<pair rows, one per line>"
SAME_SOURCE = "The reference and the questioned cartridge cases were fired by the same firearm."
DIFFERENT_SOURCE = "The reference and the questioned cartridge cases were fired by two different firearms of the relevant population."


@dataclass(frozen=True)
class ReferenceScan:
    """One scan of the reference set: its SHA-256, file name and firearm, and what is known of the firearm."""

    sha256: str
    name: str
    firearm: str
    make: str | None = None
    model: str | None = None
    calibre: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "name": self.name,
            "firearm": self.firearm,
            "make": self.make,
            "model": self.model,
            "calibre": self.calibre,
        }


@dataclass(frozen=True)
class ReferenceSet:
    """What the calibration was fitted to."""

    description: str
    scans: tuple[ReferenceScan, ...]
    same_source_pairs: int
    different_source_pairs: int
    provenance: str | None = None
    licence: str | None = None

    @property
    def firearms(self) -> int:
        return len({s.firearm for s in self.scans})

    @cached_property
    def sha256s(self) -> frozenset[str]:
        return frozenset(s.sha256 for s in self.scans)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "firearms": self.firearms,
            "same_source_pairs": self.same_source_pairs,
            "different_source_pairs": self.different_source_pairs,
            "provenance": self.provenance,
            "licence": self.licence,
            "scans": [s.to_dict() for s in self.scans],
        }


@dataclass(frozen=True)
class Calibration:
    """A score-to-LR calibration (see the module's docstring); :meth:`to_bytes` is its file."""

    calibration_id: str
    created: str
    score: lr.Score
    calibrator: lr.Calibrator
    parameters: dict[str, Any]
    bounds_log10: tuple[float, float]
    relevant_population: str
    reference: ReferenceSet
    method: dict[str, Any]
    metrics: lr.LrMetrics
    candidates: dict[str, float]
    software: dict[str, str]
    pairs: lr.ReferencePairs
    #: Each reference pair's log10 LR from a system fitted without its firearms (the validation).
    held_out_log10_lr: np.ndarray = field(repr=False)
    propositions: tuple[str, str] = (SAME_SOURCE, DIFFERENT_SOURCE)

    def to_dict(self) -> dict[str, Any]:
        names = self.pairs.feature_names
        rows = [
            [int(a), int(b), *(int(v) if n == "cmc" else round(float(v), 5) for n, v in zip(names, f, strict=True)), round(float(h), 4)]
            for a, b, f, h in zip(self.pairs.firearm_a, self.pairs.firearm_b, self.pairs.features, self.held_out_log10_lr, strict=True)
        ]
        return {
            "format": FORMAT,
            "version": VERSION,
            "calibration_id": self.calibration_id,
            "created": self.created,
            "score": {"name": self.score, "features": list(lr.SCORE_FEATURES[self.score])},
            "calibrator": {"name": self.calibrator, "library": "lir 1.3", "parameters": self.parameters},
            "bounds_log10": {"method": "ELUB (Vergeer et al. 2016), one misleading pair added each side", "value": list(self.bounds_log10)},
            "propositions": {"same_source": self.propositions[0], "different_source": self.propositions[1]},
            "relevant_population": self.relevant_population,
            "reference_set": self.reference.to_dict(),
            "method": self.method,
            "validation": {
                "scheme": "leave firearms out: each pair scored by a system fitted without any pair of either of its firearms",
                "metrics": self.metrics.to_dict(),
                "candidates_cllr": self.candidates,
            },
            "software": self.software,
            "pairs": {
                "firearms": list(self.pairs.firearms),
                "columns": ["firearm_a", "firearm_b", *names, "held_out_log10_lr"],
                "rows": rows,
            },
        }

    def to_bytes(self) -> bytes:
        """The file: UTF-8 JSON, keys sorted, one pair per line; its SHA-256 identifies the calibration."""
        doc = self.to_dict()
        rows, doc["pairs"]["rows"] = doc["pairs"]["rows"], _ROWS
        text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
        if text.count(f'"{_ROWS}"') != 1:
            raise CalibrationError(None, "a text field of the calibration holds the placeholder of its pair rows")
        body = "[\n" + ",\n".join("   " + json.dumps(r) for r in rows) + "\n  ]"
        return (text.replace(f'"{_ROWS}"', body) + "\n").encode("utf-8")

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @cached_property
    def system(self) -> lr.LrSystem:
        """The LR system, refitted from the reference pairs."""
        return lr.fit(self.pairs, self.score, self.calibrator)

    def check_method(self, method: Mapping[str, Any]) -> str | None:
        """Why a comparison made with ``method`` (``Comparison.method``) cannot use this calibration, or None."""
        ours, theirs = self.method, {"cmc": dict(method.get("cmc", {})), "rule": method.get("decision", {}).get("rule")}
        if ours["rule"] != theirs["rule"]:
            return f"the comparison's deciding rule is '{theirs['rule']}', the calibration's '{ours['rule']}'"
        for key in SCORING_PARAMETERS:
            if ours["cmc"].get(key) != theirs["cmc"].get(key):
                return f"the comparison's {key} is {theirs['cmc'].get(key)!r}, the calibration's {ours['cmc'].get(key)!r}"
        return None


def scoring_method(cmc: CmcParams, decision: DecisionParams) -> dict[str, Any]:
    """The part of a method that a calibration's scores depend on."""
    params = cmc.to_dict()
    return {"cmc": {key: params[key] for key in SCORING_PARAMETERS}, "rule": decision.rule}


def reference_pairs(results: Sequence[PairResult]) -> tuple[lr.ReferencePairs, tuple[ReferenceScan, ...]]:
    """The pairs of a validation (or a pairs CSV) as reference pairs, and the scans they involve.

    A pair without a correlation (no overlap after registration) has ``ccf`` 0.
    """
    scans: dict[str, ReferenceScan] = {}
    for p in results:
        if not (p.reference_firearm and p.questioned_firearm and p.reference_sha256 and p.questioned_sha256):
            raise CalibrationError(p.reference, "a reference pair needs both firearms and both SHA-256 (a pairs CSV of this version)")
        for name, firearm, sha in (
            (p.reference, p.reference_firearm, p.reference_sha256),
            (p.questioned, p.questioned_firearm, p.questioned_sha256),
        ):
            scans.setdefault(sha, ReferenceScan(sha, name, firearm))
    firearms = tuple(sorted({s.firearm for s in scans.values()}))
    index = {f: i for i, f in enumerate(firearms)}
    pairs = lr.ReferencePairs(
        firearms=firearms,
        firearm_a=np.array([index[cast(str, p.reference_firearm)] for p in results], dtype=int),
        firearm_b=np.array([index[cast(str, p.questioned_firearm)] for p in results], dtype=int),
        features=np.array([[p.cmc, 0.0 if p.ccf is None else p.ccf] for p in results], dtype=float),
        feature_names=("cmc", "ccf"),
    )
    return pairs, tuple(sorted(scans.values(), key=lambda s: (s.firearm, s.name)))


def build_calibration(
    pairs: lr.ReferencePairs,
    scans: Sequence[ReferenceScan],
    *,
    method: dict[str, Any],
    description: str,
    relevant_population: str,
    score: lr.Score | None = None,
    calibrator: lr.Calibrator | None = None,
    provenance: str | None = None,
    licence: str | None = None,
    created: datetime | None = None,
) -> Calibration:
    """Choose (unless given), validate and fit a calibration on labelled reference pairs.

    With ``score`` or ``calibrator`` unset, every candidate is validated leaving firearms out and
    the lowest Cllr wins (:func:`ballistics.lr.choose`); the fused CMC + correlation score only
    when it lowers the Cllr of the CMC count alone.
    """
    from ballistics import __version__

    labels = pairs.labels
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise CalibrationError(None, "the reference pairs need same-source and different-source pairs")
    if np.unique(np.concatenate([pairs.firearm_a, pairs.firearm_b])).size < 4:
        raise CalibrationError(
            None, "leaving out both firearms of a different-source pair needs at least four firearms in the reference set"
        )
    try:
        chosen_score, chosen_calibrator, candidates = lr.choose(
            pairs, lr.SCORES if score is None else (score,), lr.CALIBRATORS if calibrator is None else (calibrator,)
        )
        held_out = lr.held_out_llrs(pairs, chosen_score, chosen_calibrator)
    except ValueError as exc:  # a fold left without one kind of pair
        raise CalibrationError(None, f"cannot leave firearms out on this reference set: {exc}") from None
    system = lr.fit(pairs, chosen_score, chosen_calibrator)
    return Calibration(
        calibration_id=str(uuid.uuid4()),
        created=format_time(created),
        score=chosen_score,
        calibrator=chosen_calibrator,
        parameters=system.parameters(),
        bounds_log10=(round(system.bounds[0], 4), round(system.bounds[1], 4)),
        relevant_population=relevant_population,
        reference=ReferenceSet(description, tuple(scans), int(labels.sum()), int(len(labels) - labels.sum()), provenance, licence),
        method=method,
        metrics=lr.metrics(held_out, labels),
        candidates=candidates,
        software={"name": SOFTWARE_NAME, "version": __version__},
        pairs=pairs,
        held_out_log10_lr=held_out,
    )


def write_calibration(calibration: Calibration, path: Path) -> Path:
    write_atomic(Path(path), calibration.to_bytes())
    return Path(path)


def parse_calibration(data: bytes, path: str | Path | None = None) -> Calibration:
    """A calibration from its file's bytes; refused unless it refits to the bounds it states."""
    if len(data) > MAX_BYTES:
        raise CalibrationError(path, f"calibration larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise CalibrationError(path, f"not a {FORMAT} document of version {VERSION}")
        calibration = _from_dict(doc)
    except CalibrationError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CalibrationError(path, f"not a readable calibration: {type(exc).__name__}: {exc}") from None
    if calibration.to_bytes() != data:
        raise CalibrationError(path, "not in the form the software writes (edited by hand?): its SHA-256 would not identify it")
    refitted = calibration.system.bounds
    if not np.allclose(refitted, calibration.bounds_log10, atol=1e-3):
        raise CalibrationError(path, f"its reference pairs refit to bounds {refitted}, not the {calibration.bounds_log10} it states")
    return calibration


def load_calibration(path: str | Path) -> Calibration:
    try:
        data = read_bounded(path, MAX_BYTES)
    except OSError as exc:
        raise CalibrationError(path, f"cannot read: {exc.strerror}") from None
    return parse_calibration(data, path)


def default_calibration(home: Path | None = None) -> Calibration:
    """The home's ``calibration.json`` if there is one, else the packaged default (Fadul + Weller)."""
    if home is not None and (home / HOME_FILE).is_file():
        return load_calibration(home / HOME_FILE)
    resource = resources.files("ballistics").joinpath("calibrations/default.json")
    return parse_calibration(resource.read_bytes(), "ballistics/calibrations/default.json")


def _from_dict(doc: dict[str, Any]) -> Calibration:
    table = doc["pairs"]
    columns = table["columns"]
    if columns[:2] != ["firearm_a", "firearm_b"] or columns[-1] != "held_out_log10_lr":
        raise ValueError("pairs columns must be firearm_a, firearm_b, features..., held_out_log10_lr")
    rows = np.array(table["rows"], dtype=float).reshape(-1, len(columns))
    firearms = tuple(str(f) for f in table["firearms"])
    a, b = rows[:, 0].astype(int), rows[:, 1].astype(int)
    if rows.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= len(firearms)):
        raise ValueError("a pair names a firearm outside the list")
    score, calibrator = doc["score"]["name"], doc["calibrator"]["name"]
    if score not in lr.SCORES or calibrator not in lr.CALIBRATORS:
        raise ValueError(f"unknown score {score!r} or calibrator {calibrator!r}")
    ref = doc["reference_set"]
    scans = tuple(
        ReferenceScan(s["sha256"], s["name"], s["firearm"], s.get("make"), s.get("model"), s.get("calibre")) for s in ref["scans"]
    )
    low, high = doc["bounds_log10"]["value"]
    return Calibration(
        calibration_id=str(doc["calibration_id"]),
        created=str(doc["created"]),
        score=score,
        calibrator=calibrator,
        parameters=dict(doc["calibrator"]["parameters"]),
        bounds_log10=(float(low), float(high)),
        relevant_population=str(doc["relevant_population"]),
        reference=ReferenceSet(
            ref["description"],
            scans,
            int(ref["same_source_pairs"]),
            int(ref["different_source_pairs"]),
            ref.get("provenance"),
            ref.get("licence"),
        ),
        method=dict(doc["method"]),
        metrics=lr.LrMetrics.from_dict(doc["validation"]["metrics"]),
        candidates={str(k): float(v) for k, v in doc["validation"]["candidates_cllr"].items()},
        software={str(k): str(v) for k, v in doc["software"].items()},
        pairs=lr.ReferencePairs(firearms, a, b, rows[:, 2:-1], tuple(columns[2:-1])),
        held_out_log10_lr=rows[:, -1],
        propositions=(str(doc["propositions"]["same_source"]), str(doc["propositions"]["different_source"])),
    )


def with_details(scans: Sequence[ReferenceScan], truth_csv: Path) -> tuple[ReferenceScan, ...]:
    """The scans with make, model and calibre from the optional columns of a truth CSV (by file name)."""
    import csv

    try:
        with open(truth_csv, newline="", encoding="utf-8") as stream:
            rows = {Path(row["file"]).name: row for row in csv.DictReader(stream) if row.get("file")}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError) as exc:
        raise CalibrationError(truth_csv, f"not a readable truth CSV: {exc}") from None
    out = []
    for scan in scans:
        row = rows.get(scan.name, {})
        out.append(
            ReferenceScan(
                scan.sha256, scan.name, scan.firearm, row.get("make") or None, row.get("model") or None, row.get("calibre") or None
            )
        )
    return tuple(out)
