"""Where the breech face is on a scan: the primer circle and the firing-pin zone inside it.

Everything here is geometry in the pixels of the scan being prepared: robust (RANSAC) circles,
the primer's own edge inside a scan that shows more of the case head (the seam between the
primer and its pocket), the connected pieces that stand for the firing-pin crater, and the zone the firing pin disturbed
(crater, primer metal pushed back into the firing-pin aperture, and on ring-light photographs
the dark and bright aperture rings). :mod:`ballistics.preprocess` removes that zone plus a margin
and keeps the rest of the primer disc as the breech face.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import CircleModel

from ballistics.firing_pin import classify_shape

#: Angular sampling of the firing-pin zone's outline.
ZONE_ANGLES = 360
#: Outline points a RANSAC circle is fitted to (a random subset of longer outlines), and the
#: number of random triples tried: enough to meet an all-inlier triple with 99.9 % confidence
#: when a third of the points lie on the circle.
RANSAC_POINTS = 1500
RANSAC_TRIALS = 300
#: Share of a region an enclosing circle (the primer edge around the breech face) must hold.
ENCLOSED_FRACTION = 0.95


class Circle(NamedTuple):
    """A circle in pixel coordinates: centre (x = column, y = row) and radius."""

    x: float
    y: float
    r: float


class FiringPinZone(NamedTuple):
    """Where the firing pin disturbed the primer: centre, per-angle extent, crater mask."""

    centre: Circle  # r: a radius covering the zone (for the impression patch)
    extents: np.ndarray  # outer edge of the zone at ZONE_ANGLES equally spaced angles, pixels
    crater: np.ndarray


def fit_circle(mask: np.ndarray, threshold_px: float, *, enclosing: bool = False) -> Circle | None:
    """RANSAC circle through the outline of ``mask`` (points on the array border left out).

    ``enclosing`` asks for the circle around the whole region, as the primer edge is around the
    breech face: only circles holding :data:`ENCLOSED_FRACTION` of the region's points compete.
    Without it, an inner edge that opens to the outside through a gap in the data (the
    firing-pin hole of a breech face missing a sector) can collect more inliers than an outer
    edge that the array border cuts.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean region whose outline is fitted.
    threshold_px : float
        RANSAC inlier tolerance, pixels.
    enclosing : bool
        Only circles enclosing the region compete.

    Returns
    -------
    Circle or None
        Centre (x = column, y = row) and radius, pixels; None unless a quarter of the outline
        points agree on one circle.
    """
    edge = mask & ~ndi.binary_erosion(mask)
    edge[[0, -1], :] = False
    edge[:, [0, -1]] = False
    region = np.argwhere(mask)[:, ::-1].astype(np.float64) if enclosing else None
    return _ransac_circle(np.argwhere(edge)[:, ::-1].astype(np.float64), threshold_px, region)


def _ransac_circle(points: np.ndarray, threshold_px: float, region: np.ndarray | None = None) -> Circle | None:
    """RANSAC circle through (x, y) points; None unless a quarter of them agree.

    :data:`RANSAC_TRIALS` random triples are turned into circles all at once (circumcircles in
    closed form) and scored on a random subset of :data:`RANSAC_POINTS` points; the circle with
    the most inliers is refitted (least squares) to its inliers. With ``region``, circles that
    leave more than 1 - :data:`ENCLOSED_FRACTION` of those points outside do not compete.
    """
    if len(points) < 10:
        return None
    rng = np.random.default_rng(0)
    if len(points) > RANSAC_POINTS:
        points = points[rng.choice(len(points), RANSAC_POINTS, replace=False)]
    triples = points[np.stack([rng.choice(len(points), 3, replace=False) for _ in range(RANSAC_TRIALS)])]
    (ax, ay), (bx, by), (cx, cy) = (triples[:, i, :].T for i in range(3))
    det = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    usable = np.abs(det) > 1e-9
    if not usable.any():
        return None
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / det
        uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / det
    ux, uy = ux[usable], uy[usable]
    radius = np.hypot(ax[usable] - ux, ay[usable] - uy)
    residual = np.abs(np.hypot(points[None, :, 0] - ux[:, None], points[None, :, 1] - uy[:, None]) - radius[:, None])
    inliers = residual < threshold_px
    score = inliers.sum(axis=1)
    if region is not None and len(region):
        sample = region[rng.choice(len(region), min(len(region), RANSAC_POINTS), replace=False)]
        distance = np.hypot(sample[None, :, 0] - ux[:, None], sample[None, :, 1] - uy[:, None])
        enclosed = (distance <= radius[:, None] + threshold_px).mean(axis=1)
        score = np.where(enclosed >= ENCLOSED_FRACTION, score, 0)
    best = inliers[int(np.argmax(score))]
    if best.mean() < 0.25:
        return None
    model = CircleModel.from_estimate(points[best])
    if not model:
        return None
    (x, y), r = model.center, model.radius
    return Circle(float(x), float(y), float(r))


def polar(values: np.ndarray, centre: Circle, radii: np.ndarray) -> np.ndarray:
    """``values`` sampled (bilinear; NaN where a neighbour is NaN or outside) at :data:`ZONE_ANGLES` angles x ``radii``.

    Row a is the polar angle 360 a / ZONE_ANGLES degrees, counter-clockwise as displayed (row 0
    at the top); ``radii`` in pixels from the centre of ``centre``.
    """
    angles = np.arange(ZONE_ANGLES) * 2 * np.pi / ZONE_ANGLES
    rows = centre.y - radii[None, :] * np.sin(angles[:, None])
    cols = centre.x + radii[None, :] * np.cos(angles[:, None])
    return ndi.map_coordinates(values, [rows, cols], order=1, mode="constant", cval=np.nan)


def find_seam(
    heights: np.ndarray,
    outer: Circle,
    width_px: float,
    depth_um: float,
    coverage: float,
    min_radius_px: float,
    tolerance_px: float,
) -> Circle | None:
    """The primer's own edge inside ``outer``: the seam between the primer and its pocket.

    A scan of the whole case head holds the primer, a seam around it (a groove lower than both
    sides, an unmeasured ring, or a step between primer and head), and the head surface out to
    the rim, whose edge is the outline of the measured region. Radial profiles from the centre
    of ``outer`` find the seam angle by angle: a *groove* point lies at least ``depth_um`` below
    both neighbours ``width_px`` inward and outward (an unmeasured point between measured ones
    counts too); a *step* point where the heights ``width_px`` inward and outward differ by at
    least ``depth_um``. A ring of such points found at ``coverage`` of the angles, at least
    ``min_radius_px`` from the centre and ``3 width_px`` inside ``outer`` (the rim's rounded
    edge is a step too), is a seam; the outermost one is the primer's edge (the firing-pin crater
    and the aperture lie inside it). Grooves are looked for first, steps only when no groove
    qualifies. The seam points are fitted by RANSAC, twice (the second time around the first
    fit's centre); a groove's circle then moves inward to where the primer's side of the groove
    is halfway down (the primer ends where the seam begins).

    On a scan of the primer alone the rings inside it are the firing-pin crater's unmeasured wall
    and the aperture's edge (on the raw Fadul scans a step all around, 1.06-1.19 mm out): they lie
    within ``min_radius_px`` of the centre, or within ``3 width_px`` of the outline.

    Parameters
    ----------
    heights : numpy.ndarray
        Heights, micrometres, NaN where not measured.
    outer : Circle
        The outline of the measured region (pixels).
    width_px : float
        Half-width of the window a seam is judged across, pixels.
    depth_um : float
        Least depth of a groove below both sides, or height of a step, micrometres.
    coverage : float
        Least fraction of the angles at which the seam is found.
    min_radius_px : float
        Smallest seam radius, pixels.
    tolerance_px : float
        RANSAC inlier tolerance, pixels.

    Returns
    -------
    Circle or None
        The primer's edge (pixels), or None when ``outer`` holds no seam.
    """
    k = max(1, round(width_px))
    centre = outer
    found: Circle | None = None
    for _ in range(2):
        radii = np.arange(0.0, centre.r + k + 1)
        profile = polar(heights, centre, radii)
        inner, out = np.full_like(profile, np.nan), np.full_like(profile, np.nan)
        inner[:, k:], out[:, :-k] = profile[:, :-k], profile[:, k:]
        sides = np.isfinite(inner) & np.isfinite(out)
        with np.errstate(invalid="ignore"):
            groove = np.where(np.isfinite(profile), np.minimum(inner, out) - profile, np.where(sides, np.inf, np.nan))
            step = np.abs(out - inner)
        usable = (radii >= min_radius_px) & (radii <= outer.r - 3 * k)
        for kind, strength in (("groove", groove), ("step", step)):
            ring = _seam_ring(strength, depth_um, coverage, usable, k)
            if ring is None:
                continue
            lo, hi = ring
            if kind == "step":
                # |h(r + k) - h(r - k)| is flat over 2k around a sharp step: place it where the slope is steepest
                slope = np.full_like(profile, np.nan)
                slope[:, 2:-2] = np.abs(profile[:, 4:] - profile[:, :-4])  # over 4 pixels: a rounded edge is no sharper
                with np.errstate(invalid="ignore"):
                    strength = np.where(step >= depth_um, slope * k / 4, np.nan)
            window = np.where(np.isfinite(strength[:, lo:hi]), strength[:, lo:hi], -np.inf)
            best = lo + np.argmax(window, axis=1)
            hit = window.max(axis=1) >= depth_um
            angles = np.arange(ZONE_ANGLES)[hit] * 2 * np.pi / ZONE_ANGLES
            points = np.stack([centre.x + best[hit] * np.cos(angles), centre.y - best[hit] * np.sin(angles)], axis=1)
            circle = _ransac_circle(points, tolerance_px)
            if circle is None or circle.r < min_radius_px:
                continue
            if kind == "groove":
                circle = _inner_wall(heights, circle, k)
            found, centre = circle, Circle(circle.x, circle.y, outer.r)
            break
        else:
            return found
    return found


def _seam_ring(strength: np.ndarray, depth_um: float, coverage: float, usable: np.ndarray, k: int) -> tuple[int, int] | None:
    """Radius window (first, past-last index) of the outermost ring found at ``coverage`` of the angles."""
    with np.errstate(invalid="ignore"):
        hits = strength >= depth_um
    # a ring found within +-k/2 of a radius counts at that radius: the centre may be off a little
    near = ndi.maximum_filter1d(hits.astype(np.uint8), size=k + 1, axis=1).astype(bool)
    covered = usable & (near.mean(axis=0) >= coverage)
    if not covered.any():
        return None
    last = int(np.flatnonzero(covered)[-1])
    first = last
    while first > 0 and covered[first - 1]:
        first -= 1
    band = near.mean(axis=0)[first : last + 1]
    peak = first + round(float(np.mean(np.flatnonzero(band >= band.max() - 0.02))))  # the middle of a plateau
    return max(0, peak - k), min(strength.shape[1], peak + k + 1)


def _inner_wall(heights: np.ndarray, groove: Circle, k: int) -> Circle:
    """The groove's circle moved inward to where its primer side is halfway down (median over angles)."""
    radii = np.arange(max(0.0, groove.r - 2 * k), groove.r + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # radii unmeasured at every angle (a gap)
        profile = np.nanmedian(polar(heights, groove, radii), axis=0)
    if not np.isfinite(profile[0]):
        return groove
    measured = np.isfinite(profile)
    bottom = float(np.nanmin(profile[-(k // 2 + 1) :])) if measured[-(k // 2 + 1) :].any() else None
    if bottom is None:  # an unmeasured seam: the primer ends where the measurements do
        edge = radii[np.flatnonzero(measured)[-1]]
    else:
        high = profile >= 0.5 * (profile[0] + bottom)
        edge = radii[np.flatnonzero(high & measured)[-1]]
    return Circle(groove.x, groove.y, float(edge))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background piece that does not reach the array border filled.

    The same result as :func:`scipy.ndimage.binary_fill_holes` (4-connected background), by one
    labelling instead of a dilation repeated until it stops, which is slow on large discs.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean image.

    Returns
    -------
    numpy.ndarray
        Boolean image, ``mask`` plus its holes.
    """
    labels, count = ndi.label(~mask)
    if count == 0:
        return mask.copy()
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.zeros(count + 1, bool)
    outside[border] = True
    outside[0] = False
    return ~outside[labels]


def opening(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary opening by a 3 x 3 cross repeated ``iterations`` times, outside the array empty.

    The same result as :func:`scipy.ndimage.binary_opening` with its defaults, by OpenCV.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    opened = cv2.morphologyEx(
        mask.astype(np.uint8), cv2.MORPH_OPEN, kernel, iterations=iterations, borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return opened.astype(bool)


def disc(shape: tuple[int, int], circle: Circle, radius: float) -> np.ndarray:
    """Points within ``radius`` of the circle's centre.

    Parameters
    ----------
    shape : tuple of int
        (rows, columns) of the output.
    circle : Circle
        Centre used (its radius is ignored), pixels.
    radius : float
        Radius, pixels.

    Returns
    -------
    numpy.ndarray
        Boolean image.
    """
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (xx - circle.x) ** 2 + (yy - circle.y) ** 2 <= radius**2


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected piece of ``mask`` (4-connected).

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean image.

    Returns
    -------
    numpy.ndarray
        Boolean image holding only the largest piece (a copy of ``mask`` when it is empty).
    """
    labels, count = ndi.label(mask)
    if count == 0:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def bright_face(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """The breech-face contact disc of a ring-light photograph.

    The flat face the breech face pressed scatters the ring light back and shows bright and
    textured; the primer's rounded edge and the firing-pin aperture ring show dark. A heavy
    blur and Otsu's threshold separate them; the face is the bright piece that does not touch
    the picture's border (the case head does) and encloses the picture's centre.

    Parameters
    ----------
    image : numpy.ndarray
        Grey levels (any scale).
    sigma_px : float
        Gaussian blur before thresholding, pixels.

    Returns
    -------
    numpy.ndarray
        Boolean image of the contact disc.
    """
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma_px)
    bright = smooth > threshold_otsu(smooth)
    labels, _ = ndi.label(bright)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    rows, cols = image.shape
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    sizes[border] = 0
    for label in np.argsort(sizes)[::-1][:5]:
        piece = labels == label
        if sizes[label] > 0 and fill_holes(piece)[rows // 2, cols // 2]:
            return piece
    return largest_component(bright)


def star_mask(shape: tuple[int, int], zone: FiringPinZone, margin_px: float) -> np.ndarray:
    """Points within the zone's per-angle outline plus ``margin_px``.

    Parameters
    ----------
    shape : tuple of int
        (rows, columns) of the output.
    zone : FiringPinZone
        Centre and outer edge at :data:`ZONE_ANGLES` angles, pixels.
    margin_px : float
        Margin added at every angle, pixels.

    Returns
    -------
    numpy.ndarray
        Boolean image of the zone plus margin.
    """
    mask = np.zeros(shape, bool)
    reach = float(zone.extents.max()) + margin_px + 1
    y0, y1 = max(0, int(zone.centre.y - reach)), min(shape[0], int(zone.centre.y + reach) + 1)
    x0, x1 = max(0, int(zone.centre.x - reach)), min(shape[1], int(zone.centre.x + reach) + 1)
    if y0 >= y1 or x0 >= x1:
        return mask
    yy, xx = np.ogrid[y0:y1, x0:x1]
    dx, dy = xx - zone.centre.x, zone.centre.y - yy
    angle_bin = (np.round(np.arctan2(dy, dx) * ZONE_ANGLES / (2 * np.pi)).astype(np.int64)) % ZONE_ANGLES
    mask[y0:y1, x0:x1] = np.hypot(dx, dy) <= zone.extents[angle_bin] + margin_px
    return mask


def locate_firing_pin(
    levelled: np.ndarray,
    region: np.ndarray,
    holes: np.ndarray,
    primer: Circle,
    depth_um: float,
    min_radius_px: float,
    *,
    max_offset: float,
    flowback_reach: float,
) -> FiringPinZone | None:
    """The zone the firing pin disturbed on a topography, or None when it shows no impression.

    The crater is what is unmeasured inside the primer (a steep crater bottom) or lies deeper
    than ``depth_um`` below the breech-face level; the largest such piece at least
    ``min_radius_px`` in radius and centred within ``max_offset`` primer radii of the primer's
    centre is the impression. The zone adds what is connected to it and stands out of the
    breech-face level (crater walls, primer metal pushed back into the firing-pin aperture). Its
    outline is read angle by angle from the crater centre, smoothed over 30 degrees and capped
    at ``flowback_reach`` crater radii, so that a round, elliptical or rectangular zone is
    followed while a narrow drag-mark tail is not (the outlier step takes such tails). Round
    craters get a RANSAC circle through the zone's outline instead, which ignores the breech
    face that clings to the zone where it stands out of the plane.

    Parameters
    ----------
    levelled : numpy.ndarray
        Heights with the form removed, micrometres, NaN where not measured.
    region : numpy.ndarray
        Boolean: measured points inside the primer.
    holes : numpy.ndarray
        Boolean: unmeasured points inside the filled primer region.
    primer : Circle
        The primer circle, pixels.
    depth_um : float
        Height departure from the breech-face level marking the zone, micrometres.
    min_radius_px : float
        Smallest crater radius, pixels.
    max_offset : float
        Farthest crater centre from the primer centre, in primer radii.
    flowback_reach : float
        Farthest extent of the zone, in crater radii per angle.

    Returns
    -------
    FiringPinZone or None
        Centre and covering radius (pixels), per-angle outer edge (pixels) and crater mask.
    """
    with np.errstate(invalid="ignore"):
        deep = holes | (region & (levelled < -depth_um))
        disturbed = deep | (region & (np.abs(levelled) > depth_um))
    crater = _central_piece(opening(deep, 2), primer, min_radius_px, max_offset)
    if crater is None:
        return None
    crater = fill_holes(crater)
    cy, cx = ndi.center_of_mass(crater)
    labels, _ = ndi.label(opening(disturbed, 3) | crater)
    iy, ix = round(cy), round(cx)
    zone = fill_holes(labels == labels[iy, ix]) if crater[iy, ix] else crater
    if classify_shape(crater)[0] == "hemispherical":
        # A round pin leaves a round aperture zone: a robust circle ignores what clings to it.
        circle = fit_circle(zone | crater, max(2.0, min_radius_px / 10))
        if circle is not None and circle.r < 0.9 * primer.r:
            return FiringPinZone(circle, np.full(ZONE_ANGLES, circle.r), crater)
    reach = flowback_reach * _polar_extent(crater, cx, cy, primer.r)
    extents = np.minimum(_polar_extent(zone | crater, cx, cy, primer.r), reach)
    return FiringPinZone(Circle(float(cx), float(cy), float(extents.max())), extents, crater)


def locate_aperture(
    image: np.ndarray,
    holes: np.ndarray,
    inside: np.ndarray,
    primer: Circle,
    px_per_um: float,
    *,
    max_offset: float,
    crater_min_radius_um: float,
    smoothing_um: float,
    tolerance_um: float,
    max_radius: float,
) -> FiringPinZone | None:
    """The firing-pin aperture zone of a ring-light photograph, aperture rings included.

    Around the firing-pin crater a ring-light picture shows a bright annulus (primer metal
    pushed into the firing-pin aperture) closed by a dark ring (the aperture's edge), which is
    often broken by bright arcs, so the dark pieces of the picture alone miss it. The zone is
    traced instead on the picture lightly smoothed, in polar coordinates around the crater: the
    outermost radius where the median over angles is darker than halfway between the breech
    face and the darkest ring gives the zone's size; per angle, the outermost dark point near
    that radius gives an outline point, and a RANSAC circle through those points the zone. The
    firing pin strikes near the primer's centre, so a zone whose centre lies more than
    ``max_offset`` primer radii from it, or wider than ``max_radius`` primer radii, is a failed
    fit: the zone then falls back to the median profile's radius around the crater (or the
    primer's centre when no crater qualifies either).

    Parameters
    ----------
    image : numpy.ndarray
        Standardised grey level (dimensionless).
    holes : numpy.ndarray
        Boolean: dark pieces inside the filled contact disc (crater candidates).
    inside : numpy.ndarray
        Boolean: the primer disc shrunk by the exterior offset.
    primer : Circle
        The contact disc, pixels.
    px_per_um : float
        Pixels per micrometre of the picture.
    max_offset : float
        Farthest zone centre from the primer centre, in primer radii.
    crater_min_radius_um : float
        Smallest crater radius, micrometres.
    smoothing_um : float
        Gaussian smoothing before tracing, micrometres.
    tolerance_um : float
        RANSAC inlier tolerance of the zone circle, micrometres (at least 2 px).
    max_radius : float
        Largest zone radius, in primer radii.

    Returns
    -------
    FiringPinZone or None
        A circular zone (pixels) and its disc as the crater mask; None when the picture shows
        no aperture ring near the primer's centre.
    """
    crater = _central_piece(opening(holes, 2), primer, crater_min_radius_um * px_per_um, max_offset)
    if crater is not None:
        cy, cx = ndi.center_of_mass(fill_holes(crater))
    else:
        cx, cy = primer.x, primer.y
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), smoothing_um * px_per_um)
    smooth[~inside] = np.nan
    face_level = float(np.nanmedian(smooth))
    radii = np.arange(0.0, max_radius * primer.r)
    angles = np.arange(ZONE_ANGLES) * 2 * np.pi / ZONE_ANGLES
    rows = cy - radii[None, :] * np.sin(angles[:, None])
    cols = cx + radii[None, :] * np.cos(angles[:, None])
    polar = ndi.map_coordinates(smooth, [rows, cols], order=1, mode="constant", cval=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # radii with no breech face at any angle
        profile = np.nanmedian(polar, axis=0)
    beyond_crater = radii >= crater_min_radius_um * px_per_um
    if not np.isfinite(profile[beyond_crater]).any():
        return None
    threshold = 0.5 * (face_level + float(np.nanmin(profile[beyond_crater])))
    dark = np.flatnonzero(beyond_crater & (profile < threshold))
    if dark.size == 0:
        return None
    edge = float(radii[dark[-1]]) + 0.5
    fallback = Circle(float(cx), float(cy), edge)
    # Per angle: the outermost dark point within a band around the profile's edge.
    band = (radii >= 0.6 * edge) & (radii <= 1.25 * edge)
    dark_polar = np.where(band[None, :], np.nan_to_num(polar, nan=np.inf) < threshold, False)
    has_dark = dark_polar.any(axis=1)
    outer = radii.size - 1 - np.argmax(dark_polar[:, ::-1], axis=1)
    reach = radii[outer] + 0.5
    points = np.stack([cx + reach * np.cos(angles), cy - reach * np.sin(angles)], axis=1)[has_dark]
    circle = _ransac_circle(points, max(2.0, tolerance_um * px_per_um))
    plausible = (
        circle is not None
        and np.hypot(circle.x - primer.x, circle.y - primer.y) <= max_offset * primer.r
        and circle.r <= max_radius * primer.r
        and 0.67 * edge <= circle.r <= 1.5 * edge
    )
    zone = circle if plausible and circle is not None else fallback
    if np.hypot(zone.x - primer.x, zone.y - primer.y) > max_offset * primer.r:
        return None
    crater_disc = disc(image.shape, zone, zone.r)
    return FiringPinZone(zone, np.full(ZONE_ANGLES, zone.r), crater_disc)


def _central_piece(mask: np.ndarray, primer: Circle, min_radius_px: float, max_offset: float) -> np.ndarray | None:
    """The largest piece of ``mask`` centred within ``max_offset`` primer radii, if big enough."""
    labels, count = ndi.label(mask)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    big = np.flatnonzero(sizes >= np.pi * min_radius_px**2)  # few: centres only for these
    if big.size == 0:
        return None
    centres = np.array(ndi.center_of_mass(mask, labels, big)).reshape(-1, 2)
    ok = np.hypot(centres[:, 1] - primer.x, centres[:, 0] - primer.y) < max_offset * primer.r
    if not ok.any():
        return None
    return labels == big[ok][np.argmax(sizes[big[ok]])]


def _polar_extent(zone: np.ndarray, cx: float, cy: float, max_radius: float) -> np.ndarray:
    """Distance from (cx, cy) to where ``zone`` first ends, at ZONE_ANGLES angles, smoothed."""
    radii = np.arange(0.0, max_radius, 1.0)
    angles = np.arange(ZONE_ANGLES) * 2 * np.pi / ZONE_ANGLES
    rows = cy - radii[None, :] * np.sin(angles[:, None])
    cols = cx + radii[None, :] * np.cos(angles[:, None])
    inside = ndi.map_coordinates(zone.astype(np.uint8), [rows, cols], order=0, mode="constant", cval=0).astype(bool)
    first_out = np.where(inside.all(axis=1), radii.size, np.argmin(inside, axis=1))
    return ndi.median_filter(radii[np.maximum(first_out - 1, 0)] + 0.5, size=ZONE_ANGLES // 12 + 1, mode="wrap")
