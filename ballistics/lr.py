"""Score-to-likelihood-ratio systems: features, calibrators, empirical bounds, firearm folds, bootstrap.

A comparison gives a score (the deciding CMC count, and the correlation of the registered
surfaces); a likelihood ratio says how much more probable that score is if both cartridge cases
were fired by one firearm (H1, same source) than by two firearms of the relevant population (H2,
different sources). This module turns labelled reference pairs into such a system with the
Netherlands Forensic Institute's ``lir`` library:

- a calibrator maps the score to log10 LR: kernel density estimates of the two score
  distributions (``kde``, Silverman bandwidths; as in Baiker-Sorensen et al., Forensic Sci. Int.
  353:111858, 2023), logistic regression (``logistic``) or pool-adjacent-violators (``isotonic``);
- a two-feature score (CMC count and correlation) is first fused into one number by
  class-balanced logistic regression (scikit-learn), then calibrated the same way;
- the LR is bounded by the empirical lower and upper bounds (ELUB, Vergeer et al., Science and
  Justice 56:482-491, 2016): no LR beyond what the reference pairs can support (at most
  log10(n_different + 1), at least -log10(n_same + 1));
- validation leaves out firearms, not pairs: a pair is scored by a system fitted without any pair
  that involves either of its firearms (:func:`held_out_llrs`);
- the uncertainty of an LR is a bootstrap over firearms (clusters), not over pairs
  (:func:`bootstrap_interval`).

All LRs here are base-10 logarithms (``llr``). Labels: 1 = same source (H1), 0 = different.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Calibrator = Literal["kde", "logistic", "isotonic"]
Score = Literal["cmc", "cmc+ccf"]
CALIBRATORS: tuple[Calibrator, ...] = ("kde", "logistic", "isotonic")
SCORES: tuple[Score, ...] = ("cmc", "cmc+ccf")
#: The features each score reads from a pair, in order.
SCORE_FEATURES: dict[Score, tuple[str, ...]] = {"cmc": ("cmc",), "cmc+ccf": ("cmc", "ccf")}


@dataclass(frozen=True)
class ReferencePairs:
    """Labelled reference pairs: the features of each, its two firearms and whether they are one.

    ``firearms`` names the firearms; ``firearm_a`` and ``firearm_b`` index it (equal for a
    same-source pair). ``features`` has one row per pair and one column per name in
    ``feature_names`` (``cmc``: cells; ``ccf``: correlation, -1..1).
    """

    firearms: tuple[str, ...]
    firearm_a: np.ndarray
    firearm_b: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]

    @property
    def labels(self) -> np.ndarray:
        return (self.firearm_a == self.firearm_b).astype(int)

    def __len__(self) -> int:
        return int(self.firearm_a.size)

    def columns(self, score: Score) -> np.ndarray:
        """The feature columns ``score`` reads (pairs x features)."""
        return self.features[:, [self.feature_names.index(name) for name in SCORE_FEATURES[score]]]

    def subset(self, keep: np.ndarray) -> ReferencePairs:
        return ReferencePairs(self.firearms, self.firearm_a[keep], self.firearm_b[keep], self.features[keep], self.feature_names)


@dataclass
class LrSystem:
    """A fitted system: optional fusion weights, a calibrator, and the ELUB bounds (log10)."""

    score: Score
    calibrator_name: Calibrator
    fusion: Any  # sklearn LogisticRegression for a two-feature score, else None
    calibrator: Any
    bounds: tuple[float, float]

    def raw_llr(self, features: np.ndarray) -> np.ndarray:
        """Calibrated log10 LRs before bounding (pairs x features in).

        Each distinct score is calibrated once: CMC counts take a few dozen values over
        thousands of pairs.
        """
        fused = self._fused(features)
        distinct, inverse = np.unique(fused, return_inverse=True)
        return np.asarray(self.calibrator.transform(distinct), float).reshape(-1)[inverse.reshape(-1)]

    def llr(self, features: np.ndarray) -> np.ndarray:
        """Calibrated, bounded log10 LRs."""
        return np.clip(self.raw_llr(features), *self.bounds)

    def _fused(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, float).reshape(len(features), -1)
        if self.fusion is None:
            return features[:, 0]
        return np.asarray(self.fusion.decision_function(features), float)

    def parameters(self) -> dict[str, Any]:
        """What the fitted system is, in numbers a report can quote."""
        out: dict[str, Any] = {}
        if self.fusion is not None:
            out["fusion"] = {
                "model": "class-balanced logistic regression (scikit-learn, L2, C=1)",
                "coefficients": [round(float(c), 6) for c in self.fusion.coef_.reshape(-1)],
                "intercept": round(float(self.fusion.intercept_[0]), 6),
            }
        if self.calibrator_name == "kde":
            out["bandwidth"] = {
                "rule": "Silverman",
                "different_source": round(float(self.calibrator._kde0.bandwidth), 6),
                "same_source": round(float(self.calibrator._kde1.bandwidth), 6),
            }
        elif self.calibrator_name == "logistic":
            logit = self.calibrator._logit
            out["logistic"] = {"coefficient": round(float(logit.coef_[0][0]), 6), "intercept": round(float(logit.intercept_[0]), 6)}
        else:
            out["isotonic"] = {"add_misleading": 1}
        return out


def _calibrator(name: Calibrator) -> Any:
    if name == "kde":
        from lir.algorithms.kde import KDECalibrator

        return KDECalibrator(bandwidth="silverman")
    if name == "logistic":
        from lir.algorithms.logistic_regression import LogitCalibrator

        return LogitCalibrator()
    from lir.algorithms.isotonic_regression import IsotonicCalibrator

    return IsotonicCalibrator(add_misleading=1)  # one misleading pair each side keeps PAV's LRs finite


def elub_bounds(llrs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Empirical lower and upper bounds of log10 LR (ELUB, ``lir``), one misleading pair added each side."""
    from lir.algorithms.bayeserror import elub

    low, high = elub(np.array(llrs, float), np.asarray(labels), add_misleading=1)  # elub changes its input
    return float(low), float(high)


def fit(pairs: ReferencePairs, score: Score, calibrator: Calibrator, weights: np.ndarray | None = None, *, bound: bool = True) -> LrSystem:
    """Fit a system on ``pairs`` (each repeated ``weights`` times, for the bootstrap); ``bound``: find its ELUB bounds."""
    features, labels = pairs.columns(score), pairs.labels
    if weights is not None:
        features, labels = np.repeat(features, weights, axis=0), np.repeat(labels, weights)
    if labels.min() == labels.max():
        raise ValueError("calibration needs same-source and different-source pairs")
    fusion = None
    if features.shape[1] > 1:
        from sklearn.linear_model import LogisticRegression

        fusion = LogisticRegression(class_weight="balanced").fit(features, labels)
    system = LrSystem(score, calibrator, fusion, _calibrator(calibrator), (-np.inf, np.inf))
    fused = system._fused(features)
    system.calibrator.fit(fused, labels)
    if bound:
        system.bounds = elub_bounds(system.raw_llr(features), labels)
    return system


def held_out_llrs(pairs: ReferencePairs, score: Score, calibrator: Calibrator) -> np.ndarray:
    """Each pair's bounded log10 LR from a system fitted without either of its firearms.

    A same-source pair of firearm f is scored by a system fitted on the pairs that do not involve
    f; a different-source pair of f and g by one fitted on the pairs that involve neither. No
    firearm's marks are on both sides of a fold (leave-one-firearm-out, and both firearms of a
    different-source pair).
    """
    out = np.empty(len(pairs))
    keys = np.stack([np.minimum(pairs.firearm_a, pairs.firearm_b), np.maximum(pairs.firearm_a, pairs.firearm_b)], axis=1)
    for key in np.unique(keys, axis=0):
        test = (keys[:, 0] == key[0]) & (keys[:, 1] == key[1])
        involved = np.isin(pairs.firearm_a, key) | np.isin(pairs.firearm_b, key)
        system = fit(pairs.subset(~involved), score, calibrator)
        out[test] = system.llr(pairs.columns(score)[test])
    return out


def bootstrap_interval(
    pairs: ReferencePairs,
    score: Score,
    calibrator: Calibrator,
    features: np.ndarray,
    bounds: tuple[float, float],
    *,
    replicates: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> np.ndarray:
    """Percentile interval of log10 LR at ``features`` from a bootstrap over firearms.

    Each replicate draws as many firearms as the reference set has, with replacement; a
    same-source pair counts as often as its firearm was drawn, a different-source pair as the
    product of its two firearms' draws. The system is refitted on the replicate and its LRs at
    ``features`` are clipped to ``bounds`` (the full system's ELUB bounds). Returns rows
    ``[low, high]``, one per row of ``features``.
    """
    rng = np.random.default_rng(seed)
    n = len(pairs.firearms)
    draws = np.empty((replicates, len(features)))
    done = 0
    while done < replicates:
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        weights = np.where(pairs.firearm_a == pairs.firearm_b, counts[pairs.firearm_a], counts[pairs.firearm_a] * counts[pairs.firearm_b])
        labels = pairs.labels[weights > 0]
        if labels.size == 0 or labels.min() == labels.max():
            continue  # a replicate without both kinds of pair has no LR
        system = fit(pairs.subset(weights > 0), score, calibrator, weights[weights > 0], bound=False)
        draws[done] = np.clip(system.raw_llr(features), *bounds)
        done += 1
    tail = (1 - level) / 2 * 100
    return np.stack([np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)], axis=1)


@dataclass(frozen=True)
class LrMetrics:
    """How well a set of log10 LRs (with their truth) performs: what a validation report states.

    ``cllr`` (bits): 0.5 [mean over same-source of log2(1 + 1/LR) + mean over different-source of
    log2(1 + LR)] (Brümmer & du Preez 2006); ``cllr_min`` after the best monotone recalibration
    (PAV), the discrimination loss; ``cllr_cal`` = cllr - cllr_min, the calibration loss. Rates of
    misleading evidence: same-source pairs with LR < 1, different-source pairs with LR > 1.
    """

    cllr: float
    cllr_min: float
    cllr_cal: float
    same_source_pairs: int
    different_source_pairs: int
    misleading_same_source: int
    misleading_different_source: int
    largest_different_source_llr: float
    smallest_same_source_llr: float

    @property
    def misleading_same_source_rate(self) -> float:
        return self.misleading_same_source / self.same_source_pairs

    @property
    def misleading_different_source_rate(self) -> float:
        return self.misleading_different_source / self.different_source_pairs

    def to_dict(self) -> dict[str, Any]:
        return {
            "cllr": round(self.cllr, 5),
            "cllr_min": round(self.cllr_min, 5),
            "cllr_cal": round(self.cllr_cal, 5),
            "same_source_pairs": self.same_source_pairs,
            "different_source_pairs": self.different_source_pairs,
            "misleading_same_source": self.misleading_same_source,
            "misleading_same_source_rate": round(self.misleading_same_source_rate, 5),
            "misleading_different_source": self.misleading_different_source,
            "misleading_different_source_rate": round(self.misleading_different_source_rate, 5),
            "largest_different_source_log10_lr": round(self.largest_different_source_llr, 3),
            "smallest_same_source_log10_lr": round(self.smallest_same_source_llr, 3),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LrMetrics:
        return cls(
            cllr=doc["cllr"],
            cllr_min=doc["cllr_min"],
            cllr_cal=doc["cllr_cal"],
            same_source_pairs=doc["same_source_pairs"],
            different_source_pairs=doc["different_source_pairs"],
            misleading_same_source=doc["misleading_same_source"],
            misleading_different_source=doc["misleading_different_source"],
            largest_different_source_llr=doc["largest_different_source_log10_lr"],
            smallest_same_source_llr=doc["smallest_same_source_log10_lr"],
        )


def metrics(llrs: np.ndarray, labels: np.ndarray) -> LrMetrics:
    """Cllr, Cllr-min, Cllr-cal (``lir.metrics``), misleading evidence and the extreme LRs."""
    from lir.data.models import LLRData
    from lir.metrics import cllr, cllr_min

    llrs, labels = np.asarray(llrs, float), np.asarray(labels, int)
    data = LLRData(features=llrs, labels=labels)
    total, minimum = cllr(data), cllr_min(data)
    same, different = llrs[labels == 1], llrs[labels == 0]
    return LrMetrics(
        cllr=total,
        cllr_min=minimum,
        cllr_cal=total - minimum,
        same_source_pairs=int(same.size),
        different_source_pairs=int(different.size),
        misleading_same_source=int((same < 0).sum()),
        misleading_different_source=int((different > 0).sum()),
        largest_different_source_llr=float(different.max()),
        smallest_same_source_llr=float(same.min()),
    )


def choose(pairs: ReferencePairs, scores: Sequence[Score], calibrators: Sequence[Calibrator]) -> tuple[Score, Calibrator, dict[str, float]]:
    """The score and calibrator of lowest held-out Cllr, and every candidate's Cllr (by ``score/calibrator``).

    A two-feature score is chosen only when it lowers the held-out Cllr of the best one-feature
    system (ties go to the simpler system: candidates are tried in the order given).
    """
    tried: dict[str, float] = {}
    best: tuple[float, Score, Calibrator] | None = None
    for score in scores:
        for calibrator in calibrators:
            value = metrics(held_out_llrs(pairs, score, calibrator), pairs.labels).cllr
            tried[f"{score}/{calibrator}"] = round(value, 5)
            if best is None or value < best[0] - 1e-9:
                best = (value, score, calibrator)
    if best is None:
        raise ValueError("no candidate score or calibrator")
    return best[1], best[2], tried
