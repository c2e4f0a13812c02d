"""Raw scan -> breech-face surface ready for Congruent Matching Cells.

The pipeline follows cmcR (crop to the primer, drop the firing-pin impression, median-plane
trend removal, 16-500 um Gaussian band-pass, downsample to 6.25 um) with three departures,
each because the published one loses or invents data: circles are fitted robustly (RANSAC)
instead of from the extent of the valid region, the band-pass is a normalised convolution
instead of zero-filling the missing points, and resampling averages areas instead of keeping
every second pixel. ``docs/preprocessing.md`` gives the details.

Surfaces that have already been through such a pipeline (the published processed Fadul and
Weller sets, TopMatch exports) are recognised and passed through untouched except for a
resample when their spacing differs from the working one: running the pipeline twice would
crop and filter the breech face again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from ballistics.errors import PreprocessError, PrimerNotFoundError, SurfaceTooSmallError
from ballistics.firing_pin import FiringPinImpression, extract_firing_pin
from ballistics.method import Mode, PreprocessParams
from ballistics.primer import (
    ZONE_ANGLES,
    bright_face,
    disc,
    fill_holes,
    find_seam,
    fit_circle,
    largest_component,
    locate_aperture,
    locate_firing_pin,
    opening,
    star_mask,
)
from ballistics.scan import Scan


@dataclass(frozen=True, eq=False)
class Crop:
    """Where the working surface was taken from, in the pixels of the scan as loaded.

    Coordinates are (x = column, y = row) of the scan's own array, pixel centres at integers, so
    that the crop can be drawn over the scan as the examiner received it.
    """

    #: The primer's edge: centre x, y and radius (pixels along x), or None when none was fitted.
    primer: tuple[float, float, float] | None
    #: Radius (pixels along x) within which the breech face was kept: the primer's minus the
    #: exterior offset (None for processed scans, which are not cropped again).
    kept_radius_px: float | None
    #: Outline (N x 2: x, y) of the firing-pin zone removed, margin included; None when none was.
    firing_pin_zone: np.ndarray | None
    #: Where the working surface's array lies on the scan: (left, right, bottom, top) edges,
    #: as matplotlib's ``imshow(extent=...)`` takes them.
    surface_extent: tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class BreechFace:
    """The working surface of one scan and what was found on the way.

    ``surface`` holds heights in metres (standardised grey level, dimensionless, for images),
    rows = y, NaN outside the kept breech face, trimmed to the bounding box of valid data.
    """

    surface: np.ndarray
    spacing_m: float
    mode: Literal["raw", "preprocessed"]
    primer_center_px: tuple[float, float] | None
    primer_radius_px: float | None
    firing_pin: FiringPinImpression | None
    params: PreprocessParams
    #: What the scan measured: heights (``topography``) or grey levels of a photograph (``image``).
    kind: Literal["topography", "image"] = "topography"
    #: Where the surface lies on the scan it was prepared from (None when loaded from a cache).
    crop: Crop | None = None


def looks_preprocessed(scan: Scan, params: PreprocessParams = PreprocessParams()) -> bool:
    """True for a topography already cropped, levelled and band-passed.

    Such a surface has no long-wavelength form left: a low-pass at the band-pass's long
    wavelength, on a ``params.form_grid_um`` grid, keeps less than ``params.form_fraction`` of
    its standard deviation (under a quarter on the processed Fadul, Weller and TopMatch sets,
    nearly all of it on raw scans, whose tilt and firing-pin crater dominate). Images are never
    taken as processed.

    Parameters
    ----------
    scan : Scan
        The scan; heights in metres for a topography.
    params : PreprocessParams
        ``bandpass_um`` (micrometres), ``form_grid_um`` (micrometres), ``form_fraction``.

    Returns
    -------
    bool
        Whether :func:`prepare` in ``"auto"`` mode passes the scan through.
    """
    if scan.kind != "topography":
        return False
    heights = scan.heights
    valid = np.isfinite(heights)
    centred = heights - np.median(heights[valid])
    spread = float(np.std(centred[valid]))
    if spread == 0.0:
        return False
    spacing = float(np.sqrt(scan.spacing_x * scan.spacing_y))
    step = max(1, round(params.form_grid_um / 1e6 / spacing))  # judge the form on a coarse grid
    coarse, coarse_valid = _resample(centred, valid, 1.0 / step, 1.0 / step)
    sigma = params.bandpass_um[1] * 1e-6 / (2 * np.pi) / (spacing * step)
    low = _normalised_blur(coarse, coarse_valid, sigma, params.blur_coarse_sigmas)
    form = float(np.sqrt(np.mean(low[coarse_valid] ** 2)))
    return form < params.form_fraction * spread


def prepare(scan: Scan, params: PreprocessParams = PreprocessParams(), mode: Mode = "auto") -> BreechFace:
    """The breech-face surface of a scan at the working spacing.

    Raw scans go through the pipeline of ``docs/preprocessing.md``: square pixels, primer circle
    (:func:`ballistics.primer.fit_circle`), firing-pin zone
    (:func:`ballistics.primer.locate_firing_pin`, or :func:`ballistics.primer.locate_aperture`
    on photographs) removed with a margin, median-regression form removal, NaN-aware Gaussian
    band-pass, robust outlier removal, area-averaging resample. Processed topographies are
    passed through (resampled only if their spacing differs).

    Parameters
    ----------
    scan : Scan
        A topography (heights in metres) or an image (grey levels) with its pixel spacing.
    params : PreprocessParams
        Every number of the pipeline (lengths in micrometres); echoed in the result.
    mode : {"auto", "raw", "preprocessed"}
        ``"auto"`` passes already-processed topographies through (see
        :func:`looks_preprocessed`); ``"raw"`` and ``"preprocessed"`` force either path.

    Returns
    -------
    BreechFace
        The working surface (heights in metres; standardised grey level, dimensionless, for
        images; NaN outside the breech face) at ``params.working_spacing_um``, the primer circle
        and the firing-pin impression in working-surface pixels, and ``params``.

    Raises
    ------
    PrimerNotFoundError
        No primer circle of at least ``params.primer_min_radius_um``.
    SurfaceTooSmallError
        Fewer than ``params.min_valid_points`` valid points remain.
    PreprocessError
        An unknown mode.

    References
    ----------
    .. [1] Zemmels, J., Hofmann, H., VanderPlas, S. cmcR: an implementation of the 'Congruent
           Matching Cells' method, R package 0.1.11 (CRAN); functions preProcess_crop,
           preProcess_removeTrend and preProcess_gaussFilter, whose steps and defaults the
           pipeline follows.
    .. [2] Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
           topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
    """
    if mode not in ("auto", "raw", "preprocessed"):
        raise PreprocessError(scan.source, f"unknown preprocessing mode {mode!r}")
    if mode == "preprocessed" or (mode == "auto" and looks_preprocessed(scan, params)):
        return _pass_through(scan, params)
    return _process_raw(scan, params)


def _pass_through(scan: Scan, params: PreprocessParams) -> BreechFace:
    heights, valid = scan.heights, np.isfinite(scan.heights)
    fx, fy = (scan.spacing_x * 1e6 / params.working_spacing_um, scan.spacing_y * 1e6 / params.working_spacing_um)
    if not (np.isclose(fx, 1.0, rtol=1e-3) and np.isclose(fy, 1.0, rtol=1e-3)):
        heights, valid = _resample(heights, valid, fx, fy)
    surface, origin = _trim(np.where(valid, heights, np.nan))
    _require_size(scan, surface, params)
    primer = fit_circle(fill_holes(np.isfinite(surface)), max(2.0, surface.shape[0] / 200), enclosing=True)
    to_scan = _Grid(params.working_spacing_um * 1e-6, scan, origin)
    crop = Crop(
        primer=None if primer is None else to_scan.circle(primer.x, primer.y, primer.r),
        kept_radius_px=None,
        firing_pin_zone=None,
        surface_extent=to_scan.extent(surface.shape),
    )
    return BreechFace(
        surface=surface,
        spacing_m=params.working_spacing_um * 1e-6,
        mode="preprocessed",
        primer_center_px=(primer.x, primer.y) if primer else None,
        primer_radius_px=primer.r if primer else None,
        firing_pin=None,
        params=params,
        kind=scan.kind,
        crop=crop,
    )


class _Grid:
    """Converts pixel coordinates of a grid at ``spacing_m`` (offset by ``origin`` pixels) to those of ``scan``.

    Grids made by area averaging share their array's corner, so a pixel edge e of one grid is
    the edge e * spacing / scan spacing of the other; pixel centres sit half a pixel in.
    """

    def __init__(self, spacing_m: float, scan: Scan, origin: tuple[int, int] = (0, 0)) -> None:
        self.rx, self.ry = spacing_m / scan.spacing_x, spacing_m / scan.spacing_y
        self.x0, self.y0 = origin

    def point(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray | float, np.ndarray | float]:
        return (x + self.x0 + 0.5) * self.rx - 0.5, (y + self.y0 + 0.5) * self.ry - 0.5

    def circle(self, x: float, y: float, r: float) -> tuple[float, float, float]:
        cx, cy = self.point(x, y)
        return float(cx), float(cy), r * self.rx

    def extent(self, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
        rows, cols = shape
        return (
            self.x0 * self.rx - 0.5,
            (self.x0 + cols) * self.rx - 0.5,
            (self.y0 + rows) * self.ry - 0.5,
            self.y0 * self.ry - 0.5,
        )


def _process_raw(scan: Scan, params: PreprocessParams) -> BreechFace:
    loaded = scan
    if not np.isclose(scan.spacing_x, scan.spacing_y, rtol=1e-3):
        scan = _square_pixels(scan)
    finest = params.working_spacing_um * 1e-6 / 2
    if scan.spacing_x < 0.99 * finest:
        # Half the working spacing resolves the band-pass's short cut-off; finer pixels (camera
        # images) only cost time. Area averaging keeps every measured point's contribution.
        values, valid = _resample(scan.heights, np.isfinite(scan.heights), scan.spacing_x / finest, scan.spacing_y / finest)
        scan = scan.with_heights(np.where(valid, values, np.nan), finest, finest)
    spacing = scan.spacing_x
    px = lambda um: um * 1e-6 / spacing  # noqa: E731 - micrometres to pixels of this scan
    is_image = scan.kind == "image"
    heights = _standardise(scan.heights) if is_image else scan.heights * 1e6  # work in um
    measured = np.isfinite(heights)
    face = bright_face(heights, px(params.face_blur_um)) if is_image else largest_component(measured)
    filled = fill_holes(face)
    tolerance = max(2.0, px(params.primer_tolerance_um))
    primer = fit_circle(opening(filled, 3), tolerance, enclosing=True)
    if primer is not None and not is_image:
        # A scan of the whole case head: the outline is the rim, the primer is inside its seam.
        seam = find_seam(
            heights, primer, px(params.seam_width_um), params.seam_depth_um, params.seam_coverage, px(params.seam_min_radius_um), tolerance
        )
        if seam is not None:
            primer = seam
            face = largest_component(measured & disc(heights.shape, seam, seam.r))
            filled = fill_holes(face)
        elif primer.r > px(params.primer_max_radius_um):
            raise PrimerNotFoundError(
                scan.source,
                f"no primer edge found: the measured data end on a circle of {primer.r * spacing * 1e3:.2f} mm radius, larger than "
                f"a primer ({params.primer_max_radius_um / 1000:g} mm), and no groove or step at least {params.seam_depth_um:g} µm "
                f"deep runs around a primer inside it",
            )
    if primer is None or primer.r < px(params.primer_min_radius_um):
        raise PrimerNotFoundError(
            scan.source,
            f"no primer boundary found (no circular edge of at least {params.primer_min_radius_um / 1000:g} mm radius in the valid data)",
        )
    inside = disc(heights.shape, primer, primer.r - px(params.exterior_offset_um))
    region = measured & inside & face
    zone_outline: np.ndarray | None = None
    if is_image:
        pin = locate_aperture(
            heights,
            filled & ~face,
            inside,
            primer,
            px(1.0),
            max_offset=params.firing_pin_max_offset,
            crater_min_radius_um=params.crater_min_radius_um,
            smoothing_um=params.aperture_smoothing_um,
            tolerance_um=params.aperture_tolerance_um,
            max_radius=params.aperture_max_radius,
        )
    else:
        levelled = heights - _robust_trend(heights, region, "quadratic", params)
        pin = locate_firing_pin(
            levelled,
            region,
            filled & ~face,
            primer,
            params.firing_pin_depth_um,
            px(params.crater_min_radius_um),
            max_offset=params.crater_max_offset,
            flowback_reach=params.flowback_reach,
        )
    if pin is not None:
        # measured points only: an unmeasured hole (cmcR's cut-out, forced through the raw path) may be wide
        crater_r = float(np.sqrt((pin.crater & measured).sum() / np.pi))
        if not is_image and crater_r > params.crater_max_radius * primer.r:
            raise PrimerNotFoundError(
                scan.source,
                f"no primer edge found: the circle fitted to the outline of the measured data ({primer.r * spacing * 1e3:.2f} mm radius) "
                f"holds a measured depression of {crater_r * spacing * 1e3:.2f} mm radius, more than {params.crater_max_radius:g} of it, and no "
                f"groove or step at least {params.seam_depth_um:g} µm deep runs around a primer inside it",
            )
        region &= ~star_mask(heights.shape, pin, px(params.firing_pin_margin_um))
        reach = pin.extents + px(params.firing_pin_margin_um)
        angles = np.arange(ZONE_ANGLES) * 2 * np.pi / ZONE_ANGLES
        zone_outline = np.stack([pin.centre.x + reach * np.cos(angles), pin.centre.y - reach * np.sin(angles)], axis=1)
    _require_size(scan, region, params, spacing)
    levelled = heights - _robust_trend(heights, region, params.trend, params)
    filtered = _bandpass(levelled, region, params, spacing)
    region &= ~_outliers(filtered, region, params.outlier_z, px(params.outlier_dilation_um))
    _require_size(scan, region, params, spacing)
    levelled = heights - _robust_trend(heights, region, params.trend, params)
    filtered = _bandpass(levelled, region, params, spacing)
    factor = spacing * 1e6 / params.working_spacing_um
    work, work_valid = _resample(filtered, region, factor, factor)
    surface, (x0, y0) = _trim(np.where(work_valid, work, np.nan) * (1.0 if is_image else 1e-6))
    _require_size(scan, surface, params)
    on_loaded = _Grid(spacing, loaded)
    crop = Crop(
        primer=on_loaded.circle(primer.x, primer.y, primer.r),
        kept_radius_px=(primer.r - px(params.exterior_offset_um)) * on_loaded.rx,
        firing_pin_zone=None if zone_outline is None else np.stack(on_loaded.point(zone_outline[:, 0], zone_outline[:, 1]), axis=1),
        surface_extent=_Grid(params.working_spacing_um * 1e-6, loaded, (x0, y0)).extent(surface.shape),
    )
    to_work = lambda x, y: ((x + 0.5) * factor - 0.5 - x0, (y + 0.5) * factor - 0.5 - y0)  # noqa: E731
    firing_pin = None
    if pin is not None:
        unit = 1.0 if is_image else 1e-6
        found = extract_firing_pin(
            levelled * unit, pin.crater, (pin.centre.x, pin.centre.y), pin.centre.r, spacing, params.working_spacing_um * 1e-6
        )
        firing_pin = replace(found, center_px=(found.center_px[0] - x0, found.center_px[1] - y0))
    return BreechFace(
        surface=surface,
        spacing_m=params.working_spacing_um * 1e-6,
        mode="raw",
        primer_center_px=to_work(primer.x, primer.y),
        primer_radius_px=primer.r * factor,
        firing_pin=firing_pin,
        params=params,
        kind=scan.kind,
        crop=crop,
    )


def _standardise(image: np.ndarray) -> np.ndarray:
    """Grey level as a robust z-score, so that lighting and exposure drop out."""
    median = np.median(image)
    mad = 1.4826 * np.median(np.abs(image - median))
    return (image - median) / (mad if mad > 0 else 1.0)


def _robust_trend(heights: np.ndarray, region: np.ndarray, trend: str, params: PreprocessParams) -> np.ndarray:
    """Median-regression (quantile 0.5) plane or quadratic over ``region``, on the whole grid.

    Least absolute deviations by iteratively reweighted least squares on at most
    ``params.trend_points`` points of a regular subgrid: the crater walls and the flow-back
    ring, a minority, pull a least-squares plane but not a median one. Each pass solves the
    weighted normal equations (a 3 x 3 or 6 x 6 system) with weights 1 / max(|residual|,
    floor) (see ``params.trend_floor``); at most ``params.trend_passes`` passes, stopping when
    the fitted surface moves by less than ``params.trend_tolerance`` of the residuals' median
    over the subgrid.
    """
    stride = max(1, int(np.ceil(np.sqrt(region.sum() / params.trend_points))))
    sub = region[::stride, ::stride]
    ys, xs = np.nonzero(sub)
    z = heights[::stride, ::stride][sub]
    rows, cols = heights.shape
    scale = max(rows, cols) / 2.0
    u, v = (xs * stride - cols / 2.0) / scale, (ys * stride - rows / 2.0) / scale
    terms = [np.ones_like(u), u, v] + ([u * u, u * v, v * v] if trend == "quadratic" else [])
    design = np.stack(terms, axis=1)
    coef = np.linalg.lstsq(design, z, rcond=None)[0]
    fit = design @ coef
    for _ in range(params.trend_passes):
        residual = np.abs(z - fit)
        typical = np.median(residual) + 1e-12
        weights = 1.0 / np.maximum(residual, params.trend_floor * typical)
        weighted = design * weights[:, None]
        updated = np.linalg.solve(weighted.T @ design, weighted.T @ z)
        moved = design @ updated
        change = np.abs(moved - fit).max()
        coef, fit = updated, moved
        if change <= params.trend_tolerance * typical:
            break
    return _trend_surface(coef, heights.shape)


def _trend_surface(coef: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A plane (3 coefficients) or quadratic (6) over the grid, in the trend fit's coordinates
    (centred on the array, scaled by half its longer side)."""
    rows, cols = shape
    scale = max(rows, cols) / 2.0
    uu = (np.arange(cols) - cols / 2.0)[None, :] / scale
    vv = (np.arange(rows) - rows / 2.0)[:, None] / scale
    surface = coef[0] + coef[1] * uu + coef[2] * vv
    if len(coef) == 6:
        surface = surface + coef[3] * uu * uu + coef[4] * uu * vv + coef[5] * vv * vv
    return surface


def _normalised_blur(values: np.ndarray, valid: np.ndarray, sigma_px: float, coarse_sigmas: float) -> np.ndarray:
    """Gaussian low-pass of the valid points only: blur(values * mask) / blur(mask).

    A kernel wider than ``coarse_sigmas`` pixels runs on a grid coarsened by area averaging to
    sigma / ``coarse_sigmas`` per step, and both blurred fields come back by bilinear
    interpolation: the low-pass is smooth over that grid step, so this changes the result by a
    fraction of a percent of the form it removes, at a small part of the cost.
    """
    numerator: np.ndarray = np.where(valid, values, 0.0).astype(np.float32)
    weight: np.ndarray = valid.astype(np.float32)
    step = max(1, int(sigma_px // coarse_sigmas))
    if step > 1:
        rows, cols = values.shape
        small = (max(1, cols // step), max(1, rows // step))
        numerator = cv2.resize(numerator, small, interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, small, interpolation=cv2.INTER_AREA)
        sigma_small = sigma_px * small[0] / cols, sigma_px * small[1] / rows
        numerator = cv2.GaussianBlur(numerator, (0, 0), sigma_small[0], sigmaY=sigma_small[1], borderType=cv2.BORDER_CONSTANT)
        weight = cv2.GaussianBlur(weight, (0, 0), sigma_small[0], sigmaY=sigma_small[1], borderType=cv2.BORDER_CONSTANT)
        numerator = cv2.resize(numerator, (cols, rows), interpolation=cv2.INTER_LINEAR)
        weight = cv2.resize(weight, (cols, rows), interpolation=cv2.INTER_LINEAR)
    else:
        numerator = cv2.GaussianBlur(numerator, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
        weight = cv2.GaussianBlur(weight, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 1e-6, numerator / weight, np.float32(np.nan))


def _bandpass(levelled: np.ndarray, region: np.ndarray, params: PreprocessParams, spacing: float) -> np.ndarray:
    """Wavelengths between the two cut-offs, NaN outside ``region``; sigma = wavelength / 2 pi."""
    short_um, long_um = params.bandpass_um
    to_sigma = lambda um: um * 1e-6 / (2 * np.pi) / spacing  # noqa: E731
    coarse_sigmas = params.blur_coarse_sigmas
    fine = (
        _normalised_blur(levelled, region, to_sigma(short_um), coarse_sigmas)
        if to_sigma(short_um) >= 0.25
        else np.where(region, levelled, np.nan)
    )
    coarse = _normalised_blur(levelled, region, to_sigma(long_um), coarse_sigmas)
    return np.where(region, fine - coarse, np.nan)


def _outliers(filtered: np.ndarray, region: np.ndarray, z: float, dilation_px: float) -> np.ndarray:
    """Points whose robust z-score exceeds ``z``, dilated: aperture shear, drag marks, spikes."""
    values = filtered[region]
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    if mad == 0:
        return np.zeros_like(region)
    with np.errstate(invalid="ignore"):
        out = region & (np.abs(filtered - median) > z * mad)
    radius = round(dilation_px)
    if radius > 0 and out.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        out = cv2.dilate(out.astype(np.uint8), kernel).astype(bool)
    return out


def _resample(values: np.ndarray, valid: np.ndarray, fx: float, fy: float) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware resampling by factors (fx, fy): area averaging down, bilinear up.

    Values and mask are resampled alike and divided, so missing points add no zeros; an output
    point is kept when at least half of what it averages was measured.
    """
    rows, cols = values.shape
    size = (max(1, round(cols * fx)), max(1, round(rows * fy)))
    method = cv2.INTER_AREA if fx <= 1 and fy <= 1 else cv2.INTER_LINEAR
    numerator = cv2.resize(np.where(valid, values, 0.0), size, interpolation=method)
    denominator = cv2.resize(valid.astype(np.float64), size, interpolation=method)
    keep = denominator >= 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep, numerator / denominator, np.nan), keep


def _square_pixels(scan: Scan) -> Scan:
    """Resample a scan with unequal x / y spacing to square pixels at the finer spacing."""
    finer = min(scan.spacing_x, scan.spacing_y)
    values, valid = _resample(scan.heights, np.isfinite(scan.heights), scan.spacing_x / finer, scan.spacing_y / finer)
    return scan.with_heights(np.where(valid, values, np.nan), finer, finer)


def _trim(surface: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """``surface`` cut to the bounding box of its valid points, and the box's (x0, y0)."""
    valid = np.isfinite(surface)
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if rows.size == 0:
        return surface[:0, :0], (0, 0)
    return surface[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], (int(cols[0]), int(rows[0]))


def _require_size(scan: Scan, data: np.ndarray, params: PreprocessParams, spacing: float | None = None) -> None:
    """Refuse a surface with fewer than ``min_valid_points`` valid points at working spacing."""
    count = float(data.sum()) if data.dtype == bool else float(np.isfinite(data).sum())
    if spacing is not None:
        count *= (spacing * 1e6 / params.working_spacing_um) ** 2
    if count < params.min_valid_points:
        raise SurfaceTooSmallError(
            scan.source,
            f"only {int(count)} valid points left at {params.working_spacing_um} µm after cropping; at least {params.min_valid_points} needed",
        )
