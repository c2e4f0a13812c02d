"""The likelihood ratio of one comparison, stated with its propositions, population, bounds and calibration.

:func:`likelihood_ratio` reads a ``Comparison.to_dict()`` document (the engine's result, left as
it is) and a :class:`~ballistics.calibration.Calibration`, and returns the statement that
``compare --json`` prints under ``likelihood_ratio`` and that a version-2 match record carries.
The number never travels alone: the propositions, the relevant population, the calibration's id
and SHA-256, the empirical bounds, a bootstrap interval over the reference firearms and the
verbal equivalent on a named scale go with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ballistics import lr
from ballistics.calibration import Calibration
from ballistics.errors import CalibrationError
from ballistics.verbal import VerbalEquivalent, verbal_equivalent

#: Bootstrap replicates over firearms behind each interval, and its coverage.
REPLICATES = 200
LEVEL = 0.95


@dataclass(frozen=True)
class LikelihoodRatio:
    """An LR (base-10 logarithm) and everything it must be quoted with."""

    log10_lr: float
    interval_log10: tuple[float, float]
    bounds_log10: tuple[float, float]
    propositions: tuple[str, str]
    relevant_population: str
    calibration_id: str
    calibration_sha256: str
    score: dict[str, Any]
    verbal: VerbalEquivalent
    #: E.g. a compared scan is one of the calibration's reference scans.
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "log10_lr": round(self.log10_lr, 3),
            "interval_log10": [round(v, 3) for v in self.interval_log10],
            "interval": {"level": LEVEL, "method": f"percentile bootstrap over reference firearms, {REPLICATES} replicates"},
            "bounds_log10": [round(v, 3) for v in self.bounds_log10],
            "at_bound": self.at_bound,
            "propositions": {"same_source": self.propositions[0], "different_source": self.propositions[1]},
            "relevant_population": self.relevant_population,
            "calibration": {"id": self.calibration_id, "sha256": self.calibration_sha256},
            "score": self.score,
            "verbal": self.verbal.to_dict(),
            "warnings": list(self.warnings),
        }

    @property
    def at_bound(self) -> bool:
        """The LR is the calibration's empirical bound: the data support no stronger value."""
        return bool(np.isclose(self.log10_lr, self.bounds_log10[0]) or np.isclose(self.log10_lr, self.bounds_log10[1]))

    def statement(self) -> list[str]:
        """The whole statement in sentences, for a terminal or a report: never the number alone."""
        lines = [
            f"H1 (same source): {self.propositions[0]}",
            f"H2 (different sources): {self.propositions[1]}",
            f"Relevant population: {self.relevant_population}",
            f"Likelihood ratio: {lr_text(self.log10_lr)} (log10 LR {self.log10_lr:+.2f}); "
            f"{LEVEL:.0%} interval {lr_text(self.interval_log10[0])} to {lr_text(self.interval_log10[1])} "
            f"(bootstrap over reference firearms)",
            f"Bounds of this calibration: {lr_text(self.bounds_log10[0])} to {lr_text(self.bounds_log10[1])} "
            "(empirical lower and upper bounds, ELUB)"
            + ("; this LR is at a bound, the reference data support no stronger value" if self.at_bound else ""),
            f"In words ({self.verbal.to_dict()['scale']}): {self.verbal.statement}",
            f"Calibration: {self.calibration_id}, SHA-256 {self.calibration_sha256}",
        ]
        return lines


def lr_text(log10_lr: float) -> str:
    """An LR for a reader: ``about 1,200`` or ``about 1/35``, two significant figures."""
    value = 10 ** abs(log10_lr)
    rounded = float(f"{value:.2g}")
    text = f"{rounded:,.0f}" if rounded >= 10 else f"{rounded:g}"
    return f"about {text}" if log10_lr >= 0 else f"about 1/{text}"


def likelihood_ratio(calibration: Calibration, comparison: Mapping[str, Any]) -> LikelihoodRatio:
    """The LR of a comparison (``Comparison.to_dict()``) under ``calibration``.

    Raises
    ------
    CalibrationError
        The comparison was made with other scoring parameters than the calibration's, compared
        a 2-D image (the calibration holds 3-D topographies), or lacks a score the calibration
        reads.
    """
    where = comparison.get("questioned", {}).get("path")
    if comparison.get("decision") == "not validated":
        raise CalibrationError(where, "no likelihood ratio: a 2-D image was compared, the calibration holds 3-D topographies")
    mismatch = calibration.check_method(comparison["method"])
    if mismatch is not None:
        raise CalibrationError(where, f"no likelihood ratio from this calibration: {mismatch}")
    names = lr.SCORE_FEATURES[calibration.score]
    missing = [name for name in names if comparison.get(name) is None]
    if missing:
        raise CalibrationError(where, f"no likelihood ratio: the comparison has no {', '.join(missing)}")
    values = {name: comparison[name] for name in names}
    features = np.array([[float(values[name]) for name in names]])
    system = calibration.system
    log10_lr = float(system.llr(features)[0])
    low, high = lr.bootstrap_interval(
        calibration.pairs,
        calibration.score,
        calibration.calibrator,
        features,
        system.bounds,
        replicates=REPLICATES,
        level=LEVEL,
        seed=int(calibration.sha256[:16], 16),
    )[0]
    return LikelihoodRatio(
        log10_lr=log10_lr,
        interval_log10=(float(min(low, log10_lr)), float(max(high, log10_lr))),
        bounds_log10=calibration.bounds_log10,
        propositions=calibration.propositions,
        relevant_population=calibration.relevant_population,
        calibration_id=calibration.calibration_id,
        calibration_sha256=calibration.sha256,
        score={"name": calibration.score, **values},
        verbal=verbal_equivalent(log10_lr),
        warnings=overlap_warnings(calibration, comparison),
    )


def overlap_warnings(calibration: Calibration, comparison: Mapping[str, Any]) -> tuple[str, ...]:
    """A warning for each compared scan (by SHA-256) that is one of the calibration's reference scans."""
    out = []
    for side in ("reference", "questioned"):
        sha = comparison.get(side, {}).get("sha256")
        if sha and sha in calibration.reference.sha256s:
            out.append(
                f"the {side} scan (SHA-256 {sha}) is in the calibration's reference set: the LR was calibrated on pairs "
                "that include this cartridge case, so it is not an independent evaluation"
            )
    return tuple(out)
