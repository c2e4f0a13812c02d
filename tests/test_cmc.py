"""Congruent Matching Cells on real Fadul scans, at any rotation, and the decision rules."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from conftest import FADUL, require_real_scans
from hypothesis import given
from hypothesis import strategies as st

from ballistics.cmc import (
    CmcParams,
    DirectionResult,
    apply_high_cmc_rule,
    apply_original_rule,
    combine_directions,
    compare_surfaces,
    transform,
    wrap_deg,
)
from ballistics.scan import load_scan

SPACING = 6.25e-6


@cache
def fadul(name: str) -> np.ndarray:
    require_real_scans()
    return load_scan(FADUL / f"Fadul {name}.x3p").heights


@cache
def fadul_1_1_vs_1_2():
    return compare_surfaces(fadul("1-1"), fadul("1-2"), SPACING)


def test_known_match_is_identified_and_known_non_match_is_not() -> None:
    match = fadul_1_1_vs_1_2()
    non_match = compare_surfaces(fadul("1-1"), fadul("2-1"), SPACING)
    assert match.high_cmc_passed
    assert match.cmc >= 15, match.cmc  # cmcR: High CMC known matches 20-31 on Fadul
    assert 4 <= match.cmc_original <= 23
    assert non_match.cmc <= 3, non_match.cmc
    assert match.candidates[0].score > 2 * non_match.candidates[0].score


@pytest.mark.parametrize("angle", [137.0, -101.0, 180.0])
def test_match_is_found_at_any_rotation(angle: float) -> None:
    """Rotating the questioned scan by any angle changes the registration, not the verdict."""
    unrotated = fadul_1_1_vs_1_2()
    questioned = fadul("1-2")
    side = max(questioned.shape)
    rotated = transform(np.asarray(questioned, np.float32), angle, (0.0, 0.0), (side, side))
    result = compare_surfaces(fadul("1-1"), rotated, SPACING)
    assert result.cmc >= 15
    # rotating the questioned case by `angle` means the reference needs `angle` less to align
    assert abs(wrap_deg(result.rotation_deg - (unrotated.rotation_deg - angle))) <= 3.0


def test_cmcr_window_mode_matches_within_its_window() -> None:
    """cmcR's -30..30 search finds the Fadul 1-1/1-2 match (its angle is about 25 degrees)."""
    result = compare_surfaces(fadul("1-1"), fadul("1-2"), SPACING, CmcParams(full_circle=False))
    assert result.cmc >= 15
    assert result.forward.angles.min() == -30 and result.forward.angles.max() == 30
    assert abs(result.rotation_deg - fadul_1_1_vs_1_2().rotation_deg) <= 3.0


def test_registration_recovers_a_known_rotation_and_shift() -> None:
    """A surface against itself rotated by 60 degrees and shifted: the transform is recovered."""
    surface = np.asarray(fadul("3-1"), np.float32)
    side = max(surface.shape)
    moved = transform(surface, -60.0, (12.0, -8.0), (side, side))
    result = compare_surfaces(surface, moved, SPACING)
    assert abs(wrap_deg(result.rotation_deg - 60.0)) <= 1.5
    assert result.cmc >= 20
    # moving the registered copy back must land it on the original
    back = transform(moved, result.rotation_deg, result.shift_px, surface.shape)
    both = np.isfinite(back) & np.isfinite(surface)
    assert np.corrcoef(back[both], surface[both])[0, 1] > 0.9


@given(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False))
def test_wrap_deg_lands_in_half_open_interval(angle: float) -> None:
    wrapped = wrap_deg(angle)
    assert -180.0 < wrapped <= 180.0
    assert abs(((wrapped - angle) / 360.0) - round((wrapped - angle) / 360.0)) < 1e-9


def _direction(angles: list[float], dx: np.ndarray, dy: np.ndarray, ccf: np.ndarray) -> DirectionResult:
    n = dx.shape[1]
    return DirectionResult(
        angles=np.array(angles, float),
        cell_index=np.array([(i // 8, i % 8) for i in range(n)]),
        cell_box=np.zeros((n, 4), int),
        dx=dx.astype(float),
        dy=dy.astype(float),
        ccf=ccf.astype(float),
        shifts=np.zeros((len(angles), 2)),
    )


def test_original_rule_counts_cells_near_the_consensus_with_high_correlation() -> None:
    params = CmcParams()
    # 6 cells, one angle: 4 agree (dx ~ 0), one is off by 50 px, one has a weak correlation
    dx = np.array([[0, 1, -1, 2, 50, 0]])
    dy = np.zeros_like(dx)
    ccf = np.array([[0.8, 0.7, 0.9, 0.6, 0.9, 0.3]])
    result = _direction([0.0], dx, dy, ccf)
    apply_original_rule(result, tx_px=20, params=params)
    assert result.original.tolist() == [True, True, True, True, False, False]


def test_high_cmc_fails_when_near_maximal_angles_disagree() -> None:
    params = CmcParams()
    n = 10
    dx = np.zeros((3, n))
    dy = np.zeros((3, n))
    # angles 0 and 30 both have 10 congruent cells: spread 30 > 6 degrees, the rule fails
    ccf = np.array([[0.9] * n, [0.1] * n, [0.9] * n])
    result = _direction([0.0, 15.0, 30.0], dx, dy, ccf)
    apply_high_cmc_rule(result, tx_px=20, params=params)
    assert result.theta_max is None
    ccf[2] = 0.1
    result = _direction([0.0, 15.0, 30.0], dx, dy, ccf)
    apply_high_cmc_rule(result, tx_px=20, params=params)
    assert result.theta_max == 0.0
    assert result.high_cells(params.rotation_deg).sum() == n


def test_directions_must_agree_on_opposite_angles() -> None:
    params = CmcParams()
    n = 8
    good = np.full((1, n), 0.9)
    forward = _direction([20.0], np.zeros((1, n)), np.zeros((1, n)), good)
    agreeing = _direction([-20.0], np.zeros((1, n)), np.zeros((1, n)), good)
    same_sign = _direction([20.0], np.zeros((1, n)), np.zeros((1, n)), good)
    for d in (forward, agreeing, same_sign):
        apply_original_rule(d, 20, params)
        apply_high_cmc_rule(d, 20, params)
    assert combine_directions(forward, agreeing, params) == (n, True)
    count, passed = combine_directions(forward, same_sign, params)
    assert not passed and count == n  # falls back to the smaller original count
