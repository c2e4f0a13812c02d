"""Today's comparison engine, kept verbatim as the in-process baseline of the benchmarks.

A copy of the code path of ``ballistics.cmc.compare_surfaces`` as it was before the engine was
made faster (commit 87d80d0): the coarse registration in float64 with full-size inverse FFTs,
the cells registered one angle at a time through ``scipy.fft`` with implicit zero-padding, and
the pairwise-complete correlation cell by cell. The decision rules, unchanged, come from the
package. :func:`baseline_engine` swaps it into :func:`ballistics.compare.compare_prepared` so
that both engines run through the same orchestration.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import scipy.fft as sfft

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ballistics.cmc import (
    CmcResult,
    DirectionResult,
    _consensus_registration,
    combine_directions,
    direction_rules,
)
from ballistics.method import CmcParams
from ballistics.registration import Candidate, angle_key, inverse_shifts, wrap_deg

ANGLE_BATCH = 60


def _frame_size(a: np.ndarray, b: np.ndarray) -> int:
    return int(max(a.shape + b.shape))


def transform(moving: np.ndarray, angle_deg: float, shift_px: tuple[float, float], out_shape: tuple[int, int]) -> np.ndarray:
    """Rotate ``moving`` about its centre, translate, and place it on a grid of ``out_shape``."""
    h, w = moving.shape
    oh, ow = out_shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(angle_deg), 1.0)
    matrix[0, 2] += (ow - w) / 2.0 + shift_px[0]
    matrix[1, 2] += (oh - h) / 2.0 + shift_px[1]
    return cv2.warpAffine(moving, matrix, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


def block_mean(surface: np.ndarray, block: int) -> np.ndarray:
    """NaN-aware block average: a block with fewer than half its points valid becomes NaN."""
    h, w = surface.shape
    hb, wb = h // block, w // block
    tiles = surface[: hb * block, : wb * block].reshape(hb, block, wb, block)
    valid = np.isfinite(tiles)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, tiles, 0).sum(axis=(1, 3))
    out = np.full((hb, wb), np.nan, np.float32)
    keep = count >= block * block / 2
    out[keep] = total[keep] / count[keep]
    return out


class _MaskedNcc:
    """Masked normalised cross-correlation (Padfield 2012) against a fixed surface."""

    def __init__(self, fixed: np.ndarray, min_overlap: float, max_shift: int) -> None:
        self.shape = fixed.shape
        self.max_shift = max_shift
        self.size = tuple(sfft.next_fast_len(n + max_shift, real=True) for n in fixed.shape)
        mask = np.isfinite(fixed).astype(np.float64)
        values = np.where(mask > 0, fixed, 0).astype(np.float64)
        if mask.any():
            values -= values[mask > 0].mean()
        values *= mask
        self.fixed_area = mask.sum()
        self.min_overlap = min_overlap
        self.f_mask = sfft.rfft2(mask, self.size)
        self.f_values = sfft.rfft2(values, self.size)
        self.f_squares = sfft.rfft2(values * values, self.size)

    def best(self, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.isfinite(moving)
        area = mask.sum(axis=(1, 2)).astype(np.float64)
        values = np.where(mask, moving, 0).astype(np.float64)
        values -= (values.sum(axis=(1, 2)) / np.maximum(area, 1))[:, None, None]
        values *= mask
        fwd = lambda a: np.conj(sfft.rfft2(a, self.size, axes=(1, 2), workers=-1))  # noqa: E731
        inv = lambda spectrum: sfft.irfft2(spectrum, self.size, axes=(1, 2), workers=-1)  # noqa: E731
        m_mask, m_values, m_squares = fwd(mask.astype(np.float64)), fwd(values), fwd(values * values)
        # corr[s] = sum_p fixed[p + s] * moving[p]: the conjugate spectrum of the moving side.
        overlap = np.round(inv(self.f_mask * m_mask))
        sum_f = inv(self.f_values * m_mask)
        sum_m = inv(self.f_mask * m_values)
        sum_ff = inv(self.f_squares * m_mask)
        sum_mm = inv(self.f_mask * m_squares)
        sum_fm = inv(self.f_values * m_values)
        n = np.maximum(overlap, 1.0)
        numerator = sum_fm - sum_f * sum_m / n
        denominator = (sum_ff - sum_f**2 / n) * (sum_mm - sum_m**2 / n)
        enough = overlap >= self.min_overlap * np.minimum(self.fixed_area, area)[:, None, None]
        ncc = np.where(enough & (denominator > 1e-30), numerator / np.sqrt(np.maximum(denominator, 1e-30)), -1.0)
        ncc = self._within_reach(ncc)
        flat = ncc.reshape(len(ncc), -1).argmax(axis=1)
        py, px = np.unravel_index(flat, ncc.shape[1:])
        scores = ncc[np.arange(len(ncc)), py, px]
        signed = lambda k, size: np.where(k > size // 2, k - size, k)  # noqa: E731
        shifts = np.stack([signed(px, self.size[1]), signed(py, self.size[0])], axis=1).astype(float)
        return scores, shifts

    def _within_reach(self, ncc: np.ndarray) -> np.ndarray:
        """Blank the circular shifts beyond ``max_shift``, which wrap around."""
        reach = self.max_shift
        for axis, size in ((1, self.size[0]), (2, self.size[1])):
            k = np.arange(size)
            far = np.minimum(k, size - k) > reach
            index = [slice(None)] * 3
            index[axis] = far
            ncc[tuple(index)] = -1.0
        return ncc


def _coarse_frames(fixed: np.ndarray, moving: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    size = _frame_size(fixed, moving)
    size += (-size) % block
    fixed_small, moving_small = (block_mean(transform(s, 0.0, (0.0, 0.0), (size, size)), block) for s in (fixed, moving))
    return fixed_small, moving_small


def coarse_scores(
    fixed: np.ndarray, moving: np.ndarray, angles: np.ndarray, *, block: int, min_overlap: float, max_shift_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best masked NCC [1]_ and translation (fixed-surface px) of ``moving`` at each angle."""
    small_fixed, small_moving = _coarse_frames(fixed, moving, block)
    ncc = _MaskedNcc(small_fixed, min_overlap, int(np.ceil(max_shift_px / block)))
    scores, shifts = np.empty(len(angles)), np.empty((len(angles), 2))
    for start in range(0, len(angles), ANGLE_BATCH):
        batch = angles[start : start + ANGLE_BATCH]
        stack = np.stack([transform(small_moving, angle, (0.0, 0.0), small_fixed.shape) for angle in batch])
        scores[start : start + len(batch)], shifts[start : start + len(batch)] = ncc.best(stack)
    return scores, shifts * block


def coarse_candidates(
    fixed: np.ndarray,
    moving: np.ndarray,
    *,
    step_deg: float,
    count: int,
    separation_deg: float,
    block: int,
    min_overlap: float,
    max_shift_px: float,
) -> tuple[list[Candidate], dict[float, tuple[float, float]]]:
    """The few angles of the whole circle where the surfaces agree best, best first."""
    angles = np.arange(0.0, 360.0, step_deg)
    scores, shifts = coarse_scores(fixed, moving, angles, block=block, min_overlap=min_overlap, max_shift_px=max_shift_px)
    order = np.argsort(-scores)
    chosen: list[Candidate] = []
    for i in order:
        angle = float(wrap_deg(angles[i]))
        if all(abs(wrap_deg(angle - c.angle_deg)) >= separation_deg for c in chosen):
            chosen.append(Candidate(angle, (float(shifts[i][0]), float(shifts[i][1])), float(scores[i])))
        if len(chosen) == count:
            break
    by_angle = {angle_key(a): (float(x), float(y)) for a, (x, y) in zip(angles, shifts, strict=True)}
    return chosen, by_angle


def compare_surfaces(reference: np.ndarray, target: np.ndarray, spacing_m: float, params: CmcParams = CmcParams()) -> CmcResult:
    """Congruent Matching Cells both ways between two working surfaces, over the full circle."""
    ref = _as_float32(reference)
    tgt = _as_float32(target)
    block, min_overlap = params.coarse_block, params.coarse_min_overlap
    max_shift_px = params.coarse_max_shift_um * 1e-6 / spacing_m
    if params.full_circle:
        candidates, shift_at = coarse_candidates(
            ref,
            tgt,
            step_deg=params.angle_step_deg,
            count=params.candidates,
            separation_deg=params.candidate_separation_deg,
            block=block,
            min_overlap=min_overlap,
            max_shift_px=max_shift_px,
        )
        forward_angles = _window_angles([c.angle_deg for c in candidates], params)
        forward_shifts = np.array([shift_at[angle_key(a)] for a in forward_angles])
    else:
        candidates = []
        forward_angles = np.arange(-params.fixed_window_deg, params.fixed_window_deg + 1e-9, params.angle_step_deg)
        forward_shifts = coarse_scores(ref, tgt, forward_angles, block=block, min_overlap=min_overlap, max_shift_px=max_shift_px)[1]
    forward = register_direction(ref, tgt, forward_angles, forward_shifts, params)
    backward_angles = np.asarray(wrap_deg(-forward_angles))
    backward = register_direction(tgt, ref, backward_angles, inverse_shifts(forward_angles, forward_shifts), params)
    tx_px = params.translation_um * 1e-6 / spacing_m
    forward_rules, backward_rules = (direction_rules(direction, tx_px, params) for direction in (forward, backward))
    cmc_high, passed = combine_directions(forward_rules, backward_rules, params)
    rotation, shift = _consensus_registration(forward, forward_rules, ref.shape, params)
    return CmcResult(
        forward=forward,
        backward=backward,
        forward_rules=forward_rules,
        backward_rules=backward_rules,
        cmc_high=cmc_high,
        cmc_original=min(forward_rules.original.count, backward_rules.original.count),
        high_cmc_passed=passed,
        rotation_deg=rotation,
        shift_px=shift,
        candidates=candidates,
        params=params,
    )


def _window_angles(centres: list[float], params: CmcParams) -> np.ndarray:
    """The cell-level angles: each candidate +- window on the angle grid, without repeats."""
    offsets = np.arange(-params.window_deg, params.window_deg + 1e-9, params.angle_step_deg)
    angles: list[float] = []
    for centre in centres:
        for offset in offsets:
            angle = float(wrap_deg(round((centre + offset) / params.angle_step_deg) * params.angle_step_deg))
            if all(abs(wrap_deg(angle - a)) > 1e-6 for a in angles):
                angles.append(angle)
    return np.array(angles)


def _as_float32(surface: np.ndarray) -> np.ndarray:
    array = np.asarray(surface, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError("a surface must be a 2-D array")
    return array


@dataclass
class _CellGrid:
    """The fixed side's cells, standardised and transformed once per direction."""

    index: np.ndarray  # (N, 2)
    box: np.ndarray  # (N, 4) y0, x0, y1, x1 in the fixed surface
    raw: np.ndarray  # (N, C, C) heights with NaN
    spectra: np.ndarray  # (N, F, F//2+1) conj FFT of standardised, zero-filled cells
    cell: int
    region: int
    fft_size: int


def measured_extent(surface: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, x0, y1, x1)`` (end exclusive) of the measured points; the whole array if none."""
    valid = np.isfinite(surface)
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if rows.size == 0:
        return 0, 0, surface.shape[0], surface.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _cell_grid(fixed: np.ndarray, params: CmcParams) -> _CellGrid:
    """The grid of cells over the measured breech face of ``fixed``."""
    rows, cols = params.cells
    y0, x0, y1, x1 = measured_extent(fixed)
    h, w = y1 - y0, x1 - x0
    cell = int(np.ceil(max(h / rows, w / cols)))
    region = round(cell * params.region_factor)
    region += (region - cell) % 2  # keeps the cell exactly centred in its region
    fft_size = sfft.next_fast_len(region, real=True)
    padded = np.full((rows * cell, cols * cell), np.nan, np.float32)
    oy, ox = (rows * cell - h) // 2 - y0, (cols * cell - w) // 2 - x0  # grid origin at -(oy, ox) in fixed
    padded[oy + y0 : oy + y1, ox + x0 : ox + x1] = fixed[y0:y1, x0:x1]
    index, boxes, raws = [], [], []
    for r in range(rows):
        for c in range(cols):
            block = padded[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
            if np.isnan(block).mean() > params.max_missing:
                continue
            index.append((r, c))
            boxes.append((r * cell - oy, c * cell - ox, (r + 1) * cell - oy, (c + 1) * cell - ox))
            raws.append(block)
    raw = np.array(raws, np.float32).reshape(-1, cell, cell)
    standard = _standardise(raw)
    spectra = np.conj(sfft.rfft2(standard, (fft_size, fft_size), axes=(1, 2), workers=-1))
    return _CellGrid(np.array(index, int).reshape(-1, 2), np.array(boxes, int).reshape(-1, 4), raw, spectra, cell, region, fft_size)


def _standardise(stack: np.ndarray) -> np.ndarray:
    """(x - mean) / sd over each slice's valid points, NaN set to 0 (as cmcR does before FFT)."""
    valid = np.isfinite(stack)
    count = np.maximum(valid.sum(axis=(1, 2), keepdims=True), 1).astype(np.float32)
    filled = np.where(valid, stack, np.float32(0))
    mean = filled.sum(axis=(1, 2), keepdims=True) / count
    filled -= mean
    filled *= valid
    sd = np.sqrt(np.einsum("nij,nij->n", filled, filled)[:, None, None] / count)
    filled /= np.where(sd > 0, sd, np.float32(1))
    return filled


def register_direction(fixed: np.ndarray, moving: np.ndarray, angles: np.ndarray, shifts: np.ndarray, params: CmcParams) -> DirectionResult:
    """Register every cell of ``fixed`` inside ``moving`` rotated to each angle (and pre-shifted)."""
    grid = _cell_grid(fixed, params)
    n, a = len(grid.index), len(angles)
    dx = np.full((a, n), np.nan)
    dy = np.full((a, n), np.nan)
    ccf = np.full((a, n), np.nan)
    margin = grid.region
    out_shape = (fixed.shape[0] + 2 * margin, fixed.shape[1] + 2 * margin)
    half = (grid.region - grid.cell) // 2
    for i, angle in enumerate(angles):
        frame = transform(moving, angle, (shifts[i][0], shifts[i][1]), out_shape)
        if n == 0:
            continue
        regions = _regions(frame, grid, margin, half)
        usable = np.isnan(regions).mean(axis=(1, 2)) <= params.max_missing
        spectra = sfft.rfft2(_standardise(regions), (grid.fft_size, grid.fft_size), axes=(1, 2), workers=-1)
        corr = sfft.irfft2(spectra * grid.spectra, (grid.fft_size, grid.fft_size), axes=(1, 2), workers=-1)
        span = grid.region - grid.cell + 1  # shifts that keep the cell inside its region
        window = corr[:, :span, :span].reshape(n, -1)
        best = np.argmax(window, axis=1)
        by, bx = np.divmod(best, span)
        dx[i] = bx - half
        dy[i] = by - half
        ccf[i] = np.where(usable, _pairwise_complete(grid.raw, regions, by, bx), np.nan)
    return DirectionResult(
        angles=np.asarray(angles, float), cell_index=grid.index, cell_box=grid.box, dx=dx, dy=dy, ccf=ccf, shifts=np.asarray(shifts, float)
    )


def _regions(frame: np.ndarray, grid: _CellGrid, margin: int, half: int) -> np.ndarray:
    out = np.empty((len(grid.index), grid.region, grid.region), np.float32)
    for k, (y0, x0, _, _) in enumerate(grid.box):
        ry, rx = y0 + margin - half, x0 + margin - half
        out[k] = frame[ry : ry + grid.region, rx : rx + grid.region]
    return out


def _pairwise_complete(cells: np.ndarray, regions: np.ndarray, by: np.ndarray, bx: np.ndarray) -> np.ndarray:
    """Pearson correlation of each cell with the region patch at its best shift."""
    c = cells.shape[1]
    scores = [pearson_complete(cells[k], regions[k, by[k] : by[k] + c, bx[k] : bx[k] + c]) for k in range(len(cells))]
    return np.array([np.nan if v is None else v for v in scores], dtype=float)


def pearson_complete(a: np.ndarray, b: np.ndarray, min_points: int = 100) -> float | None:
    """Pearson correlation over the points both surfaces measured (pairwise-complete)."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < min_points:
        return None
    x = a[both].astype(np.float64)
    y = b[both].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else None


def registered_correlation(
    reference: np.ndarray, questioned: np.ndarray, rotation_deg: float, shift_px: tuple[float, float]
) -> float | None:
    """Pairwise-complete Pearson correlation of the reference and the registered questioned surface."""
    moved = transform(np.asarray(questioned, np.float32), rotation_deg, shift_px, reference.shape)
    return pearson_complete(reference, moved)


@contextmanager
def baseline_engine() -> Iterator[None]:
    """Run :func:`ballistics.compare.compare_prepared` on this engine while the context lasts."""
    with (
        mock.patch("ballistics.compare.compare_surfaces", compare_surfaces),
        mock.patch("ballistics.compare.registered_correlation", registered_correlation),
    ):
        yield
