"""Congruent Matching Cells over the full circle of rotations.

The method is Song's (2013) Congruent Matching Cells with Tong's (2015) High CMC rule, as cmcR
implements them: the reference surface is cut into a grid of cells; each cell is registered by
FFT cross-correlation inside a region three times its side, cut from the rotated target at the
same place; the pairwise-complete Pearson correlation at the best shift is the cell's score.
A cell is *congruent* when its shift (and, for the original rule, its angle) agrees with the
consensus of all cells and its correlation reaches the threshold.

Where cmcR searches a fixed -30..30 degree window, a cartridge case can sit in the chamber at any
angle. Searching the whole circle cell by cell costs 120 angles; instead a coarse global
registration (masked normalised cross-correlation of block-averaged surfaces at every angle step)
proposes a few candidate angles and the translation at each, and the cell-level search runs only
in a window around those candidates, with the target pre-shifted by the global translation so
that the cells' search regions are centred where the match is expected. The cell transforms of
the fixed side are computed once per comparison direction.

Everything here is a pure function of arrays (heights in metres, NaN where not measured).

Angle convention: a positive angle rotates the target counter-clockwise as the surface is
displayed with row 0 at the top (OpenCV's convention); the translation is applied after the
rotation, in reference pixels (x to the right, y down).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import scipy.fft as sfft

from ballistics.method import CmcParams
from ballistics.registration import (
    Candidate,
    angle_key,
    coarse_candidates,
    coarse_scores,
    in_parallel,
    inverse_shifts,
    rotation_matrix,
    transform,
    wrap_deg,
)

#: Regions registered per batch of FFTs in :func:`register_direction` (bounds the memory of the
#: spectra it holds; the batch spans several angles).
REGION_BATCH = 32


@dataclass(frozen=True, eq=False)
class DirectionResult:
    """Per-angle, per-cell registrations of one comparison direction (no decision yet)."""

    angles: np.ndarray  # (A,) degrees
    cell_index: np.ndarray  # (N, 2) grid row, col
    cell_box: np.ndarray  # (N, 4) y0, x0, y1, x1 in fixed-surface pixels
    dx: np.ndarray  # (A, N) pixels, cell displacement relative to its expected place, NaN where not scored
    dy: np.ndarray
    ccf: np.ndarray  # (A, N) pairwise-complete correlation, NaN where too little overlap
    shifts: np.ndarray  # (A, 2) global translation applied at each angle (x, y) px


@dataclass(frozen=True, eq=False)
class OriginalRuleResult:
    """Song's (2013) original rule on one direction: which cells are congruent, at which angle."""

    congruent: np.ndarray  # (N,) bool, congruent under the original rule
    cell_angle: np.ndarray  # (N,) degrees, each cell's best angle (NaN for a cell never scored)

    @property
    def count(self) -> int:
        """Number of congruent cells."""
        return int(self.congruent.sum())


@dataclass(frozen=True, eq=False)
class HighCmcRuleResult:
    """Tong's (2015) High CMC rule on one direction.

    ``congruent_at`` marks, per angle, the cells congruent at that angle; ``theta_max`` is the
    High CMC angle in degrees, None when the near-maximal angles disagree (the rule fails).
    """

    angles: np.ndarray  # (A,) degrees, as registered
    congruent_at: np.ndarray  # (A, N) bool
    theta_max: float | None

    @property
    def passed(self) -> bool:
        return self.theta_max is not None

    def congruent(self, tolerance_deg: float) -> np.ndarray:
        """(N,) cells congruent at some angle within ``tolerance_deg`` of the High CMC angle."""
        if self.theta_max is None:
            return np.zeros(self.congruent_at.shape[1], bool)
        near = np.abs(np.asarray(wrap_deg(self.angles - self.theta_max))) <= tolerance_deg + 1e-9
        return np.asarray(self.congruent_at[near].any(axis=0), bool)

    def count(self, tolerance_deg: float) -> int:
        """Number of cells congruent within ``tolerance_deg`` of the High CMC angle (0 when failed)."""
        return int(self.congruent(tolerance_deg).sum())


@dataclass(frozen=True, eq=False)
class DirectionRules:
    """Both rules' outcomes for one direction, per cell of ``cell_index`` (grid row, col)."""

    cell_index: np.ndarray  # (N, 2)
    original: OriginalRuleResult
    high: HighCmcRuleResult


@dataclass(frozen=True, eq=False)
class CmcResult:
    """Both directions and the combined counts, as cmcR's decision_combineDirections gives them.

    Neither count here is "the" CMC: which one decides is the caller's choice
    (:class:`ballistics.compare.DecisionParams`), and ``Comparison.cmc`` is the deciding one.
    """

    forward: DirectionResult
    backward: DirectionResult
    forward_rules: DirectionRules
    backward_rules: DirectionRules
    cmc_high: int  # combined High CMC count (falls back to the smaller original count when it fails)
    cmc_original: int  # smaller of the two original-rule counts
    high_cmc_passed: bool
    rotation_deg: float
    shift_px: tuple[float, float]
    candidates: list[Candidate]
    params: CmcParams

    @property
    def cells_compared(self) -> int:
        return int(np.isfinite(self.forward.ccf).any(axis=0).sum())


def compare_surfaces(reference: np.ndarray, target: np.ndarray, spacing_m: float, params: CmcParams = CmcParams()) -> CmcResult:
    """Congruent Matching Cells both ways between two working surfaces, over the full circle.

    A coarse global registration (:func:`ballistics.registration.coarse_candidates`) proposes
    ``params.candidates`` angles and a translation at each; every cell of the reference is then
    registered in the target rotated to the angles within ``params.window_deg`` of a candidate
    (:func:`register_direction`), and the same from the target's side with the inverse angles and
    translations. Both rules (:func:`original_rule`, :func:`high_cmc_rule`) are applied to each
    direction and combined as cmcR does (:func:`combine_directions`).

    Parameters
    ----------
    reference, target : numpy.ndarray
        Working surfaces, heights in metres (any consistent unit: cells are standardised), rows =
        y, NaN where not measured. They need not have the same shape.
    spacing_m : float
        Pixel spacing of both surfaces, metres (converts the micrometre thresholds to pixels).
    params : CmcParams
        Grid, thresholds (``translation_um`` micrometres, ``rotation_deg`` degrees,
        ``ccf_threshold`` dimensionless) and search settings.

    Returns
    -------
    CmcResult
        Both directions' registrations and rule outcomes, ``cmc_original`` (smaller of the two
        directions' original-rule counts, cells), ``cmc_high`` (combined High CMC count, cells;
        the original-rule count when High CMC fails), ``high_cmc_passed``, and the registration
        mapping the target onto the reference (``rotation_deg`` degrees, ``shift_px`` reference
        pixels). Which count decides is the caller's choice.

    References
    ----------
    .. [1] Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
           topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
           https://tsapps.nist.gov/publication/get_pdf.cfm?pub_id=911193
    .. [2] Tong, M., Song, J., Chu, W. (2015). An improved algorithm of Congruent Matching Cells
           (CMC) method for firearm evidence identifications. J. Res. NIST 120, 102.
           doi:10.6028/jres.120.008
    .. [3] Zemmels, J., Hofmann, H., VanderPlas, S. cmcR: an implementation of the 'Congruent
           Matching Cells' method, R package 0.1.11 (CRAN); functions comparison_allTogether,
           decision_CMC and decision_combineDirections.
    """
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
    backward_angles = np.asarray(wrap_deg(-forward_angles))
    forward, backward = in_parallel(
        [
            partial(register_direction, ref, tgt, forward_angles, forward_shifts, params),
            partial(register_direction, tgt, ref, backward_angles, inverse_shifts(forward_angles, forward_shifts), params),
        ]
    )
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


# --- cell-level registration -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _CellGrid:
    """The fixed side's cells, standardised and transformed once (see :func:`_cell_grid`)."""

    index: np.ndarray  # (N, 2)
    box: np.ndarray  # (N, 4) y0, x0, y1, x1 in the fixed surface
    raw: np.ndarray  # (N, C, C) heights with NaN
    spectra: np.ndarray  # (N, F, F//2+1) conj FFT of standardised, zero-filled cells
    cell: int
    region: int
    fft_size: int

    @property
    def weight(self) -> np.ndarray:
        """(N, C, C) 1 where the cell is measured, 0 where not."""
        return np.isfinite(self.raw).astype(np.float32)

    @property
    def values(self) -> np.ndarray:
        """(N, C, C) heights, 0 where not measured."""
        return np.where(np.isfinite(self.raw), self.raw, np.float32(0))


#: Cell grids kept in each process, by content: a surface compared with many others (the
#: questioned scan of a search, every scan of a validation set) is cut and transformed once.
GRID_CACHE_SIZE = 4
_GRIDS: OrderedDict[bytes, _CellGrid] = OrderedDict()
_GRIDS_LOCK = threading.Lock()


def _cell_grid(fixed: np.ndarray, params: CmcParams) -> _CellGrid:
    """The grid of cells over the measured breech face of ``fixed`` (:func:`_cut_cells`), cached.

    The key is a digest of the surface's bytes, shape and the grid's parameters, so a cached
    grid is only ever reused for the same heights.
    """
    surface = np.ascontiguousarray(fixed, np.float32)
    digest = hashlib.blake2b(repr((surface.shape, params.cells, params.region_factor, params.max_missing)).encode(), digest_size=16)
    digest.update(surface.data)
    key = digest.digest()
    with _GRIDS_LOCK:
        if key in _GRIDS:
            _GRIDS.move_to_end(key)
            return _GRIDS[key]
    grid = _cut_cells(surface, params)
    with _GRIDS_LOCK:
        _GRIDS[key] = grid
        while len(_GRIDS) > GRID_CACHE_SIZE:
            _GRIDS.popitem(last=False)
    return grid


def measured_extent(surface: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, x0, y1, x1)`` (end exclusive) of the measured points; the whole array if none."""
    valid = np.isfinite(surface)
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if rows.size == 0:
        return 0, 0, surface.shape[0], surface.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _cut_cells(fixed: np.ndarray, params: CmcParams) -> _CellGrid:
    """The grid of cells over the measured breech face of ``fixed``.

    The grid spans the bounding box of the measured points, not the array that holds them: a
    scan turned in its file (or stored with a wide NaN margin) sits in a larger array, and a grid
    sized from the array would cut the same breech face into fewer, larger cells, so that the
    count would depend on the file's orientation. cmcR's scans are cropped to the breech face,
    where the two coincide.
    """
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
    """Register every cell of ``fixed`` inside ``moving`` rotated to each angle (and pre-shifted).

    ``fixed`` is cut into ``params.cells`` cells; cells more than ``params.max_missing`` missing
    are dropped. At each angle the moving surface is rotated about its centre and translated by
    the angle's shift, each cell's region (``params.region_factor`` times the cell's side,
    centred on the cell) is cut from it, and the cell is located in its region by FFT
    cross-correlation of standardised, zero-filled surfaces (as cmcR). The score is the
    pairwise-complete Pearson correlation (:func:`pearson_complete`) at the best shift.

    The regions of several angles go through one batch of real FFTs (``scipy.fft``, all cores),
    at most :data:`REGION_BATCH` regions at a time; the moving surface is rotated only over the
    rows the regions cover; the inverse transform is carried out only for the shifts that keep
    the cell inside its region, and without its constant scale, which does not move the maximum.

    Parameters
    ----------
    fixed, moving : numpy.ndarray
        Surfaces (heights, NaN where not measured); ``fixed`` supplies the cells.
    angles : numpy.ndarray
        Rotations of ``moving``, degrees, shape (A,); counter-clockwise as displayed.
    shifts : numpy.ndarray
        Translation applied after each rotation, fixed-surface pixels (x, y), shape (A, 2).
    params : CmcParams
        Cell grid, region factor and missing-data limit.

    Returns
    -------
    DirectionResult
        Per angle and cell: displacement ``dx``, ``dy`` (pixels, relative to the cell's expected
        place) and correlation ``ccf`` (dimensionless), all three NaN where the region is more
        than ``params.max_missing`` empty (such a region is neither transformed nor searched),
        with the cells' grid index and box.
    """
    grid = _cell_grid(fixed, params)
    n, a = len(grid.index), len(angles)
    dx = np.full((a, n), np.nan)
    dy = np.full((a, n), np.nan)
    ccf = np.full((a, n), np.nan)
    result = DirectionResult(
        angles=np.asarray(angles, float), cell_index=grid.index, cell_box=grid.box, dx=dx, dy=dy, ccf=ccf, shifts=np.asarray(shifts, float)
    )
    if n == 0 or a == 0:
        return result
    half = (grid.region - grid.cell) // 2
    span = grid.region - grid.cell + 1  # shifts that keep the cell inside its region
    margin = grid.region
    out_shape = (fixed.shape[0] + 2 * margin, fixed.shape[1] + 2 * margin)
    corners = grid.box[:, :2] + margin - half  # each region's corner in the rotated frame
    reach = (int(corners[:, 0].max()) + grid.region, int(corners[:, 1].max()) + grid.region)  # no region reaches beyond
    top, left = (int(v) for v in corners.min(axis=0))  # nor above or left of this
    corners = corners - (top, left)  # ... in the part of the frame that regions cover
    cell_weight, cell_values = grid.weight, grid.values
    area = grid.region * grid.region
    per_batch = max(1, REGION_BATCH // n)
    padded = np.zeros((min(per_batch, a) * n, grid.fft_size, grid.fft_size), np.float32)
    for start in range(0, a, per_batch):
        batch = range(start, min(start + per_batch, a))
        frames = [_measured(transform(moving, angles[i], (shifts[i][0], shifts[i][1]), out_shape, reach)[top:, left:]) for i in batch]
        # Regions more than max_missing empty are never scored: they are neither transformed nor searched.
        counts = np.concatenate([_measured_counts(weight, corners, grid.region) for _, weight in frames])
        kept = np.flatnonzero((area - counts) / area <= params.max_missing)
        m = len(kept)
        if m == 0:
            continue
        frame_of, cell_of = np.divmod(kept, n)
        for slot, (j, k) in enumerate(zip(frame_of, cell_of, strict=True)):
            values, weight = frames[j]
            _centre_region(values, weight, corners[k], grid.region, int(counts[j * n + k]), padded[slot])
        spectra = sfft.rfft2(padded[:m], axes=(1, 2), workers=-1)
        for slot, k in enumerate(cell_of):  # cheaper than gathering the cells' spectra
            spectra[slot] *= grid.spectra[k]
        columns = sfft.ifft(spectra, axis=1, norm="forward", overwrite_x=True, workers=-1)[:, :span]
        corr = sfft.irfft(columns, grid.fft_size, axis=2, norm="forward", workers=-1)
        corr[:, :, span:] = -np.inf  # shifts beyond the region: never the best
        by, bx = np.divmod(corr.reshape(m, -1).argmax(axis=1), grid.fft_size)
        for j, (i, frame) in enumerate(zip(batch, frames, strict=True)):
            mine = frame_of == j
            cells = cell_of[mine]
            dx[i, cells], dy[i, cells] = bx[mine] - half, by[mine] - half
            at = corners[cells] + np.stack([by[mine], bx[mine]], axis=1)
            ccf[i, cells] = _pearson_at(cell_values[cells], cell_weight[cells], *frame, at)
    return result


def _measured(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``frame`` with NaN set to 0 (in place), and its weight: 1 where measured, 0 where not."""
    weight = np.isfinite(frame).astype(np.float32)
    cv2.patchNaNs(frame, 0.0)
    return frame, weight


def _measured_counts(weight: np.ndarray, corners: np.ndarray, side: int) -> np.ndarray:
    """Measured points of each region of ``side`` pixels at ``corners`` (``weight`` 1 measured, 0 not)."""
    return np.array([round(cv2.sumElems(weight[y : y + side, x : x + side])[0]) for y, x in corners], dtype=np.int64).reshape(len(corners))


def _centre_region(values: np.ndarray, weight: np.ndarray, corner: np.ndarray, side: int, count: int, out: np.ndarray) -> None:
    """Write the region at ``corner`` into ``out[:side, :side]``, less its mean over its ``count`` measured points, 0 elsewhere.

    ``values`` are heights with 0 where ``weight`` (1 measured, 0 not) is 0. This is cmcR's
    standardisation without the division by the standard deviation, a positive factor that
    does not move the correlation maximum.
    """
    y, x = corner
    heights, measured = values[y : y + side, x : x + side], weight[y : y + side, x : x + side]
    mean = cv2.sumElems(heights)[0] / max(count, 1)  # summed in double precision
    cv2.scaleAdd(measured, -mean, heights, dst=out[:side, :side])  # heights - mean where measured, 0 elsewhere


def _pearson_at(
    cells: np.ndarray, cell_weight: np.ndarray, values: np.ndarray, weight: np.ndarray, corners: np.ndarray, min_points: int = 100
) -> np.ndarray:
    """Pairwise-complete Pearson correlation of each cell with the patch of a frame at its corner.

    The vectorised form of :func:`pearson_complete` over a stack of cells: ``cells`` and
    ``values`` hold heights with 0 where their ``weight`` (1 measured, 0 not) is 0; sums are
    float64 over the points both measured. NaN where fewer than ``min_points`` are common or
    either side is flat.
    """
    side = cells.shape[1]
    both = cell_weight * np.stack([weight[y : y + side, x : x + side] for y, x in corners])
    count = both.sum(axis=(1, 2), dtype=np.float64)
    x = cells * both.astype(np.float64)
    y = np.stack([values[y : y + side, x : x + side] for y, x in corners]) * both.astype(np.float64)
    safe = np.maximum(count, 1)[:, None, None]
    x -= x.sum(axis=(1, 2), keepdims=True) / safe
    y -= y.sum(axis=(1, 2), keepdims=True) / safe
    x *= both
    y *= both
    xx, yy, xy = (np.einsum("nij,nij->n", u, v) for u, v in ((x, x), (y, y), (x, y)))
    denominator = np.sqrt(xx * yy)
    ok = (count >= min_points) & (denominator > 0)
    return np.where(ok, xy / np.where(ok, denominator, 1.0), np.nan)


def pearson_complete(a: np.ndarray, b: np.ndarray, min_points: int = 100) -> float | None:
    """Pearson correlation over the points both surfaces measured (pairwise-complete).

    Parameters
    ----------
    a, b : numpy.ndarray
        Surfaces of the same shape, NaN where not measured; units cancel.
    min_points : int
        Fewest points measured on both for the correlation to be reported.

    Returns
    -------
    float or None
        The correlation, in [-1, 1]; None below ``min_points`` common points or when either
        side is constant.
    """
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < min_points:
        return None
    x = a[both].astype(np.float64)
    y = b[both].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else None


# --- decision rules ----------------------------------------------------------------------------


def _angle_offsets(angles: np.ndarray, centre: float) -> np.ndarray:
    return np.asarray(wrap_deg(angles - centre))


def original_rule(result: DirectionResult, tx_px: float, params: CmcParams) -> OriginalRuleResult:
    """Song's (2013) original rule on one direction: each cell at its best angle.

    A cell is congruent when, at the angle where it correlates best, its displacement lies
    within ``tx_px`` of the median displacement over all scored cells (x and y separately), its
    angle within ``params.rotation_deg`` of their median angle, and its correlation reaches
    ``params.ccf_threshold``. The registrations are not modified.

    Parameters
    ----------
    result : DirectionResult
        Registrations of one direction.
    tx_px : float
        Translation threshold Tx = Ty, pixels of the fixed surface.
    params : CmcParams
        ``rotation_deg`` (degrees) and ``ccf_threshold`` (dimensionless).

    Returns
    -------
    OriginalRuleResult
        Congruent cells (bool per cell), each cell's best angle (degrees) and their count.

    References
    ----------
    .. [1] Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
           topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
           https://tsapps.nist.gov/publication/get_pdf.cfm?pub_id=911193
    .. [2] Zemmels, J., Hofmann, H., VanderPlas, S. cmcR: an implementation of the 'Congruent
           Matching Cells' method, R package 0.1.11 (CRAN); functions comparison_allTogether,
           decision_CMC and decision_combineDirections. (``decision_CMC``, original method)
    """
    ccf = np.where(np.isfinite(result.ccf), result.ccf, -np.inf)
    n = ccf.shape[1]
    has = np.isfinite(result.ccf).any(axis=0)
    if not has.any():
        return OriginalRuleResult(congruent=np.zeros(n, bool), cell_angle=np.full(n, np.nan))
    best = np.argmax(ccf, axis=0)
    cells = np.arange(n)
    bx, by, bc = result.dx[best, cells], result.dy[best, cells], result.ccf[best, cells]
    centre = _reference_angle(result)
    theta = _angle_offsets(result.angles[best], centre)
    med_x, med_y, med_t = (np.median(v[has]) for v in (bx, by, theta))
    congruent = (
        has
        & (np.abs(bx - med_x) <= tx_px)
        & (np.abs(by - med_y) <= tx_px)
        & (np.abs(theta - med_t) <= params.rotation_deg)
        & (np.nan_to_num(bc, nan=-1.0) >= params.ccf_threshold)
    )
    return OriginalRuleResult(congruent=congruent, cell_angle=np.where(has, wrap_deg(theta + centre), np.nan))


def _reference_angle(result: DirectionResult) -> float:
    """An angle to measure offsets from, so that medians near +-180 degrees do not wrap."""
    ccf = np.where(np.isfinite(result.ccf), result.ccf, -np.inf)
    votes = np.bincount(np.argmax(ccf, axis=0), minlength=len(result.angles))
    return float(result.angles[int(np.argmax(votes))])


def high_cmc_rule(result: DirectionResult, tx_px: float, params: CmcParams) -> HighCmcRuleResult:
    """Tong's (2015) High CMC rule on one direction: congruent cells counted per angle.

    At each angle, a cell is congruent when its displacement lies within ``tx_px`` of that
    angle's median displacement and its correlation reaches ``params.ccf_threshold``. The angles
    whose count is within ``params.tau`` of the maximum must span at most
    ``params.rotation_deg``; the High CMC angle is then the median of the angles with the
    maximal count. Otherwise the rule fails (``theta_max`` None). The registrations are not
    modified.

    Parameters
    ----------
    result : DirectionResult
        Registrations of one direction.
    tx_px : float
        Translation threshold Tx = Ty, pixels of the fixed surface.
    params : CmcParams
        ``ccf_threshold`` (dimensionless), ``tau`` (cells) and ``rotation_deg`` (degrees).

    Returns
    -------
    HighCmcRuleResult
        Congruent cells per angle, and the High CMC angle (degrees) or None.

    References
    ----------
    .. [1] Tong, M., Song, J., Chu, W. (2015). An improved algorithm of Congruent Matching Cells
           (CMC) method for firearm evidence identifications. J. Res. NIST 120, 102.
           doi:10.6028/jres.120.008
    .. [2] Zemmels, J., Hofmann, H., VanderPlas, S. cmcR: an implementation of the 'Congruent
           Matching Cells' method, R package 0.1.11 (CRAN); functions comparison_allTogether,
           decision_CMC and decision_combineDirections. (``decision_CMC``, High CMC)
    """
    ccf = np.nan_to_num(result.ccf, nan=-1.0)
    valid = np.isfinite(result.ccf)
    high = np.zeros_like(valid)
    for i in range(len(result.angles)):
        if not valid[i].any():
            continue
        med_x = np.median(result.dx[i][valid[i]])
        med_y = np.median(result.dy[i][valid[i]])
        high[i] = (
            valid[i] & (np.abs(result.dx[i] - med_x) <= tx_px) & (np.abs(result.dy[i] - med_y) <= tx_px) & (ccf[i] >= params.ccf_threshold)
        )
    counts = high.sum(axis=1)
    failed = HighCmcRuleResult(angles=result.angles, congruent_at=high, theta_max=None)
    if counts.size == 0 or counts.max() == 0:
        return failed
    top = counts.max()
    near = result.angles[counts >= top - params.tau]
    centre = float(result.angles[int(np.argmax(counts))])
    offsets = _angle_offsets(near, centre)
    if offsets.max() - offsets.min() > params.rotation_deg + 1e-9:
        return failed
    tied = _angle_offsets(result.angles[counts == top], centre)
    return HighCmcRuleResult(angles=result.angles, congruent_at=high, theta_max=float(wrap_deg(centre + np.median(tied))))


def direction_rules(result: DirectionResult, tx_px: float, params: CmcParams) -> DirectionRules:
    """Both rules on one direction's registrations (:func:`original_rule`, :func:`high_cmc_rule`).

    Parameters
    ----------
    result : DirectionResult
        Registrations of one direction.
    tx_px : float
        Translation threshold Tx = Ty, pixels of the fixed surface.
    params : CmcParams
        Thresholds of both rules.

    Returns
    -------
    DirectionRules
        Both outcomes, with the cells' grid positions.
    """
    return DirectionRules(result.cell_index, original_rule(result, tx_px, params), high_cmc_rule(result, tx_px, params))


def combine_directions(forward: DirectionRules, backward: DirectionRules, params: CmcParams) -> tuple[int, bool]:
    """Combine the two directions as cmcR's ``decision_combineDirections`` does.

    Missing-theta decision "fail", thetas compared: the High CMC cells of both directions are
    pooled by grid position when both directions pass the High CMC rule, each High CMC angle
    agrees (within ``params.rotation_deg``) with the median angle of that direction's
    original-rule congruent cells, and the two High CMC angles are opposite (their sum within
    ``params.rotation_deg`` of 0). Otherwise the pair gets the smaller of the two original-rule
    counts.

    Parameters
    ----------
    forward, backward : DirectionRules
        Rule outcomes of reference -> target and target -> reference.
    params : CmcParams
        ``rotation_deg``, degrees.

    Returns
    -------
    count : int
        The combined High CMC count (cells), or the fallback original-rule count.
    passed : bool
        True when the High CMC count was used.

    References
    ----------
    .. [1] Tong, M., Song, J., Chu, W. (2015). An improved algorithm of Congruent Matching Cells
           (CMC) method for firearm evidence identifications. J. Res. NIST 120, 102.
           doi:10.6028/jres.120.008
    .. [2] Zemmels, J., Hofmann, H., VanderPlas, S. cmcR: an implementation of the 'Congruent
           Matching Cells' method, R package 0.1.11 (CRAN); functions comparison_allTogether,
           decision_CMC and decision_combineDirections.
    """
    fallback = min(forward.original.count, backward.original.count)
    tol = params.rotation_deg
    thetas: list[float] = []
    for direction in (forward, backward):
        theta = direction.high.theta_max
        if theta is None:
            return fallback, False
        original_angles = direction.original.cell_angle[direction.original.congruent]
        if original_angles.size == 0:
            return fallback, False
        median = theta + float(np.median(_angle_offsets(original_angles, theta)))
        if abs(wrap_deg(theta - median)) > tol:
            return fallback, False
        thetas.append(theta)
    if abs(wrap_deg(thetas[0] + thetas[1])) > tol:
        return fallback, False
    cells = {tuple(ix) for ix in forward.cell_index[forward.high.congruent(tol)]}
    cells |= {tuple(ix) for ix in backward.cell_index[backward.high.congruent(tol)]}
    return len(cells), True


def _cells_centroid(result: DirectionResult, cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre of the chosen cells relative to the fixed surface's centre (x, y) px."""
    boxes = result.cell_box[cells] if cells.any() else result.cell_box
    if boxes.size == 0:
        return np.zeros(2)
    h, w = shape
    return np.array([(boxes[:, 1] + boxes[:, 3]).mean() / 2 - w / 2.0, (boxes[:, 0] + boxes[:, 2]).mean() / 2 - h / 2.0])


def _consensus_registration(
    forward: DirectionResult, rules: DirectionRules, shape: tuple[int, int], params: CmcParams
) -> tuple[float, tuple[float, float]]:
    """The rotation and translation mapping the target onto the reference, from the forward cells.

    The congruent cells pick the angle (the grid angle where they correlate best, refined
    between grid steps) and their median displacement the translation there. The translation is
    carried to the refined angle by keeping the cells' centre on the same target point: the
    rotation is about the target's array centre, so a change of angle moves off-centre content.
    """
    if forward.dx.shape[1] == 0 or forward.angles.size == 0:
        return 0.0, (0.0, 0.0)
    tol = params.rotation_deg
    if rules.high.theta_max is not None:
        cells = rules.high.congruent(tol)
        near = np.abs(wrap_deg(forward.angles - rules.high.theta_max)) <= tol + 1e-9
    elif rules.original.congruent.any():
        cells = rules.original.congruent
        angle = float(np.median(rules.original.cell_angle[rules.original.congruent]))
        near = np.abs(wrap_deg(forward.angles - angle)) <= tol + 1e-9
    else:
        cells = np.isfinite(forward.ccf).any(axis=0)
        near = np.ones(len(forward.angles), bool)
    quality = np.array([np.nanmean(row[cells]) if np.isfinite(row[cells]).any() else -np.inf for row in forward.ccf])
    i = int(np.argmax(np.where(near, quality, -np.inf)))
    angle = _refined_angle(forward, i, cells, params.angle_step_deg)
    # Cells report where the reference cell sits in the moved target; the target moves the opposite way.
    at_i = cells & np.isfinite(forward.dx[i])
    dx = float(np.median(forward.dx[i][at_i])) if at_i.any() else 0.0
    dy = float(np.median(forward.dy[i][at_i])) if at_i.any() else 0.0
    shift = np.array([forward.shifts[i][0] - dx, forward.shifts[i][1] - dy])
    centre = _cells_centroid(forward, cells, shape)
    target_point = rotation_matrix(-forward.angles[i]) @ (centre - shift)
    shift = centre - rotation_matrix(angle) @ target_point
    return float(wrap_deg(angle)), (float(shift[0]), float(shift[1]))


def _refined_angle(forward: DirectionResult, i: int, cells: np.ndarray, step: float) -> float:
    """Sub-step rotation: parabola through the mean correlation of ``cells`` at the neighbouring angles."""
    centre = float(forward.angles[i])
    if not cells.any():
        return centre

    def mean_ccf(angle: float) -> float | None:
        near = np.abs(wrap_deg(forward.angles - angle)) < 1e-6
        if not near.any():
            return None
        values = forward.ccf[int(np.argmax(near))][cells]
        return float(np.nanmean(values)) if np.isfinite(values).any() else None

    left, mid, right = mean_ccf(centre - step), mean_ccf(centre), mean_ccf(centre + step)
    if left is None or right is None or mid is None:
        return centre
    curvature = left - 2 * mid + right
    if curvature >= 0:  # not a maximum: keep the grid angle
        return centre
    return centre + float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)) * step
