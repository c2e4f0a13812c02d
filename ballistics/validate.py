"""Evaluation on a labelled set: every pair compared, distributions, AUC and error counts.

A labelled set is a folder of scans and a truth table mapping each file to its firearm. The
outcome is what a validation report states: the CMC counts of known matches and known
non-matches, the area under the ROC curve, and how many known non-matches would have been
identified (false identifications) or known matches missed at the decision threshold.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.compare import Comparison, compare_prepared, scan_identity
from ballistics.errors import TruthError
from ballistics.method import CmcParams, DecisionParams, PreprocessParams
from ballistics.preprocess import BreechFace, prepare
from ballistics.scan import load_scan

Progress = Callable[[int, int], None]
SCAN_SUFFIXES = (".x3p", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class PairResult:
    reference: str
    questioned: str
    same_source: bool
    cmc: int
    cmc_original: int
    cmc_high: int
    decision: str
    rotation_deg: float
    #: Correlation of the registered surfaces (-1..1), a second score for calibration.
    ccf: float | None = None
    cells_compared: int | None = None
    #: Firearm and SHA-256 of each scan: what a calibration needs for its folds and its reference set.
    reference_firearm: str | None = None
    questioned_firearm: str | None = None
    reference_sha256: str | None = None
    questioned_sha256: str | None = None


@dataclass(frozen=True)
class Validation:
    pairs: list[PairResult]
    decision: DecisionParams

    def counts(self, same: bool, rule: str = "decision") -> np.ndarray:
        """CMC counts of same- or different-source pairs: the deciding count, or a rule's own."""
        field = {"decision": "cmc", "original": "cmc_original", "high": "cmc_high"}[rule]
        return np.array([getattr(p, field) for p in self.pairs if p.same_source == same], dtype=int)

    def auc(self, rule: str = "decision") -> float:
        return auc(self.counts(True, rule), self.counts(False, rule))

    @property
    def false_identifications(self) -> int:
        return int((self.counts(False) >= self.decision.identification_cmc).sum())

    @property
    def missed_identifications(self) -> int:
        return int((self.counts(True) < self.decision.identification_cmc).sum())

    def to_dict(self) -> dict[str, object]:
        def describe(values: np.ndarray) -> dict[str, object]:
            if values.size == 0:
                return {"n": 0}
            return {
                "n": int(values.size),
                "min": int(values.min()),
                "max": int(values.max()),
                "mean": round(float(values.mean()), 2),
                "histogram": {str(k): int(v) for k, v in zip(*np.unique(values, return_counts=True), strict=True)},
            }

        return {
            "pairs": len(self.pairs),
            "rule": self.decision.rule,
            "known_match": describe(self.counts(True)),
            "known_non_match": describe(self.counts(False)),
            "auc": round(self.auc(), 4),
            "original_rule": {
                "known_match": describe(self.counts(True, "original")),
                "known_non_match": describe(self.counts(False, "original")),
                "auc": round(self.auc("original"), 4),
            },
            "high_cmc_rule": {
                "known_match": describe(self.counts(True, "high")),
                "known_non_match": describe(self.counts(False, "high")),
                "auc": round(self.auc("high"), 4),
            },
            "identification_threshold": self.decision.identification_cmc,
            "false_identifications": self.false_identifications,
            "missed_identifications": self.missed_identifications,
        }


def auc(positives: Sequence[float] | np.ndarray, negatives: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic over n1 n2, ties counted half.

    Parameters
    ----------
    positives, negatives : array_like
        Scores (e.g. CMC counts) of same-source and different-source pairs.

    Returns
    -------
    float
        P(positive > negative) + P(tie) / 2, in [0, 1]; NaN when either side is empty.
    """
    pos = np.asarray(positives, float)
    neg = np.asarray(negatives, float)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


_FADUL_KNOWN = re.compile(r"Fadul (\d+)-(\d+)")
_WELLER = re.compile(r"TW(\d+)-(\d+)")


def firearm_from_name(path: Path) -> str | None:
    """Firearm of a Fadul known case (``Fadul 3-2`` -> ``Fadul 3``) or a Weller case (``TW04-07`` -> ``TW04``).

    Questioned Fadul cases (``Fadul A``...) have no firearm: their source is a blind test.
    """
    stem = path.stem
    if match := _FADUL_KNOWN.fullmatch(stem):
        return f"Fadul {match.group(1)}"
    if match := _WELLER.fullmatch(stem):
        return f"TW{match.group(1)}"
    return None


def load_truth(path: Path) -> dict[str, str]:
    """A CSV with columns ``file`` and ``firearm`` (other columns ignored) -> file name -> firearm."""
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            if reader.fieldnames is None or not {"file", "firearm"} <= set(reader.fieldnames):
                raise TruthError(path, "a truth CSV needs the columns 'file' and 'firearm'")
            truth = {Path(row["file"]).name: row["firearm"] for row in reader if row.get("file")}
    except FileNotFoundError:
        raise TruthError(path, "no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TruthError(path, f"not a readable CSV: {exc}") from None
    if not truth:
        raise TruthError(path, "the truth table has no rows")
    return truth


def labelled_scans(folder: Path, truth: dict[str, str]) -> list[Path]:
    """The scans of ``folder`` that the truth table labels, in name order."""
    if not folder.is_dir():
        raise TruthError(folder, "not a folder of scans")
    scans = sorted(p for p in folder.iterdir() if p.suffix.lower() in SCAN_SUFFIXES and p.name in truth)
    if len(scans) < 2:
        raise TruthError(folder, "fewer than two scans of this folder are labelled by the truth table")
    return scans


# Worker state for the process pool: the prepared surfaces, sent once per worker.
_PREPARED: dict[str, BreechFace] = {}
_IDS: dict[str, dict[str, Any]] = {}


def _init_worker(prepared: dict[str, BreechFace], ids: dict[str, dict[str, Any]]) -> None:
    _PREPARED.update(prepared)
    _IDS.update(ids)


def _compare_pair(args: tuple[str, str, CmcParams, DecisionParams]) -> Comparison:
    a, b, cmc, decision = args
    result = compare_prepared(_PREPARED[a], _PREPARED[b], _IDS[a], _IDS[b], cmc=cmc, decision=decision)
    return replace(result, details=None, surfaces=None)  # only the numbers travel back


def validate(
    scans: Sequence[Path],
    truth: dict[str, str],
    *,
    preprocess: PreprocessParams = PreprocessParams(),
    cmc: CmcParams = CmcParams(),
    decision: DecisionParams = DecisionParams(),
    workers: int = 1,
    progress: Progress | None = None,
) -> Validation:
    """Compare every pair of ``scans`` (each once) and score the outcome against ``truth``."""
    prepared: dict[str, BreechFace] = {}
    ids: dict[str, dict[str, Any]] = {}
    for path in scans:
        scan = load_scan(path)
        prepared[str(path)] = prepare(scan, preprocess)
        ids[str(path)] = scan_identity(scan)
    pairs = list(combinations([str(p) for p in scans], 2))
    jobs = [(a, b, cmc, decision) for a, b in pairs]
    results: list[PairResult] = []

    def record(a: str, b: str, comparison: Comparison) -> None:
        firearms = truth[Path(a).name], truth[Path(b).name]
        results.append(
            PairResult(
                reference=Path(a).name,
                questioned=Path(b).name,
                same_source=firearms[0] == firearms[1],
                cmc=comparison.cmc,
                cmc_original=comparison.cmc_original,
                cmc_high=comparison.cmc_high,
                decision=comparison.decision,
                rotation_deg=comparison.rotation_deg,
                ccf=comparison.ccf,
                cells_compared=comparison.cells_compared,
                reference_firearm=firearms[0],
                questioned_firearm=firearms[1],
                reference_sha256=ids[a]["sha256"],
                questioned_sha256=ids[b]["sha256"],
            )
        )
        if progress:
            progress(len(results), len(jobs))

    if workers <= 1:
        _init_worker(prepared, ids)
        for job in jobs:
            record(job[0], job[1], _compare_pair(job))
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(prepared, ids)) as pool:
            for job, comparison in zip(jobs, pool.map(_compare_pair, jobs, chunksize=4), strict=True):
                record(job[0], job[1], comparison)
    return Validation(results, decision)


#: The columns of a pairs CSV, in order (the first eight are those of earlier versions).
PAIR_COLUMNS = (
    "reference",
    "questioned",
    "same_source",
    "cmc",
    "cmc_original",
    "cmc_high",
    "decision",
    "rotation_deg",
    "ccf",
    "cells_compared",
    "reference_firearm",
    "questioned_firearm",
    "reference_sha256",
    "questioned_sha256",
)


def write_pairs(validation: Validation, target: Path) -> Path:
    """Every pair's result as CSV, for reports, for comparison with other software and for ``ballistics calibrate``.

    Columns: those of :data:`PAIR_COLUMNS`; ``ccf`` is empty when the registered surfaces share
    no measured point.
    """
    import io

    from ballistics.files import write_atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PAIR_COLUMNS)
    for p in validation.pairs:
        writer.writerow(
            [
                p.reference,
                p.questioned,
                int(p.same_source),
                p.cmc,
                p.cmc_original,
                p.cmc_high,
                p.decision,
                round(p.rotation_deg, 2),
                "" if p.ccf is None else round(p.ccf, 5),
                "" if p.cells_compared is None else p.cells_compared,
                p.reference_firearm or "",
                p.questioned_firearm or "",
                p.reference_sha256 or "",
                p.questioned_sha256 or "",
            ]
        )
    write_atomic(Path(target), buffer.getvalue().encode())
    return Path(target)


def read_pairs(path: Path, truth: dict[str, str] | None = None) -> list[PairResult]:
    """The pairs CSV written by :func:`write_pairs` (``validate --pairs-csv``), back as pair results.

    A CSV of an earlier version has no firearm or SHA-256 columns: ``truth`` (file name ->
    firearm) then supplies the firearms, and the SHA-256 stay unknown.
    """
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            missing = set(PAIR_COLUMNS[:8]) - set(reader.fieldnames or ())
            if missing:
                raise TruthError(path, f"not a pairs CSV of ballistics validate: no column {', '.join(sorted(missing))}")
            rows = list(reader)
    except FileNotFoundError:
        raise TruthError(path, "no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TruthError(path, f"not a readable CSV: {exc}") from None
    truth = truth or {}
    pairs: list[PairResult] = []
    for line, row in enumerate(rows, start=2):
        try:
            firearms = [row.get(f"{side}_firearm") or truth.get(row[side]) for side in ("reference", "questioned")]
            pairs.append(
                PairResult(
                    reference=row["reference"],
                    questioned=row["questioned"],
                    same_source=row["same_source"] == "1",
                    cmc=int(row["cmc"]),
                    cmc_original=int(row["cmc_original"]),
                    cmc_high=int(row["cmc_high"]),
                    decision=row["decision"],
                    rotation_deg=float(row["rotation_deg"]),
                    ccf=float(row["ccf"]) if row.get("ccf") else None,
                    cells_compared=int(row["cells_compared"]) if row.get("cells_compared") else None,
                    reference_firearm=firearms[0],
                    questioned_firearm=firearms[1],
                    reference_sha256=row.get("reference_sha256") or None,
                    questioned_sha256=row.get("questioned_sha256") or None,
                )
            )
        except ValueError as exc:
            raise TruthError(path, f"line {line}: {exc}") from None
        if firearms[0] and firearms[1] and (firearms[0] == firearms[1]) != pairs[-1].same_source:
            raise TruthError(path, f"line {line}: same_source disagrees with the firearms {firearms[0]} and {firearms[1]}")
    if not pairs:
        raise TruthError(path, "the pairs CSV has no rows")
    return pairs
