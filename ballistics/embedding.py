"""A compact rotation-invariant embedding of a case, for the vector index of the search funnel.

The polar signature (:mod:`ballistics.signature`) holds ``S[r, k]``, the angular Fourier
coefficient of frequency ``k`` (cycles per turn) on ring ``r`` (radii 250-1750 um, 32 rings).
Turning the case by ``a`` radians multiplies every ``S[r, k]`` by ``exp(-i k a)``, so the
product of two rings' coefficients ``S[r, k] * conj(S[r + 1, k])`` does not change: it is
invariant to rotation without any search, yet, unlike the magnitudes ``|S[r, k]|`` alone, it
keeps how the marks on neighbouring rings line up (its phase is their relative angle).

Before pooling, each ring's coefficients are scaled to unit energy (so that a ring where the
marks are deep, or a case measured over few rings, does not outweigh the others), and each
cross-spectrum value ``c`` is compressed to ``c |c|^(-3/4)``: its phase is kept, its magnitude
taken to the power :data:`MAGNITUDE_POWER` (1/4), so that a few strong frequencies of a ring pair
do not decide the embedding alone. The embedding then pools these cross-spectra into
:data:`RING_BANDS` bands of rings (4 rings, ~190 um of radius each) by :data:`FREQUENCY_BANDS`
bands of frequency (5 frequencies each, 1-60 cycles per turn: features 6 to 0.6 mm of arc long at
a radius of 1 mm), keeps the real and imaginary parts (8 x 12 x 2 = 192 float32), removes the
vector's mean and scales it to unit length, so that the inner product of two embeddings is the
correlation of their pooled cross-spectra, in [-1, 1]; dimensionless, like the signature, which
is standardised.

Measured on the 115 real scans of known source (Weller, Fadul knowns; docs/search.md), the
nearest embedding was a same-firearm case for 88 % of queries and one was within the nearest
20 for all of them; among generated fillers a true mate ranked at worst about 640th in a million
(extrapolated from 10^5 fillers; version 1, without the two normalisations: 86 %, 99 %, and
about 150,000th for Fadul 8-2, whose mate Fadul 8-1 is measured over 13 of the 32 rings, one of
them holding a fifth of its energy).
"""

from __future__ import annotations

import numpy as np

#: Bands of adjacent rings and of angular frequency pooled into the embedding.
RING_BANDS = 8
FREQUENCY_BANDS = 12
#: Angular frequencies used: 1..FREQUENCY_BANDS * FREQUENCY_WIDTH (frequency 0 is dropped by the signature).
FREQUENCY_WIDTH = 5
#: Exponent applied to the magnitude of each cross-spectrum value (its phase is kept).
MAGNITUDE_POWER = 0.25
#: Version of the embedding: part of the vector index's key, so that a change builds a new index.
EMBEDDING_VERSION = 2
DIMENSIONS = RING_BANDS * FREQUENCY_BANDS * 2


def embeddings(signatures: np.ndarray, *, ring_unit_energy: bool = True, magnitude_power: float = MAGNITUDE_POWER) -> np.ndarray:
    """(N, rings, frequencies) complex signatures -> (N, :data:`DIMENSIONS`) unit float32 embeddings.

    The signature's rings must divide into :data:`RING_BANDS` and it must hold at least
    ``FREQUENCY_BANDS * FREQUENCY_WIDTH + 1`` frequencies. A signature that is zero
    everywhere embeds as the zero vector (inner product 0 with everything). The keywords give
    the variants compared in ``benchmarks/embedding_variants.py`` (version 1: no unit energy,
    power 1); the index uses the defaults, :data:`EMBEDDING_VERSION`.
    """
    count, rings, frequencies = signatures.shape
    used = FREQUENCY_BANDS * FREQUENCY_WIDTH
    if rings % RING_BANDS or frequencies <= used:
        raise ValueError(f"a signature of {rings} rings x {frequencies} frequencies cannot be embedded")
    s = signatures[:, :, 1 : used + 1].astype(np.complex64)
    if ring_unit_energy:
        s = s / np.maximum(np.sqrt((np.abs(s) ** 2).sum(axis=2, keepdims=True)), np.float32(1e-30))
    cross = s[:, :-1] * np.conj(s[:, 1:])
    if magnitude_power != 1.0:  # |c|^p, phase kept
        cross = cross * np.maximum(np.abs(cross), np.float32(1e-30)) ** np.float32(magnitude_power - 1.0)
    cross = np.concatenate([cross, cross[:, -1:]], axis=1)  # the last ring pairs with the one before it
    pooled = cross.reshape(count, RING_BANDS, rings // RING_BANDS, FREQUENCY_BANDS, FREQUENCY_WIDTH).mean(axis=(2, 4))
    flat = np.concatenate([pooled.real, pooled.imag], axis=1).reshape(count, DIMENSIONS).astype(np.float64)
    flat -= flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.where(norm > 0, flat / np.where(norm > 0, norm, 1.0), 0.0).astype(np.float32)


def embedding(signature: np.ndarray) -> np.ndarray:
    """The embedding of one (rings, frequencies) signature."""
    return embeddings(signature[None])[0]
