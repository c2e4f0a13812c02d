"""Global registration over the whole circle: angles, translations and their inverses."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from conftest import FADUL, require_real_scans
from hypothesis import given
from hypothesis import strategies as st

from ballistics.cmc import register_direction
from ballistics.method import CmcParams
from ballistics.registration import block_mean, coarse_candidates, coarse_scores, inverse_shifts, rotation_matrix, transform, wrap_deg
from ballistics.scan import load_scan

SPACING_M = 6.25e-6
ANGLE = 60.0  # the moving copy is the surface turned by -ANGLE, so ANGLE registers it back
SHIFT = (14.0, -9.0)  # pixels, applied after the turn


@cache
def fadul_3_1() -> np.ndarray:
    require_real_scans()
    return np.asarray(load_scan(FADUL / "Fadul 3-1.x3p").heights, np.float32)


@cache
def turned_copy() -> np.ndarray:
    surface = fadul_3_1()
    side = max(surface.shape) + 40
    return transform(surface, -ANGLE, SHIFT, (side, side))


def expected_shift() -> np.ndarray:
    """The copy's point q = R(-a) p + s comes back with R(a) q + t = p, so t = -R(a) s."""
    return -(rotation_matrix(ANGLE) @ np.asarray(SHIFT))


def test_coarse_registration_finds_a_known_rotation_and_shift_of_a_real_surface() -> None:
    candidates, shifts = coarse_candidates(
        fadul_3_1(), turned_copy(), step_deg=3.0, count=3, separation_deg=15.0, block=6, min_overlap=0.5, max_shift_px=160.0
    )
    best = candidates[0]
    assert abs(wrap_deg(best.angle_deg - ANGLE)) <= 3.0, best
    assert np.hypot(*(np.asarray(best.shift_px) - expected_shift())) <= 9.0, (best.shift_px, expected_shift())
    assert best.score > 0.8 and best.score > 1.5 * candidates[1].score  # one clear peak
    assert len(shifts) == 120  # a translation at every 3-degree step, for the cell-level search


def test_cells_register_at_zero_displacement_at_the_true_pose() -> None:
    """At the true angle and translation every cell sits where it belongs and correlates highly."""
    result = register_direction(fadul_3_1(), turned_copy(), np.array([ANGLE]), expected_shift()[None, :], CmcParams())
    scored = np.isfinite(result.ccf[0])
    assert scored.sum() >= 20
    assert np.median(result.ccf[0][scored]) > 0.9
    in_place = (np.abs(result.dx[0]) <= 2) & (np.abs(result.dy[0]) <= 2)
    assert in_place[scored].mean() >= 0.85  # a few nearly empty rim cells may lock onto noise
    off = register_direction(fadul_3_1(), turned_copy(), np.array([ANGLE + 30.0]), expected_shift()[None, :], CmcParams())
    # 30 degrees off, the cells correlate less and no longer agree on where they are
    assert np.nanmedian(off.ccf[0]) < np.median(result.ccf[0][scored]) - 0.2
    off_in_place = (np.abs(off.dx[0]) <= 2) & (np.abs(off.dy[0]) <= 2)
    assert off_in_place[np.isfinite(off.ccf[0])].mean() < 0.5


@given(
    st.lists(st.floats(-180, 180, allow_nan=False), min_size=1, max_size=5),
    st.floats(-500, 500, allow_nan=False),
    st.floats(-500, 500, allow_nan=False),
)
def test_inverse_shifts_undo_the_forward_registration(angles: list[float], tx: float, ty: float) -> None:
    """p_ref = R(a) p_tgt + t  <=>  p_tgt = R(-a) p_ref + t' with t' from inverse_shifts; twice is identity."""
    a = np.asarray(angles)
    t = np.tile([tx, ty], (len(a), 1))
    back = inverse_shifts(a, t)
    assert back.shape == (len(a), 2)
    np.testing.assert_allclose(inverse_shifts(-a, back), t, atol=1e-9)
    points = np.array([[3.0, -7.0], [120.5, 44.0], [-60.0, 0.25]])
    for angle, forward, backward in zip(a, t, back, strict=True):
        in_reference = points @ rotation_matrix(angle).T + forward
        np.testing.assert_allclose(in_reference @ rotation_matrix(-angle).T + backward, points, atol=1e-9)


@given(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False))
def test_wrap_deg_lands_in_half_open_interval_and_keeps_the_angle(angle: float) -> None:
    wrapped = wrap_deg(angle)
    assert isinstance(wrapped, float)
    assert -180.0 < wrapped <= 180.0
    turns = (wrapped - angle) / 360.0
    assert abs(turns - round(turns)) < 1e-9


def test_wrap_deg_edges_and_arrays() -> None:
    assert wrap_deg(180.0) == 180.0 and wrap_deg(-180.0) == 180.0 and wrap_deg(540.0) == 180.0
    assert wrap_deg(-181.0) == 179.0 and wrap_deg(0.0) == 0.0
    wrapped = wrap_deg(np.array([-540.0, -90.0, 359.0, 721.0]))
    assert isinstance(wrapped, np.ndarray)
    np.testing.assert_allclose(wrapped, [180.0, -90.0, -1.0, 1.0])


def test_block_mean_drops_blocks_that_are_mostly_missing() -> None:
    surface = np.arange(16, dtype=np.float32).reshape(4, 4)
    surface[0, 0] = surface[0, 1] = surface[1, 0] = np.nan  # 1 of 4 valid: dropped
    surface[2, 2] = np.nan  # 3 of 4 valid: kept, mean of the valid ones
    means = block_mean(surface, 2)
    assert np.isnan(means[0, 0])
    assert means[0, 1] == pytest.approx(np.mean([2, 3, 6, 7]))
    assert means[1, 1] == pytest.approx(np.mean([11, 14, 15]))


def test_transform_puts_the_centre_on_the_centre_plus_shift_and_never_invents_heights() -> None:
    moving = np.full((21, 21), np.nan, np.float32)
    moving[10, 10] = 1.0
    moving[9:12, 9:12] = 1.0
    out = transform(moving, 90.0, (5.0, -3.0), (41, 41))
    ys, xs = np.nonzero(np.isfinite(out))
    assert abs(xs.mean() - (20 + 5)) <= 1 and abs(ys.mean() - (20 - 3)) <= 1
    assert np.isfinite(out).sum() <= 9  # NaN spreads under bilinear interpolation, values do not


@pytest.mark.parametrize("angle", [0.0, 33.3, -101.0, 179.5])
def test_transform_computes_the_same_pixels_when_asked_for_only_a_corner(angle: float) -> None:
    """The cell search asks only for the rows and columns its regions reach: the same values, bit for bit."""
    rng = np.random.default_rng(1)
    moving = rng.normal(size=(301, 290)).astype(np.float32)
    moving[rng.random(moving.shape) < 0.05] = np.nan
    full = transform(moving, angle, (7.25, -3.5), (707, 701))
    for reach in ((500, 433), (707, 640), (312, 701)):
        corner = transform(moving, angle, (7.25, -3.5), (707, 701), reach)
        assert corner.shape[0] == reach[0] and reach[1] <= corner.shape[1] <= 701
        np.testing.assert_array_equal(corner, full[: corner.shape[0], : corner.shape[1]])


def test_coarse_scores_match_a_direct_masked_correlation_at_every_shift() -> None:
    """Padfield's FFT form, scored over the reachable shifts only, against the Pearson correlation
    of the overlapping measured points computed shift by shift."""
    rng = np.random.default_rng(2)
    fixed = rng.normal(size=(24, 24))
    fixed[:5, :7] = np.nan
    moving = np.roll(fixed, (3, -2), axis=(0, 1)) + rng.normal(scale=0.5, size=fixed.shape)
    moving[15:, 18:] = np.nan
    max_shift, min_overlap = 6, 0.5
    scores, shifts = coarse_scores(fixed, moving, np.array([0.0]), block=1, min_overlap=min_overlap, max_shift_px=max_shift)
    # what the registration sees: both placed on the common frame, the moving one then turned (by
    # 0 degrees); each bilinear placement lets NaN spread to its neighbours
    place = lambda s: transform(np.asarray(s, np.float32), 0.0, (0.0, 0.0), (24, 24))  # noqa: E731
    fixed, moving = place(fixed).astype(float), place(place(moving)).astype(float)
    best, where = -1.0, (0, 0)
    smaller = min(np.isfinite(fixed).sum(), np.isfinite(moving).sum())
    for sy in range(-max_shift, max_shift + 1):
        for sx in range(-max_shift, max_shift + 1):
            # corr[s] = sum_p fixed[p + s] * moving[p]
            f = fixed[max(sy, 0) : 24 + min(sy, 0), max(sx, 0) : 24 + min(sx, 0)]
            m = moving[max(-sy, 0) : 24 + min(-sy, 0), max(-sx, 0) : 24 + min(-sx, 0)]
            both = np.isfinite(f) & np.isfinite(m)
            if both.sum() >= min_overlap * smaller:
                r = np.corrcoef(f[both], m[both])[0, 1]
                if r > best:
                    best, where = r, (sx, sy)
    assert scores[0] == pytest.approx(best, abs=1e-6)  # the transforms are in single precision
    assert tuple(shifts[0]) == where == (2, -3)  # x, y: moves the moving surface back onto the fixed one
