"""Shaded relief: a surface lit by a virtual oblique light, as under a comparison microscope.

An examiner reads toolmarks by the shadows an oblique light casts, not by false-colour heights.
:func:`shade` computes the brightness of a Lambertian surface under a distant light; the browser
view (``ballistics/templates/pair_view.js``) computes the same formula from the heights it
embeds, so that turning its light changes the picture without a server.

Convention: x to the right, y down (row 0 at the top), z up out of the surface. The light comes
from ``azimuth_deg`` measured clockwise from the top of the picture (0 from the top, 90 from the
right) and ``elevation_deg`` above the surface's plane. With the surface normal
``n = (-k dz/dx, -k dz/dy, 1) / |...|`` (central differences, heights and lateral distances in
the same unit, ``k`` the vertical exaggeration) and the unit vector towards the light
``l = (sin az cos el, -cos az cos el, sin el)``, the brightness is ``max(0, n . l)``: a flat
surface reads ``sin el``, a slope facing the light brighter, one facing away darker (no cast
shadows). Reference: B. K. P. Horn, "Hill shading and the reflectance map", Proc. IEEE 69(1),
14-47 (1981), the Lambertian reflectance map.
"""

from __future__ import annotations

import numpy as np

#: The light examiners start from: from the upper left, low over the surface (degrees).
AZIMUTH_DEG = 315.0
ELEVATION_DEG = 30.0
#: Vertical exaggeration of the default shading (dimensionless): breech-face marks rise a few
#: micrometres over cells of hundreds, so true slopes are shallow.
EXAGGERATION = 3.0


def light_vector(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector (x right, y down, z up) pointing towards a light at this azimuth and elevation (degrees)."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])


def shade(
    heights: np.ndarray,
    spacing: float,
    azimuth_deg: float = AZIMUTH_DEG,
    elevation_deg: float = ELEVATION_DEG,
    exaggeration: float = EXAGGERATION,
) -> np.ndarray:
    """Brightness 0..1 of a surface lit from (azimuth, elevation); NaN where the surface is unmeasured.

    Parameters
    ----------
    heights : numpy.ndarray
        Heights (rows y down, columns x right), NaN where unmeasured, in the unit of ``spacing``.
    spacing : float
        Distance between neighbouring points, in the unit of the heights (e.g. metres and metres).
    azimuth_deg, elevation_deg : float
        Where the light comes from, degrees (module docstring).
    exaggeration : float
        Vertical exaggeration ``k`` (dimensionless).

    Returns
    -------
    numpy.ndarray
        ``max(0, n . l)`` per point (float32); a point whose neighbours are unmeasured takes the
        slope of the side that is measured, a point without any measured neighbour reads as flat.
    """
    z = np.asarray(heights, np.float64)
    valid = np.isfinite(z)
    filled = np.where(valid, z, 0.0)
    gx = _gradient(filled, valid, axis=1) / spacing * exaggeration
    gy = _gradient(filled, valid, axis=0) / spacing * exaggeration
    lx, ly, lz = light_vector(azimuth_deg, elevation_deg)
    brightness = (-gx * lx - gy * ly + lz) / np.sqrt(gx * gx + gy * gy + 1.0)
    return np.where(valid, np.clip(brightness, 0.0, 1.0), np.nan).astype(np.float32)


def _gradient(z: np.ndarray, valid: np.ndarray, axis: int) -> np.ndarray:
    """Central difference along ``axis`` where both neighbours are measured, else one-sided, else 0."""
    before, after = np.roll(z, 1, axis), np.roll(z, -1, axis)
    has_before, has_after = np.roll(valid, 1, axis), np.roll(valid, -1, axis)
    edge = [slice(None)] * 2
    edge[axis] = slice(0, 1)
    has_before[tuple(edge)] = False
    edge[axis] = slice(-1, None)
    has_after[tuple(edge)] = False
    return np.where(
        has_before & has_after,
        (after - before) / 2.0,
        np.where(has_after, after - z, np.where(has_before, z - before, 0.0)),
    )
