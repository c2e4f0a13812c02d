"""Registering one surface onto another over the whole circle of rotations.

A cartridge case sits in the chamber at any angle, so before cells are compared the two
surfaces are registered globally: both are block-averaged, the moving one is rotated through
every angle step, and a masked normalised cross-correlation (Padfield 2012) against the fixed
one gives, at each angle, the best correlation and the translation that achieves it. The few
best-separated angles are the candidates the cell-level search of :mod:`ballistics.cmc` looks
around.

Angle convention: a positive angle rotates the moving surface counter-clockwise as the surface
is displayed with row 0 at the top (OpenCV's convention); the translation is applied after the
rotation, in fixed-surface pixels (x to the right, y down). The moving surface's centre lands on
the fixed surface's centre plus the translation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar, overload

import cv2
import numpy as np
import scipy.fft as sfft

#: Angles registered per batch of FFTs in :func:`coarse_scores`.
ANGLE_BATCH = 30
#: Threads that run independent batches at once (NumPy, SciPy's FFTs and OpenCV release the GIL).
THREADS = min(2, os.cpu_count() or 1)

T = TypeVar("T")


def in_parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """The results of independent calls, run on up to :data:`THREADS` threads, in order."""
    if THREADS == 1 or len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(min(THREADS, len(calls))) as pool:
        return list(pool.map(lambda call: call(), calls))


@dataclass(frozen=True)
class Candidate:
    """A rotation proposed by the coarse registration, with its translation (reference px)."""

    angle_deg: float
    shift_px: tuple[float, float]
    score: float


@overload
def wrap_deg(angle: float) -> float: ...
@overload
def wrap_deg(angle: np.ndarray) -> np.ndarray: ...
def wrap_deg(angle: np.ndarray | float) -> np.ndarray | float:
    """Angles into (-180, 180] degrees: a float for a scalar, an array for an array.

    Parameters
    ----------
    angle : float or numpy.ndarray
        Angles, degrees.

    Returns
    -------
    float or numpy.ndarray
        The same angles modulo 360, in (-180, 180].
    """
    wrapped = -((-np.asarray(angle, dtype=float) + 180.0) % 360.0) + 180.0
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def rotation_matrix(angle_deg: float) -> np.ndarray:
    return cv2.getRotationMatrix2D((0.0, 0.0), float(angle_deg), 1.0)[:, :2]


def _frame_size(a: np.ndarray, b: np.ndarray) -> int:
    return int(max(a.shape + b.shape))


def transform(
    moving: np.ndarray,
    angle_deg: float,
    shift_px: tuple[float, float],
    out_shape: tuple[int, int],
    reach: tuple[int, int] | None = None,
) -> np.ndarray:
    """Rotate ``moving`` about its centre, translate, and place it on a grid of ``out_shape``.

    The moving surface's centre lands on the output's centre plus the shift. Bilinear
    interpolation lets NaN spread to its neighbours, so no height is invented next to a hole.
    ``reach`` (rows, columns) computes only the top-left corner of that grid that a caller
    needs, with the same values: OpenCV computes each output row on its own, and each pixel
    of a row alike as long as the row's width is a multiple of its vector width (the width is
    rounded up to a multiple of 64 pixels for that).
    """
    h, w = moving.shape
    oh, ow = out_shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(angle_deg), 1.0)
    matrix[0, 2] += (ow - w) / 2.0 + shift_px[0]
    matrix[1, 2] += (oh - h) / 2.0 + shift_px[1]
    size = (ow, oh) if reach is None else (min(ow, -(-reach[1] // 64) * 64), min(oh, reach[0]))
    return cv2.warpAffine(moving, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


def inverse_registration(angle_deg: float, shift_px: tuple[float, float]) -> tuple[float, tuple[float, float]]:
    """The rotation (degrees) and shift (px) that undo :func:`transform` with ``angle_deg`` and ``shift_px``.

    :func:`transform` maps a moving point ``p`` to ``R (p - c_in) + c_out + s`` (``R`` the
    rotation by ``angle_deg``, ``c`` the centres); the inverse maps ``q`` to
    ``R^-1 (q - c_out) + c_in - R^-1 s``: a rotation by ``-angle_deg`` and the shift ``-R^-1 s``.
    """
    x, y = rotation_matrix(-angle_deg) @ np.asarray(shift_px, float)
    return -angle_deg, (-float(x), -float(y))


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
    """Masked normalised cross-correlation (Padfield 2012) against a fixed surface.

    The fixed side's transforms are computed once; :meth:`best` correlates a stack of moving
    surfaces of the same shape in one batch of FFTs and returns, for each, the best NCC and the
    shift that moves it onto the fixed one, among shifts of at most ``max_shift`` pixels whose
    overlap is large enough to mean something. Zero-padding to ``n + max_shift`` keeps those
    shifts free of wrap-around while keeping the transforms small. Only the shifts within reach
    are transformed back (the inverse FFT runs over all columns, then over the reachable rows
    only) and scored, in the order of the full circular grid, so that ties resolve as there.
    """

    def __init__(self, fixed: np.ndarray, min_overlap: float, max_shift: int) -> None:
        self.shape = fixed.shape
        self.max_shift = max_shift
        self.size = tuple(sfft.next_fast_len(n + max_shift, real=True) for n in fixed.shape)
        # reachable circular shifts along each axis, in increasing index order
        self.reach = tuple(np.flatnonzero(np.minimum(np.arange(size), size - np.arange(size)) <= max_shift) for size in self.size)
        mask = np.isfinite(fixed).astype(np.float64)
        values = np.where(mask > 0, fixed, 0).astype(np.float64)
        if mask.any():
            values -= values[mask > 0].mean()
        values *= mask
        self.fixed_area = mask.sum()
        self.min_overlap = min_overlap
        # transformed in double precision, kept in single: the moving side's batches are single
        self.f_mask, self.f_values, self.f_squares = (
            sfft.rfft2(a, self.size).astype(np.complex64) for a in (mask, values, values * values)
        )

    def _correlate(self, spectrum: np.ndarray) -> np.ndarray:
        """The circular correlation of a product spectrum (overwritten) at the reachable shifts only."""
        columns = sfft.ifft(spectrum, axis=1, overwrite_x=True, workers=-1)[:, self.reach[0]]
        return sfft.irfft(columns, self.size[1], axis=2, workers=-1)[:, :, self.reach[1]]

    def best(self, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.isfinite(moving)
        area = mask.sum(axis=(1, 2)).astype(np.float64)
        values = np.where(mask, moving, np.float32(0)).astype(np.float32)
        values -= (values.sum(axis=(1, 2), dtype=np.float64) / np.maximum(area, 1)).astype(np.float32)[:, None, None]
        values *= mask

        def fwd(a: np.ndarray) -> np.ndarray:
            return np.conj(sfft.rfft2(a, self.size, axes=(1, 2), workers=-1))

        def inv(spectrum: np.ndarray) -> np.ndarray:
            return self._correlate(spectrum).astype(np.float64)

        # Transforms in single precision, the correlation's arithmetic in double.
        m_mask, m_values, m_squares = fwd(mask.astype(np.float32)), fwd(values), fwd(values * values)
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
        flat = ncc.reshape(len(ncc), -1).argmax(axis=1)
        iy, ix = np.unravel_index(flat, ncc.shape[1:])
        scores = ncc[np.arange(len(ncc)), iy, ix]
        py, px = self.reach[0][iy], self.reach[1][ix]
        signed = lambda k, size: np.where(k > size // 2, k - size, k)  # noqa: E731
        shifts = np.stack([signed(px, self.size[1]), signed(py, self.size[0])], axis=1).astype(float)
        return scores, shifts


def _coarse_frames(fixed: np.ndarray, moving: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    size = _frame_size(fixed, moving)
    size += (-size) % block
    fixed_small, moving_small = (block_mean(transform(s, 0.0, (0.0, 0.0), (size, size)), block) for s in (fixed, moving))
    return fixed_small, moving_small


def coarse_scores(
    fixed: np.ndarray, moving: np.ndarray, angles: np.ndarray, *, block: int, min_overlap: float, max_shift_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best masked NCC [1]_ and translation (fixed-surface px) of ``moving`` at each angle.

    Angles go through the FFTs :data:`ANGLE_BATCH` at a time: batching amortises the Python
    overhead, and bounding the batch bounds the memory of the eleven spectra it holds.

    Parameters
    ----------
    fixed, moving : numpy.ndarray
        Surfaces (NaN where not measured).
    angles : numpy.ndarray
        Rotations of ``moving``, degrees.
    block : int
        Block-averaging factor, pixels.
    min_overlap : float
        Smallest overlap counted, fraction of the smaller valid area.
    max_shift_px : float
        Largest translation searched, fixed-surface pixels.

    Returns
    -------
    scores : numpy.ndarray
        Best masked NCC per angle, in [-1, 1] (-1 where no shift has enough overlap).
    shifts : numpy.ndarray
        Translation (x, y) per angle, fixed-surface pixels (multiples of ``block``).

    References
    ----------
    .. [1] Padfield, D. (2012). Masked object registration in the Fourier domain. IEEE
           Transactions on Image Processing 21(5), 2706-2718. doi:10.1109/TIP.2011.2181402
    """
    small_fixed, small_moving = _coarse_frames(fixed, moving, block)
    ncc = _MaskedNcc(small_fixed, min_overlap, int(np.ceil(max_shift_px / block)))

    def batch(start: int) -> tuple[np.ndarray, np.ndarray]:
        stack = np.stack([transform(small_moving, angle, (0.0, 0.0), small_fixed.shape) for angle in angles[start : start + ANGLE_BATCH]])
        return ncc.best(stack)

    batches = in_parallel([partial(batch, start) for start in range(0, len(angles), ANGLE_BATCH)])
    scores = np.concatenate([b[0] for b in batches]) if batches else np.empty(0)
    shifts = np.concatenate([b[1] for b in batches]) if batches else np.empty((0, 2))
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
    """The few angles of the whole circle where the surfaces agree best, best first.

    Both surfaces are block-averaged; the moving one is rotated through every ``step_deg`` of
    the circle and a masked normalised cross-correlation [1]_ against the fixed one
    (:func:`coarse_scores`) gives each angle's best correlation and translation. Angles are taken
    in decreasing correlation, skipping any within ``separation_deg`` of one already chosen.

    Parameters
    ----------
    fixed, moving : numpy.ndarray
        Surfaces (heights, NaN where not measured), pixels of the same spacing.
    step_deg : float
        Angle step of the search, degrees.
    count : int
        Number of candidates returned.
    separation_deg : float
        Smallest angle between two candidates, degrees.
    block : int
        Block-averaging factor (pixels per block side).
    min_overlap : float
        Smallest overlap counted, as a fraction of the smaller valid area (dimensionless).
    max_shift_px : float
        Largest translation searched, fixed-surface pixels.

    Returns
    -------
    candidates : list of Candidate
        Angle (degrees, in (-180, 180]), translation (fixed-surface pixels, x, y) and masked
        NCC (dimensionless) of each candidate.
    shifts : dict
        Translation at every angle of the grid (keyed by :func:`angle_key`), which the
        cell-level search reuses instead of registering again.

    References
    ----------
    .. [1] Padfield, D. (2012). Masked object registration in the Fourier domain. IEEE
           Transactions on Image Processing 21(5), 2706-2718. doi:10.1109/TIP.2011.2181402
    """
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


def angle_key(angle: float) -> float:
    return round(float(wrap_deg(angle)), 6)


def inverse_shifts(angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Translations of the backward direction: target = R(-a) (reference - t), so t' = -R(-a) t.

    Parameters
    ----------
    angles : numpy.ndarray
        Forward rotations, degrees, shape (A,).
    shifts : numpy.ndarray
        Forward translations (x, y), reference pixels, shape (A, 2).

    Returns
    -------
    numpy.ndarray
        Translations (x, y) that register the reference onto the target at the angles
        ``-angles``, target pixels, shape (A, 2).
    """
    return np.array([-(rotation_matrix(-angle) @ np.asarray(t, float)) for angle, t in zip(angles, shifts, strict=True)]).reshape(-1, 2)
