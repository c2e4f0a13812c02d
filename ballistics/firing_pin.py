"""The firing-pin impression: its shape class, a levelled patch of it, and a second score.

The firing pin is a different part from the breech face, so its impression is independent
evidence when both cartridge cases still carry it (raw scans, simulated cases). Its outline
gives the class characteristic examiners note first (hemispherical, elliptical, rectangular);
its walls and the primer metal pushed back into the firing-pin aperture carry individual marks.

The score compares the two impressions in polar coordinates around their centres: the crater
is roughly circular, so a rotation is a circular shift along the angle axis and the whole
360-degree search is one batch of FFTs over a few hundred radii.

Angle convention, shared with the breech-face registration: ``rotation_deg`` is the rotation
that maps the questioned surface onto the reference, counter-clockwise in the image as
displayed with row 0 at the top (the convention of :func:`skimage.transform.rotate`). A mark at
polar angle phi in the questioned impression appears at phi + rotation_deg in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi

from ballistics.characteristics import FiringPinShape
from ballistics.errors import FiringPinError

#: Minor / major axis ratio below which an outline counts as elliptical.
ELLIPTICAL_BELOW = 0.8
#: Fill of the minimum-area bounding rectangle above which an outline counts as rectangular
#: (a disc or an ellipse fills pi / 4 = 0.785 of its bounding rectangle, a rectangle all of it).
RECTANGULAR_ABOVE = 0.87
#: Angular resolution of the polar unwrap (bins over 360 degrees).
ANGLE_BINS = 720
#: When the breech-face rotation is given, the firing-pin search stays this close to it: the two
#: marks sit on one cartridge case, but the breech-face estimate carries a few degrees of error.
GIVEN_ROTATION_TOLERANCE_DEG = 3.0
#: Wavelength (um) above which the crater's form is removed before comparing textures: the
#: pin's outline and depth are class characteristics, its finer marks individual ones.
TEXTURE_CUTOFF_UM = 250.0
#: Shape agreement is multiplied by this when the two shape classes differ.
CLASS_MISMATCH_FACTOR = 0.5


@dataclass(frozen=True, eq=False)
class FiringPinImpression:
    """A firing-pin impression located on a scan.

    ``center_px`` and the radii are in the pixels of the breech-face surface it was found on
    (working spacing), ``center_px`` as (x, y). ``radius_px`` is the crater's; ``extent_px`` is
    the whole disturbed zone (crater plus the primer metal pushed into the firing-pin aperture),
    which is what the breech-face surface leaves out. ``patch`` holds heights in metres
    (standardised grey level for images), levelled by the breech face's robust plane, centred
    on the impression, NaN beyond ``extent_px`` or where unmeasured.
    """

    center_px: tuple[float, float]
    radius_px: float
    extent_px: float
    shape: FiringPinShape
    axis_ratio: float
    rectangularity: float
    patch: np.ndarray
    spacing_m: float

    @property
    def radius_um(self) -> float:
        return self.radius_px * self.spacing_m * 1e6

    def to_dict(self) -> dict[str, object]:
        """The measurements, JSON-ready (the patch itself is left out)."""
        return {
            "center_px": [round(self.center_px[0], 2), round(self.center_px[1], 2)],
            "radius_um": round(self.radius_um, 2),
            "extent_um": round(self.extent_px * self.spacing_m * 1e6, 2),
            "shape": self.shape,
            "axis_ratio": round(self.axis_ratio, 4),
            "rectangularity": round(self.rectangularity, 4),
        }


def classify_shape(crater: np.ndarray) -> tuple[FiringPinShape, float, float]:
    """Shape class, minor/major axis ratio and bounding-rectangle fill of a crater outline."""
    points = np.argwhere(crater)[:, ::-1].astype(np.float32)
    if len(points) < 5:
        raise FiringPinError(None, "firing-pin outline has fewer than 5 points")
    area = float(crater.sum())
    # The hull, hence the rectangle, is that of the outline pixels alone.
    mask = crater.astype(np.uint8)
    eroded: np.ndarray = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    outline = mask & ~eroded
    (_, _), (width, height), _ = cv2.minAreaRect(np.argwhere(outline)[:, ::-1].astype(np.float32))
    # Pixel centres underestimate the outline by half a pixel on each side.
    width, height = width + 1.0, height + 1.0
    rect_fill = min(1.0, area / (width * height))
    cov = np.cov(points.T)
    eig = np.sort(np.linalg.eigvalsh(cov))
    axis_ratio = float(np.sqrt(max(eig[0], 0.0) / eig[1])) if eig[1] > 0 else 1.0
    if rect_fill > RECTANGULAR_ABOVE:
        shape = FiringPinShape.RECTANGULAR
    elif axis_ratio < ELLIPTICAL_BELOW:
        shape = FiringPinShape.ELLIPTICAL
    else:
        shape = FiringPinShape.HEMISPHERICAL
    return shape, axis_ratio, rect_fill


def extract_firing_pin(
    levelled: np.ndarray,
    crater: np.ndarray,
    center_px: tuple[float, float],
    extent_px: float,
    spacing_m: float,
    working_spacing_m: float,
) -> FiringPinImpression:
    """Cut out and resample the impression found by :func:`ballistics.preprocess.prepare`.

    ``levelled`` are the scan's heights with the breech face's plane removed (NaN unmeasured),
    ``crater`` the boolean mask of the crater (unmeasured bottom included), ``center_px`` and
    ``extent_px`` the disturbed zone's circle, all at the scan's own ``spacing_m``. The
    returned coordinates are converted to ``working_spacing_m``.
    """
    shape, axis_ratio, rect_fill = classify_shape(crater)
    radius_px = float(np.sqrt(crater.sum() / np.pi))
    cx, cy = center_px
    half = int(np.ceil(extent_px)) + 1
    rows, cols = levelled.shape
    y0, y1 = max(0, int(cy) - half), min(rows, int(cy) + half + 2)
    x0, x1 = max(0, int(cx) - half), min(cols, int(cx) + half + 2)
    window = levelled[y0:y1, x0:x1]
    factor = spacing_m / working_spacing_m
    # Resample about the impression's centre so that the patch centre is the pin centre.
    out_half = int(np.ceil(extent_px * factor))
    grid = np.arange(-out_half, out_half + 1) / factor
    yy, xx = np.meshgrid(cy - y0 + grid, cx - x0 + grid, indexing="ij")
    valid = np.isfinite(window)
    coords = np.array([yy, xx])
    value = ndi.map_coordinates(np.where(valid, window, 0.0), coords, order=1, mode="constant", cval=0.0)
    weight = ndi.map_coordinates(valid.astype(np.float64), coords, order=1, mode="constant", cval=0.0)
    patch = np.full(value.shape, np.nan)
    keep = (weight >= 0.5) & (np.hypot(*np.meshgrid(grid, grid, indexing="ij")) <= extent_px)
    patch[keep] = value[keep] / weight[keep]
    return FiringPinImpression(
        center_px=((cx + 0.5) * factor - 0.5, (cy + 0.5) * factor - 0.5),
        radius_px=radius_px * factor,
        extent_px=extent_px * factor,
        shape=shape,
        axis_ratio=axis_ratio,
        rectangularity=rect_fill,
        patch=patch,
        spacing_m=working_spacing_m,
    )


def polar_texture(impression: FiringPinImpression, n_radii: int) -> np.ndarray:
    """The high-passed patch unwrapped to (radius, angle), each radius's median removed.

    Removing the per-radius median takes the crater's axisymmetric form out, leaving the marks
    that make the comparison individual rather than a comparison of two pins of one model.
    Angle bin j is the polar angle 360 j / ANGLE_BINS degrees, counter-clockwise as displayed.
    """
    patch = _highpass(impression.patch, TEXTURE_CUTOFF_UM * 1e-6 / (2 * np.pi) / impression.spacing_m)
    centre = (patch.shape[0] - 1) / 2.0
    radii = np.linspace(0.0, impression.extent_px, n_radii)
    angles = np.deg2rad(np.arange(ANGLE_BINS) * 360.0 / ANGLE_BINS)
    rr, aa = np.meshgrid(radii, angles, indexing="ij")
    coords = np.array([centre - rr * np.sin(aa), centre + rr * np.cos(aa)])
    valid = np.isfinite(patch)
    value = ndi.map_coordinates(np.where(valid, patch, 0.0), coords, order=1, mode="constant", cval=0.0)
    weight = ndi.map_coordinates(valid.astype(np.float64), coords, order=1, mode="constant", cval=0.0)
    polar = np.full(value.shape, np.nan)
    keep = weight >= 0.99
    polar[keep] = value[keep] / weight[keep]
    with np.errstate(all="ignore"):
        medians = np.nanmedian(np.where(keep.any(axis=1, keepdims=True), polar, 0.0), axis=1, keepdims=True)
    return polar - medians


def circular_pearson(reference: np.ndarray, questioned: np.ndarray) -> np.ndarray:
    """Pairwise-complete Pearson correlation for every circular shift of ``questioned``.

    Entry s correlates reference(theta) with questioned(theta - s bins), i.e. the questioned
    pattern turned counter-clockwise by s bins. Both are (radius, angle) arrays, NaN missing.
    """
    ma, mb = np.isfinite(reference), np.isfinite(questioned)
    a, b = np.where(ma, reference, 0.0), np.where(mb, questioned, 0.0)

    def xcorr(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft(u, axis=1) * np.conj(np.fft.rfft(v, axis=1))
        return np.fft.irfft(spectrum, n=u.shape[1], axis=1).sum(axis=0)

    # xcorr(u, v)[s] = sum_theta u(theta + s) v(theta); we want u(theta) v(theta - s): the same.
    fa, fb = ma.astype(float), mb.astype(float)
    n = xcorr(fa, fb)
    sa, sb = xcorr(a, fb), xcorr(fa, b)
    saa, sbb, sab = xcorr(a * a, fb), xcorr(fa, b * b), xcorr(a, b)
    with np.errstate(all="ignore"):
        cov = sab - sa * sb / n
        var = (saa - sa * sa / n) * (sbb - sb * sb / n)
        corr = cov / np.sqrt(var)
    corr[(n < 50) | ~np.isfinite(corr)] = np.nan
    return np.clip(corr, -1.0, 1.0)


def shape_agreement(reference: FiringPinImpression, questioned: FiringPinImpression) -> float:
    """1 for two impressions of one class and size, less as radii differ or classes disagree."""
    ratio = min(reference.radius_um, questioned.radius_um) / max(reference.radius_um, questioned.radius_um)
    return ratio * (1.0 if reference.shape == questioned.shape else CLASS_MISMATCH_FACTOR)


def best_rotation(
    reference: FiringPinImpression, questioned: FiringPinImpression, rotation_deg: float | None = None
) -> tuple[float, float] | None:
    """(texture correlation, rotation in degrees) at the best angle, or None without overlap."""
    n_radii = int(np.ceil(max(reference.extent_px, questioned.extent_px))) + 1
    extent = min(reference.extent_px, questioned.extent_px)
    # Unwrap both over the same physical radii so that a size difference shows as a mismatch.
    ref = polar_texture(_with_extent(reference, extent), n_radii)
    qst = polar_texture(_with_extent(questioned, extent), n_radii)
    corr = circular_pearson(ref, qst)
    step = 360.0 / ANGLE_BINS
    shifts = np.arange(ANGLE_BINS) * step
    if rotation_deg is not None:
        distance = np.abs((shifts - rotation_deg + 180.0) % 360.0 - 180.0)
        corr = np.where(distance <= GIVEN_ROTATION_TOLERANCE_DEG, corr, np.nan)
    if not np.isfinite(corr).any():
        return None
    best = int(np.nanargmax(corr))
    angle = shifts[best]
    return float(corr[best]), float(angle - 360.0 if angle > 180.0 else angle)


def firing_pin_score(
    reference: FiringPinImpression | None, questioned: FiringPinImpression | None, rotation_deg: float | None = None
) -> float | None:
    """Similarity of two firing-pin impressions in [-1, 1]; None when either is missing.

    The score is the pairwise-complete Pearson correlation of the two impressions' polar
    textures at the best rotation (searched over 360 degrees, or within a few degrees of
    ``rotation_deg`` when the breech-face registration gives it), multiplied by the shape
    agreement (radius ratio, halved when the shape classes differ). Impressions of unlike
    spacing are refused: both must come from :func:`ballistics.preprocess.prepare` with the
    same working spacing.
    """
    if reference is None or questioned is None:
        return None
    if not np.isclose(reference.spacing_m, questioned.spacing_m, rtol=1e-6):
        raise FiringPinError(None, f"firing-pin patches at different spacings ({reference.spacing_m:g} m and {questioned.spacing_m:g} m)")
    found = best_rotation(reference, questioned, rotation_deg)
    if found is None:
        return None
    texture, _ = found
    return float(texture * shape_agreement(reference, questioned))


def _with_extent(impression: FiringPinImpression, extent_px: float) -> FiringPinImpression:
    """The same impression with its patch limited to ``extent_px`` (a common radial range)."""
    patch = impression.patch.copy()
    centre = (patch.shape[0] - 1) / 2.0
    yy, xx = np.indices(patch.shape)
    patch[np.hypot(yy - centre, xx - centre) > extent_px] = np.nan
    return FiringPinImpression(
        center_px=impression.center_px,
        radius_px=impression.radius_px,
        extent_px=extent_px,
        shape=impression.shape,
        axis_ratio=impression.axis_ratio,
        rectangularity=impression.rectangularity,
        patch=patch,
        spacing_m=impression.spacing_m,
    )


def _highpass(patch: np.ndarray, sigma_px: float) -> np.ndarray:
    """``patch`` minus its NaN-aware Gaussian low-pass (normalised convolution), NaN kept."""
    valid = np.isfinite(patch)
    numerator = ndi.gaussian_filter(np.where(valid, patch, 0.0), sigma_px, mode="constant")
    denominator = ndi.gaussian_filter(valid.astype(np.float64), sigma_px, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid & (denominator > 1e-6), patch - numerator / denominator, np.nan)
