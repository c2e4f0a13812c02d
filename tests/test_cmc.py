"""Congruent Matching Cells on real Fadul scans, at any rotation, and the decision rules."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest
from conftest import FADUL, require_real_scans
from hypothesis import given
from hypothesis import strategies as st

import ballistics.cmc as cmc_module
import ballistics.registration as registration_module
from ballistics.cmc import (
    DirectionResult,
    _cell_grid,
    _measured,
    _pearson_at,
    combine_directions,
    compare_surfaces,
    direction_rules,
    high_cmc_rule,
    original_rule,
    pearson_complete,
    register_direction,
    transform,
    wrap_deg,
)
from ballistics.method import CmcParams, DecisionParams
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
    assert match.cmc_high >= 15, match.cmc_high  # cmcR: High CMC known matches 20-31 on Fadul
    assert 4 <= match.cmc_original <= 23
    assert non_match.cmc_high <= 3, non_match.cmc_high
    assert non_match.cmc_original <= 3, non_match.cmc_original
    assert match.candidates[0].score > 2 * non_match.candidates[0].score


@pytest.mark.parametrize("angle", [137.0, -101.0, 180.0])
def test_match_is_found_at_any_rotation(angle: float) -> None:
    """Rotating the questioned scan by any angle changes the registration, not the verdict."""
    unrotated = fadul_1_1_vs_1_2()
    questioned = fadul("1-2")
    side = max(questioned.shape)
    rotated = transform(np.asarray(questioned, np.float32), angle, (0.0, 0.0), (side, side))
    result = compare_surfaces(fadul("1-1"), rotated, SPACING)
    assert result.cmc_high >= 15
    # rotating the questioned case by `angle` means the reference needs `angle` less to align
    assert abs(wrap_deg(result.rotation_deg - (unrotated.rotation_deg - angle))) <= 3.0


def test_cmcr_window_mode_matches_within_its_window() -> None:
    """cmcR's -30..30 search finds the Fadul 1-1/1-2 match (its angle is about 25 degrees)."""
    result = compare_surfaces(fadul("1-1"), fadul("1-2"), SPACING, CmcParams(full_circle=False))
    assert result.cmc_high >= 15
    assert result.forward.angles.min() == -30 and result.forward.angles.max() == 30
    assert abs(result.rotation_deg - fadul_1_1_vs_1_2().rotation_deg) <= 3.0


def test_registration_recovers_a_known_rotation_and_shift() -> None:
    """A surface against itself rotated by 60 degrees and shifted: the transform is recovered."""
    surface = np.asarray(fadul("3-1"), np.float32)
    side = max(surface.shape)
    moved = transform(surface, -60.0, (12.0, -8.0), (side, side))
    result = compare_surfaces(surface, moved, SPACING)
    assert abs(wrap_deg(result.rotation_deg - 60.0)) <= 1.5
    assert result.cmc_high >= 20
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
    rule = original_rule(result, tx_px=20, params=params)
    assert rule.congruent.tolist() == [True, True, True, True, False, False]
    assert rule.count == 4 and rule.cell_angle.tolist() == [0.0] * 6


def test_original_rule_takes_each_cell_at_its_best_angle() -> None:
    """A cell that correlates best at an angle 30 degrees from the consensus is not congruent."""
    params = CmcParams()
    n = 5
    ccf = np.array([[0.9, 0.9, 0.9, 0.9, 0.2], [0.3, 0.3, 0.3, 0.3, 0.8]])
    result = _direction([0.0, 30.0], np.zeros((2, n)), np.zeros((2, n)), ccf)
    rule = original_rule(result, tx_px=20, params=params)
    assert rule.congruent.tolist() == [True, True, True, True, False]
    assert rule.cell_angle.tolist() == [0.0, 0.0, 0.0, 0.0, 30.0]
    assert np.all(result.ccf == ccf)  # the registrations are left as they were


def test_high_cmc_fails_when_near_maximal_angles_disagree() -> None:
    params = CmcParams()
    n = 10
    dx = np.zeros((3, n))
    dy = np.zeros((3, n))
    # angles 0 and 30 both have 10 congruent cells: spread 30 > 6 degrees, the rule fails
    ccf = np.array([[0.9] * n, [0.1] * n, [0.9] * n])
    result = _direction([0.0, 15.0, 30.0], dx, dy, ccf)
    failed = high_cmc_rule(result, tx_px=20, params=params)
    assert failed.theta_max is None and not failed.passed
    assert failed.count(params.rotation_deg) == 0
    ccf[2] = 0.1
    result = _direction([0.0, 15.0, 30.0], dx, dy, ccf)
    passed = high_cmc_rule(result, tx_px=20, params=params)
    assert passed.theta_max == 0.0 and passed.passed
    assert passed.count(params.rotation_deg) == n
    assert passed.congruent_at.sum(axis=1).tolist() == [n, 0, 0]


def test_directions_must_agree_on_opposite_angles() -> None:
    params = CmcParams()
    n = 8
    good = np.full((1, n), 0.9)
    forward = _direction([20.0], np.zeros((1, n)), np.zeros((1, n)), good)
    agreeing = _direction([-20.0], np.zeros((1, n)), np.zeros((1, n)), good)
    same_sign = _direction([20.0], np.zeros((1, n)), np.zeros((1, n)), good)
    forward_rules, agreeing_rules, same_sign_rules = (direction_rules(d, 20, params) for d in (forward, agreeing, same_sign))
    assert combine_directions(forward_rules, agreeing_rules, params) == (n, True)
    count, passed = combine_directions(forward_rules, same_sign_rules, params)
    assert not passed and count == n  # falls back to the smaller original count


def _annulus(seed: int = 7, side: int = 240) -> np.ndarray:
    """A generated breech face: smooth random heights on an annulus, NaN elsewhere."""
    rng = np.random.default_rng(seed)
    heights = rng.normal(size=(side, side)).astype(np.float32)
    heights = np.asarray(cv2.GaussianBlur(heights, (0, 0), 2.0), np.float32)
    y, x = np.mgrid[:side, :side] - (side - 1) / 2.0
    r = np.hypot(x, y)
    heights[(r > side / 2 - 2) | (r < side / 8)] = np.nan
    return heights


def test_cell_grid_follows_the_measured_face_not_the_array_around_it() -> None:
    """The same face stored in a larger array (as a scan turned in its file is) gets the same cells.

    Before, the grid was sized from the array: a face turned by 45 degrees sits in an array
    ~1.4 times wider, so it was cut into fewer, larger cells and the count changed with the
    file's orientation (docs/comparison.md, "Orientation").
    """
    face = _annulus()
    padded = np.full((face.shape[0] + 110, face.shape[1] + 70), np.nan, np.float32)
    padded[55 : 55 + face.shape[0], 35 : 35 + face.shape[1]] = face  # same centre
    grid, wide = _cell_grid(face, CmcParams()), _cell_grid(padded, CmcParams())
    assert wide.cell == grid.cell and wide.region == grid.region
    np.testing.assert_array_equal(wide.index, grid.index)
    np.testing.assert_array_equal(wide.box, grid.box + np.array([55, 35, 55, 35]))
    np.testing.assert_array_equal(wide.raw, grid.raw)
    # and so does the registration of those cells against any target
    target = transform(face, 33.5, (3.0, -2.0), (260, 260))
    angles, shifts = np.array([-33.0, -36.0]), np.zeros((2, 2))
    a, b = register_direction(face, target, angles, shifts, CmcParams()), register_direction(padded, target, angles, shifts, CmcParams())
    np.testing.assert_allclose(a.ccf, b.ccf, atol=1e-5)


def rotated_scan(surface: np.ndarray, angle: float) -> np.ndarray:
    """The scan as if it had been measured turned by ``angle``: rotated in a larger array, the NaN mask alongside."""
    side = int(np.ceil(max(surface.shape) * (abs(np.cos(np.radians(angle))) + abs(np.sin(np.radians(angle)))))) + 2
    return transform(np.asarray(surface, np.float32), angle, (0.0, 0.0), (side, side))


DENSE_ANGLES = [-179.5, -101.0, -30.0, 0.5, 45.0, 91.5]


def test_decision_does_not_depend_on_the_orientation_of_the_questioned_scan() -> None:
    """A known match stays an identification at every orientation, its count near its median;
    a known non-match never becomes one (the original rule decides, identification at 6)."""
    identification = DecisionParams().identification_cmc
    same = [compare_surfaces(fadul("1-1"), rotated_scan(fadul("1-2"), a), SPACING).cmc_original for a in DENSE_ANGLES]
    assert min(same) >= identification, dict(zip(DENSE_ANGLES, same, strict=True))
    assert max(abs(c - np.median(same)) for c in same) <= 4, dict(zip(DENSE_ANGLES, same, strict=True))
    different = [compare_surfaces(fadul("1-1"), rotated_scan(fadul("2-1"), a), SPACING).cmc_original for a in DENSE_ANGLES]
    assert max(different) < identification, dict(zip(DENSE_ANGLES, different, strict=True))


def test_vectorised_cell_correlation_is_the_pairwise_complete_pearson_of_each_cell() -> None:
    """The batched scores equal :func:`pearson_complete` cell by cell, NaN where it has no answer."""
    rng = np.random.default_rng(3)
    side, n = 30, 6
    cells = rng.normal(size=(n, side, side)).astype(np.float32)
    cells[0, :10] = np.nan  # holes in a cell
    cells[1, 2:, :] = np.nan  # 60 measured points: fewer than 100, no answer
    cells[2] = 1.5  # flat: no answer
    frame = rng.normal(size=(120, 130)).astype(np.float32)
    frame[40:70, 50:60] = np.nan
    corners = np.array([[0, 0], [5, 7], [45, 40], [60, 90], [90, 100], [30, 55]])
    cell_weight = np.isfinite(cells).astype(np.float32)
    values, weight = _measured(frame.copy())
    scores = _pearson_at(np.where(cell_weight > 0, cells, 0), cell_weight, values, weight, corners)
    expected = [pearson_complete(cells[k], frame[y : y + side, x : x + side]) for k, (y, x) in enumerate(corners)]
    assert expected[1] is None and expected[2] is None
    np.testing.assert_allclose(scores, [np.nan if e is None else e for e in expected], rtol=0, atol=1e-12)


def test_batching_angles_together_does_not_change_the_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    face = _annulus()
    target = transform(face, -20.0, (4.0, -3.0), (260, 260))
    angles, shifts = np.array([17.0, 20.0, 23.0, 80.0, -150.0]), np.tile([-4.0, 3.0], (5, 1))
    monkeypatch.setattr(cmc_module, "REGION_BATCH", 1)  # one angle per batch of FFTs
    one = register_direction(face, target, angles, shifts, CmcParams())
    monkeypatch.setattr(cmc_module, "REGION_BATCH", 10_000)  # every angle in one batch
    every = register_direction(face, target, angles, shifts, CmcParams())
    np.testing.assert_array_equal(one.dx, every.dx)
    np.testing.assert_array_equal(one.dy, every.dy)
    np.testing.assert_allclose(one.ccf, every.ccf, rtol=0, atol=1e-12)
    assert np.nanmax(one.ccf[1]) > 0.9  # 20 degrees is the true angle


def test_cells_register_where_a_direct_search_of_every_shift_puts_them() -> None:
    """The FFT registration finds cmcR's maximum: the standardised cell's correlation with its
    standardised, zero-filled region over every shift that keeps it inside, computed directly."""
    params = CmcParams(cells=(4, 4))
    face = _annulus(seed=11, side=100)
    target = transform(face, 8.0, (2.0, 1.0), (112, 112))
    target = target + np.asarray(np.random.default_rng(5).normal(scale=0.3, size=target.shape), np.float32)
    angles, shifts = np.array([-9.0, -6.0, 30.0]), np.zeros((3, 2))
    result = register_direction(face, target, angles, shifts, params)
    grid = _cell_grid(face, params)
    half, span, margin = (grid.region - grid.cell) // 2, grid.region - grid.cell + 1, grid.region
    out_shape = (face.shape[0] + 2 * margin, face.shape[1] + 2 * margin)
    standard = lambda a: np.nan_to_num((a - np.nanmean(a)) / np.nanstd(a))  # noqa: E731
    checked = 0
    for i, angle in enumerate(angles):
        frame = transform(target, angle, (0.0, 0.0), out_shape)
        for k, (y0, x0, _, _) in enumerate(grid.box):
            region = frame[y0 + margin - half : y0 + margin - half + grid.region, x0 + margin - half : x0 + margin - half + grid.region]
            if np.isnan(region).mean() > params.max_missing:
                assert np.isnan(result.ccf[i, k])
                continue
            windows = np.lib.stride_tricks.sliding_window_view(standard(region), (grid.cell, grid.cell))[:span, :span]
            corr = np.einsum("abij,ij->ab", windows, standard(grid.raw[k]))
            by, bx = np.unravel_index(np.argmax(corr), corr.shape)
            assert (result.dy[i, k], result.dx[i, k]) == (by - half, bx - half)
            score = pearson_complete(grid.raw[k], region[by : by + grid.cell, bx : bx + grid.cell])
            assert result.ccf[i, k] == pytest.approx(np.nan if score is None else score, abs=1e-9, nan_ok=True)
            checked += 1
    assert checked >= 2 * len(grid.index)


def test_one_thread_and_two_give_the_same_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    face = _annulus()
    target = transform(face, 100.0, (5.0, 2.0), (250, 250))
    threaded = compare_surfaces(face, target, SPACING)
    monkeypatch.setattr(registration_module, "THREADS", 1)
    single = compare_surfaces(face, target, SPACING)
    for a, b in ((threaded.forward, single.forward), (threaded.backward, single.backward)):
        np.testing.assert_array_equal(a.dx, b.dx)
        np.testing.assert_array_equal(a.ccf, b.ccf)
    assert (threaded.cmc_original, threaded.cmc_high, threaded.rotation_deg) == (single.cmc_original, single.cmc_high, single.rotation_deg)
    assert threaded.cmc_original >= 6


def test_cell_grids_are_reused_only_for_the_same_heights() -> None:
    face = _annulus(seed=21)
    grid = _cell_grid(face, CmcParams())
    assert _cell_grid(face.copy(), CmcParams()) is grid  # same heights, another array: cut once
    assert _cell_grid(face, CmcParams(cells=(6, 6))) is not grid  # other grid parameters
    assert np.isfinite(face[20, 120])
    face[20, 120] += 1.0  # the same array, changed in place: its cells are cut again
    changed = _cell_grid(face, CmcParams())
    assert changed is not grid and not np.array_equal(changed.raw, grid.raw, equal_nan=True)
