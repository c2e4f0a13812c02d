"""LR systems: folds by firearm, empirical bounds, the bootstrap over firearms, Cllr, and the ENFSI verbal scale."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from ballistics import lr
from ballistics.calibration import default_calibration
from ballistics.verbal import verbal_equivalent


def simulated_pairs(firearms: int = 8, cases: int = 4, seed: int = 3, overlap: bool = False) -> lr.ReferencePairs:
    """Every pair of ``cases`` cases per firearm; same-source CMC counts well above different-source ones (or overlapping)."""
    rng = np.random.default_rng(seed)
    owners = np.repeat(np.arange(firearms), cases)
    a, b = np.triu_indices(owners.size, k=1)
    fa, fb = owners[a], owners[b]
    same = fa == fb
    cmc = np.where(
        same, rng.integers(3 if overlap else 8, 30, same.size), rng.choice([0, 0, 0, 1, 1, 2, 3, 4 if overlap else 3], same.size)
    )
    ccf = np.where(same, rng.uniform(0.3, 0.8, same.size), rng.uniform(0.0, 0.3, same.size))
    return lr.ReferencePairs(tuple(f"G{i}" for i in range(firearms)), fa, fb, np.stack([cmc, ccf], axis=1).astype(float), ("cmc", "ccf"))


@pytest.mark.parametrize("calibrator", lr.CALIBRATORS)
def test_held_out_lr_never_sees_its_own_firearms(calibrator: lr.Calibrator) -> None:
    """Changing every other pair of a pair's firearms leaves its held-out LR unchanged; changing others' pairs does not."""
    pairs = simulated_pairs(overlap=True)
    before = lr.held_out_llrs(pairs, "cmc", calibrator)
    target = int(np.flatnonzero((pairs.firearm_a == 0) & (pairs.firearm_b == 1))[0])
    involved = np.isin(pairs.firearm_a, [0, 1]) | np.isin(pairs.firearm_b, [0, 1])
    changed = pairs.features.copy()
    others = involved.copy()
    others[target] = False
    changed[others, 0] = np.where(pairs.labels[others] == 1, 0.0, 40.0)  # the firearms' other pairs made absurd
    after = lr.held_out_llrs(
        lr.ReferencePairs(pairs.firearms, pairs.firearm_a, pairs.firearm_b, changed, pairs.feature_names), "cmc", calibrator
    )
    assert after[target] == before[target]
    # the same change does move the LRs of pairs whose firearms are neither 0 nor 1 (it is in their training data)
    assert not np.allclose(after[~involved], before[~involved])


def test_held_out_lr_equals_a_fit_without_both_firearms() -> None:
    pairs = simulated_pairs(overlap=True)
    held_out = lr.held_out_llrs(pairs, "cmc", "kde")
    for i in (0, int(np.flatnonzero(pairs.firearm_a != pairs.firearm_b)[5])):
        keep = ~(
            np.isin(pairs.firearm_a, [pairs.firearm_a[i], pairs.firearm_b[i]])
            | np.isin(pairs.firearm_b, [pairs.firearm_a[i], pairs.firearm_b[i]])
        )
        expected = lr.fit(pairs.subset(keep), "cmc", "kde").llr(pairs.columns("cmc")[i : i + 1])[0]
        assert held_out[i] == pytest.approx(expected)


def test_elub_bounds_stay_within_what_the_pair_counts_support() -> None:
    pairs = simulated_pairs()
    system = lr.fit(pairs, "cmc", "kde")
    n_same, n_different = int(pairs.labels.sum()), int(len(pairs) - pairs.labels.sum())
    low, high = system.bounds
    assert -math.log10(n_same + 1) - 0.01 <= low < 0 < high <= math.log10(n_different + 1) + 0.01
    llrs = system.llr(np.array([[0.0], [5.0], [60.0]]))
    assert llrs[0] == low and llrs[2] == high  # far scores are held at the bounds
    assert (system.raw_llr(np.array([[60.0]])) > high).all()  # which the calibrator alone would exceed


def test_bootstrap_over_firearms_is_reproducible_and_widens_between_the_classes() -> None:
    pairs = simulated_pairs(overlap=True)
    system = lr.fit(pairs, "cmc", "kde")
    features = np.array([[0.0], [4.0], [20.0]])
    first = lr.bootstrap_interval(pairs, "cmc", "kde", features, system.bounds, replicates=60, seed=7)
    again = lr.bootstrap_interval(pairs, "cmc", "kde", features, system.bounds, replicates=60, seed=7)
    assert np.array_equal(first, again)
    point = system.llr(features)
    assert (first[:, 0] <= first[:, 1]).all()
    assert (first >= system.bounds[0]).all() and (first <= system.bounds[1]).all()
    width = first[:, 1] - first[:, 0]
    assert width[1] > 0.1  # CMC 4 is where the classes overlap: its LR depends on which firearms were drawn
    assert width[1] > width[2]
    assert first[1, 0] <= point[1] + 1.0 and point[1] - 1.0 <= first[1, 1]


def test_cllr_and_misleading_counts_by_hand() -> None:
    llrs = np.array([2.0, 0.0, -1.0, -2.0, 1.0])
    labels = np.array([1, 1, 1, 0, 0])
    m = lr.metrics(llrs, labels)
    expected = 0.5 * (
        np.mean([math.log2(1 + 10**-2), math.log2(2), math.log2(1 + 10)]) + np.mean([math.log2(1 + 10**-2), math.log2(1 + 10)])
    )
    assert m.cllr == pytest.approx(expected)
    assert 0 <= m.cllr_min <= m.cllr and m.cllr_cal == pytest.approx(m.cllr - m.cllr_min)
    assert (m.misleading_same_source, m.misleading_different_source) == (1, 1)
    assert m.largest_different_source_llr == 1.0 and m.smallest_same_source_llr == -1.0
    assert lr.LrMetrics.from_dict(m.to_dict()).to_dict() == m.to_dict()


def test_two_feature_score_is_chosen_only_when_it_lowers_the_held_out_cllr() -> None:
    pairs = simulated_pairs(overlap=True)
    score, calibrator, tried = lr.choose(pairs, lr.SCORES, ("logistic",))
    assert set(tried) == {"cmc/logistic", "cmc+ccf/logistic"}
    assert tried[f"{score}/{calibrator}"] == min(tried.values())
    if score == "cmc+ccf":
        assert tried["cmc+ccf/logistic"] < tried["cmc/logistic"]
    fused = lr.fit(pairs, "cmc+ccf", "logistic")
    assert len(fused.parameters()["fusion"]["coefficients"]) == 2


def test_the_packaged_calibration_holds_real_pairs_without_questioned_cases() -> None:
    calibration = default_calibration()
    names = {s.name for s in calibration.reference.scans}
    assert not any(n.startswith("Fadul ") and not n[6].isdigit() for n in names)  # never Fadul A ... Z
    # both published sets: the 20 Fadul knowns and the 95 Weller cases
    assert sum(n.startswith("Fadul ") for n in names) == 20 and sum(n.startswith("TW") for n in names) == 95
    assert calibration.metrics.misleading_same_source == 0 and calibration.metrics.misleading_different_source == 0
    assert calibration.reference.licence == "CC-BY 4.0"
    # the wording printed with every LR (and copied by the documented rebuild) spells its units
    assert "µm" in calibration.relevant_population and not re.search(r"\bum\b", calibration.relevant_population)


@pytest.mark.parametrize(
    ("log10_lr", "category", "supports"),
    [
        (0.0, "neutral", "neither"),
        (0.29, "neutral", "neither"),  # LR 1.95: below the table's first step, 2
        (math.log10(2), "weak", "same source"),
        (1.0, "moderate", "same source"),
        (2.5, "moderately strong", "same source"),
        (3.0, "strong", "same source"),
        (4.0, "very strong", "same source"),
        (5.99, "very strong", "same source"),
        (6.0, "extremely strong", "same source"),
        (-1.5, "moderate", "different sources"),
        (-3.2, "strong", "different sources"),
    ],
)
def test_enfsi_verbal_equivalents(log10_lr: float, category: str, supports: str) -> None:
    verbal = verbal_equivalent(log10_lr)
    assert (verbal.category, verbal.supports) == (category, supports)
    assert "ENFSI" in verbal.to_dict()["scale"] and "2015" in verbal.to_dict()["scale"]
    if supports != "neither":
        assert f"{category} support" in verbal.statement
