"""Preprocessing: raw scans become breech-face surfaces like the published processed ones,
processed scans pass through untouched, and every failure names the scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FADUL, RAW_FADUL, REAL_SCANS, require_real_scans
from scipy.signal import fftconvolve

from ballistics.errors import PreprocessError, PrimerNotFoundError, SurfaceTooSmallError
from ballistics.method import PreprocessParams
from ballistics.preprocess import _bandpass, _robust_trend, looks_preprocessed, prepare
from ballistics.scan import Scan, load_scan

PAIRS = {"fadul1.1_raw": "Fadul 1-1", "fadul1.2_raw": "Fadul 1-2", "fadul2.1_raw": "Fadul 2-1"}


def aligned_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two surfaces after the best translation (FFT cross-correlation)."""
    ma, mb = np.isfinite(a), np.isfinite(b)
    za = np.where(ma, (a - np.nanmean(a)) / np.nanstd(a), 0.0)
    zb = np.where(mb, (b - np.nanmean(b)) / np.nanstd(b), 0.0)
    score = fftconvolve(za, zb[::-1, ::-1])
    overlap = fftconvolve(ma.astype(float), mb[::-1, ::-1].astype(float))
    score = np.where(overlap > 0.3 * min(ma.sum(), mb.sum()), score / np.maximum(overlap, 1.0), -np.inf)
    i, j = np.unravel_index(np.argmax(score), score.shape)
    dy, dx = i - (b.shape[0] - 1), j - (b.shape[1] - 1)
    y0, x0 = max(0, dy), max(0, dx)
    y1, x1 = min(a.shape[0], dy + b.shape[0]), min(a.shape[1], dx + b.shape[1])
    pa, pb = a[y0:y1, x0:x1], b[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    both = np.isfinite(pa) & np.isfinite(pb)
    return float(np.corrcoef(pa[both], pb[both])[0, 1])


def valid_circle_radius(surface: np.ndarray) -> float:
    """Radius of the disc the valid data fill (area of the filled valid region)."""
    from scipy import ndimage as ndi

    return float(np.sqrt(ndi.binary_fill_holes(np.isfinite(surface)).sum() / np.pi))


@pytest.fixture(scope="module")
def raw_prepared() -> dict[str, object]:
    require_real_scans()
    return {name: prepare(load_scan(RAW_FADUL / f"{name}.x3p")) for name in PAIRS}


def test_processed_fadul_passes_through_exactly(real_scans: Path) -> None:
    scan = load_scan(FADUL / "Fadul 1-1.x3p")
    assert looks_preprocessed(scan)
    face = prepare(scan)
    valid = np.isfinite(scan.heights)
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    expected = scan.heights[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    assert face.mode == "preprocessed"
    assert face.firing_pin is None
    np.testing.assert_array_equal(face.surface, expected)


@pytest.mark.parametrize("path", ["cartridgeCaseScans/wellerProcessed/TW01-01.x3p", "cmcR/converted_x3p/fadul2.1_processed.x3p"])
def test_other_processed_scans_are_recognised(real_scans: Path, path: str) -> None:
    assert looks_preprocessed(load_scan(REAL_SCANS / path))


def test_topmatch_scan_is_resampled_to_working_spacing(real_scans: Path) -> None:
    scan = load_scan(REAL_SCANS / "scored/converted_x3p/K013sA1.x3p")
    face = prepare(scan)
    assert face.mode == "preprocessed"
    assert face.spacing_m == pytest.approx(6.25e-6)
    expected = np.array(scan.shape) * scan.spacing_x / 6.25e-6
    assert np.all(np.abs(np.array(face.surface.shape) - expected) <= 0.03 * expected)
    # Resampling neither spreads zeros nor invents heights: the range stays within the input's.
    assert np.nanmax(face.surface) <= np.nanmax(scan.heights) and np.nanmin(face.surface) >= np.nanmin(scan.heights)


def test_raw_scans_are_recognised_as_raw(real_scans: Path) -> None:
    for name in PAIRS:
        assert not looks_preprocessed(load_scan(RAW_FADUL / f"{name}.x3p"))


@pytest.mark.parametrize("raw", sorted(PAIRS))
def test_raw_fadul_resembles_its_processed_version(raw_prepared: dict, raw: str) -> None:
    face = raw_prepared[raw]
    processed = load_scan(FADUL / f"{PAIRS[raw]}.x3p").heights
    assert face.mode == "raw" and face.spacing_m == pytest.approx(6.25e-6)
    assert 480 <= max(face.surface.shape) <= 600
    assert 0.6 <= np.isnan(face.surface).mean() <= 0.85
    # cmcR cut 30 px (3.125 um) inside the primer: our primer circle minus that offset is the
    # processed file's outer circle.
    outer = max(processed.shape) / 2
    assert face.primer_radius_px - 93.75 / 6.25 == pytest.approx(outer, abs=8)
    # The firing-pin zone we exclude is about the hole cmcR cut (1.2-1.6 mm radius).
    pin = face.firing_pin
    assert pin is not None and 1000 <= pin.extent_px * 6.25 <= 1700
    assert aligned_correlation(processed, face.surface) > 0.8


def test_modes_override_the_automatic_choice(real_scans: Path) -> None:
    processed = load_scan(FADUL / "Fadul 2-1.x3p")
    forced_raw = prepare(processed, mode="raw")
    assert forced_raw.mode == "raw"
    raw = load_scan(RAW_FADUL / "fadul2.1_raw.x3p")
    forced = prepare(raw, mode="preprocessed")
    assert forced.mode == "preprocessed" and forced.firing_pin is None
    assert forced.surface.shape[0] == pytest.approx(raw.shape[0] / 2, abs=2)
    with pytest.raises(PreprocessError, match="unknown preprocessing mode"):
        prepare(raw, mode="cooked")  # type: ignore[arg-type]


def test_image_goes_through_the_same_pipeline(real_scans: Path) -> None:
    # 2.2 um / px: the primer's outer edge (the dark ring's outer rim) is ~2,000 px across in
    # these NBIDE photographs, and a small-pistol primer is 4.45 mm across.
    scan = load_scan(REAL_SCANS / "cartridges/NBIDE R BF 118.png", pixel_um=2.2)
    face = prepare(scan)
    assert face.mode == "raw" and face.spacing_m == pytest.approx(6.25e-6)
    values = face.surface[np.isfinite(face.surface)]
    assert values.size > 30_000 and abs(np.median(values)) < 0.2 and 0.3 < values.std() < 3
    assert face.firing_pin is not None
    # The breech-face contact disc of a 9 mm primer is 1.2-2 mm in radius.
    assert 1200 <= face.primer_radius_px * 6.25 <= 2000


@pytest.fixture(scope="module")
def nbide_faces() -> dict[str, object]:
    require_real_scans()
    return {n: prepare(load_scan(REAL_SCANS / f"cartridges/NBIDE R BF {n}.png", pixel_um=2.2)) for n in ("118", "129")}


@pytest.mark.parametrize("name", ["118", "129"])
def test_image_breech_face_excludes_the_whole_aperture_zone(nbide_faces: dict, name: str) -> None:
    face = nbide_faces[name]
    pin = face.firing_pin
    assert pin is not None
    (px, py), (fx, fy), r = face.primer_center_px, pin.center_px, face.primer_radius_px
    # The zone is centred on the firing pin, near the primer centre (0.22 r on these cases).
    assert np.hypot(fx - px, fy - py) <= 0.25 * r
    # It takes the aperture rings (outer edge ~1.03 mm from the pin), not only the crater
    # (~0.63 mm): on 129 the dark ring is broken by bright arcs and was missed before.
    assert 950 <= pin.extent_px * 6.25 <= 1150
    valid = np.isfinite(face.surface)
    yy, xx = np.indices(valid.shape)
    distance = np.hypot(xx - fx, yy - fy)
    # What is kept is the annulus between the zone and the primer edge: nothing within the zone
    # plus its margin, and at least a third of the points between there and the primer edge.
    assert not (valid & (distance < pin.extent_px + 150 / 6.25 - 1)).any()
    between = (distance > pin.extent_px + 150 / 6.25 + 2) & (np.hypot(xx - px, yy - py) < r - 93.75 / 6.25 - 2)
    assert valid[between].mean() > 0.6
    assert valid.mean() > 0.25


def test_nan_aware_bandpass_neither_spreads_zeros_nor_fills_holes() -> None:
    rng = np.random.default_rng(1)
    heights = np.full((200, 200), 5.0) + rng.normal(0, 1e-3, (200, 200))
    region = np.ones((200, 200), bool)
    region[80:120, 80:120] = False
    filtered = _bandpass(heights, region, PreprocessParams(), 3.125e-6)
    assert np.isnan(filtered[~region]).all() and np.isfinite(filtered[region]).all()
    # A flat surface stays flat next to the hole; zero-filling would dig a 5 um trench there.
    assert np.abs(filtered[region]).max() < 0.01


def test_robust_trend_ignores_a_crater() -> None:
    yy, xx = np.mgrid[:300, :300]
    heights = 0.02 * xx - 0.01 * yy + 3.0
    heights[100:200, 100:200] -= 80.0  # a third of the points far below the plane
    region = np.ones_like(heights, bool)
    trend = _robust_trend(heights, region, "plane", PreprocessParams())
    outside = np.ones_like(region)
    outside[100:200, 100:200] = False
    assert np.abs((heights - trend)[outside]).max() < 1e-3


def test_quadratic_trend_removes_a_dome() -> None:
    yy, xx = np.mgrid[:200, :200]
    heights = 1e-3 * ((xx - 90.0) ** 2 + (yy - 110.0) ** 2)
    trend = _robust_trend(heights, np.ones_like(heights, bool), "quadratic", PreprocessParams())
    assert np.abs(heights - trend).max() < 1e-6


def test_no_primer_is_an_invalid_input_naming_the_scan(tmp_path: Path) -> None:
    scan = Scan(np.random.default_rng(0).normal(0, 1e-6, (300, 300)), 3.125e-6, 3.125e-6, source=tmp_path / "noise.x3p")
    with pytest.raises(PrimerNotFoundError, match=r"noise\.x3p"):
        prepare(scan, mode="raw")


def test_too_small_a_surface_is_refused(tmp_path: Path) -> None:
    heights = np.full((100, 100), np.nan)
    yy, xx = np.mgrid[:100, :100]
    heights[np.hypot(xx - 50, yy - 50) < 20] = 0.0  # ~1,250 points, fewer than 2,000
    scan = Scan(heights + 1e-9 * xx, 6.25e-6, 6.25e-6, source=tmp_path / "tiny.x3p")
    with pytest.raises(SurfaceTooSmallError, match=r"tiny\.x3p"):
        prepare(scan, mode="preprocessed")


def test_parameters_are_checked_and_echoed() -> None:
    params = PreprocessParams(trend="quadratic")
    doc = params.to_dict()
    assert doc["trend"] == "quadratic" and doc["bandpass_um"] == [16.0, 500.0] and doc["working_spacing_um"] == 6.25
    with pytest.raises(PreprocessError):
        PreprocessParams(bandpass_um=(500.0, 16.0))


@pytest.mark.parametrize("angle", [0.0, 64.4, 133.3801897588973, 230.37])
def test_primer_circle_of_a_processed_scan_follows_a_rotation(real_scans: Path, angle: float) -> None:
    """The fit is the edge around the breech face, not the firing-pin hole opening through a gap.

    Weller TW04-04 turned by 133.38 degrees once fitted the inner edge (radius 200 px instead of
    286), which moved the search signature's centre and lost the case's mates from the shortlist.
    """
    from ballistics.registration import transform

    heights = load_scan(real_scans / "cartridgeCaseScans" / "wellerProcessed" / "TW04-04.x3p").heights
    side = int(np.ceil(np.hypot(*heights.shape))) + 2
    turned = transform(heights.astype(np.float32), angle, (0.0, 0.0), (side, side)).astype(np.float64)
    face = prepare(Scan(turned, 6.25e-6, 6.25e-6), mode="preprocessed")
    assert face.primer_radius_px is not None and abs(face.primer_radius_px - 286.5) < 3.0
