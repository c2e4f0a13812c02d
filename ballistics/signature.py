"""A rotation-invariant search signature: polar rings of the smoothed breech face.

A cartridge case can sit under the microscope at any angle. Resampled on rings around the
primer centre, a rotation of the case becomes a circular shift along the angle axis, so the
best rotation between two cases is found with one inverse FFT of their angular cross-spectrum
summed over the rings: the signature stores that spectrum (first ``frequencies`` angular
frequencies of every ring), and :func:`similarity` scores a whole collection against one
query with a few matrix operations and one batched inverse FFT.

The surface is smoothed first (Gaussian, ``sigma_um``): the prefilter must tolerate the few
pixels by which two fitted primer centres disagree, which the fine marks (16-30 um) do not.
The defaults were chosen by measuring recall on the Weller and Fadul sets (docs/search.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from ballistics.errors import SignatureError
from ballistics.method import SignatureParams
from ballistics.preprocess import BreechFace


def polar_rings(face: BreechFace, params: SignatureParams = SignatureParams()) -> np.ndarray:
    """The smoothed surface on ``rings`` x ``angles`` polar samples (NaN where unmeasured).

    Angles run counter-clockwise as displayed (row 0 at the top), the convention of
    :mod:`ballistics.cmc`: rotating the surface by ``a`` degrees shifts the samples by ``a``.
    """
    surface = face.surface
    valid = np.isfinite(surface)
    if face.primer_center_px is None:
        rows, cols = np.nonzero(valid)
        centre = ((cols.min() + cols.max()) / 2.0, (rows.min() + rows.max()) / 2.0)
    else:
        centre = face.primer_center_px
    spacing_um = face.spacing_m * 1e6
    sigma = params.sigma_um / spacing_um
    values = cv2.GaussianBlur(np.where(valid, surface, 0).astype(np.float32), (0, 0), sigma)
    weight = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = np.where(weight > 0.5, values / weight, np.nan).astype(np.float32)
    radius = np.linspace(*params.radii_um, params.rings) / spacing_um
    theta = np.arange(params.angles) * (2 * np.pi / params.angles)
    x = (centre[0] + radius[:, None] * np.cos(theta)[None]).astype(np.float32)
    y = (centre[1] - radius[:, None] * np.sin(theta)[None]).astype(np.float32)
    return cv2.remap(smooth, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


def signature(face: BreechFace, params: SignatureParams = SignatureParams()) -> np.ndarray:
    """``rings`` x ``frequencies`` complex64 angular spectra of the standardised polar rings.

    Each ring's mean (frequency 0) is dropped: it carries what form removal left, not marks.
    """
    rings = polar_rings(face, params)
    measured = np.isfinite(rings)
    if measured.sum() < 0.05 * rings.size:
        raise SignatureError(None, "too little of the breech face lies on the signature rings")
    values = np.where(measured, rings, 0.0).astype(np.float64)
    values[measured] -= values[measured].mean()
    spread = values[measured].std()
    if spread == 0:
        raise SignatureError(None, "the breech face is flat on the signature rings")
    values /= spread
    spectrum = np.fft.rfft(values, axis=1)[:, : params.frequencies]
    spectrum[:, 0] = 0
    return spectrum.astype(np.complex64)


def similarity(query: np.ndarray, collection: np.ndarray, params: SignatureParams = SignatureParams()) -> tuple[np.ndarray, np.ndarray]:
    """Best normalised correlation over all rotations, and that rotation, for each candidate.

    ``collection`` is (N, rings, frequencies). Returns scores in [-1, 1] and the angle (degrees)
    that turns each candidate onto the query. The work is one multiply-and-sum over rings and one
    batched inverse FFT of length ``angles``: linear in N and vectorised.
    """
    if len(collection) == 0:
        return np.zeros(0), np.zeros(0)
    cross = np.einsum("rk,nrk->nk", query, np.conj(collection))
    weights = np.full(cross.shape[1], 2.0)
    weights[0] = 1.0
    norms = np.sqrt((weights * (np.abs(collection) ** 2).sum(axis=1)).sum(axis=1))
    query_norm = np.sqrt((weights * (np.abs(query) ** 2).sum(axis=0)).sum())
    correlation = np.fft.irfft(cross, n=params.angles, axis=1)
    best = correlation.argmax(axis=1)
    score = correlation[np.arange(len(best)), best] * params.angles / np.maximum(norms * query_norm, 1e-30)
    return score, best * (360.0 / params.angles)


def signature_bytes(sig: np.ndarray) -> bytes:
    return np.ascontiguousarray(sig, np.complex64).tobytes()


def signature_from_bytes(data: bytes, params: SignatureParams = SignatureParams()) -> np.ndarray:
    return np.frombuffer(data, np.complex64).reshape(params.rings, params.frequencies)
