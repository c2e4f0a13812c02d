"""Where the breech face is: primer circles, masks and the firing-pin zone, against known geometry."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import FADUL, RAW_FADUL, SAMPLE_DATA, require_real_scans
from scipy import ndimage as ndi

from ballistics.errors import PrimerNotFoundError
from ballistics.method import PreprocessParams
from ballistics.preprocess import prepare
from ballistics.primer import (
    Circle,
    disc,
    fill_holes,
    find_seam,
    fit_circle,
    largest_component,
    locate_firing_pin,
    opening,
    star_mask,
)
from ballistics.scan import load_scan
from ballistics.synth import GEOMETRY, PIXEL_M

TRUTH = {row["file"]: row for row in csv.DictReader((SAMPLE_DATA / "truth.csv").open())}


@pytest.mark.parametrize(("cx", "cy", "r"), [(97.3, 104.6, 61.2), (150.0, 120.5, 95.0), (60.2, 140.7, 40.4)])
def test_circle_fit_recovers_a_generated_disc(cx: float, cy: float, r: float) -> None:
    mask = disc((260, 240), Circle(cx, cy, 0.0), r)
    found = fit_circle(mask, 1.5, enclosing=True)
    assert found is not None
    assert abs(found.x - cx) < 0.5 and abs(found.y - cy) < 0.5 and abs(found.r - r) < 1.0, found


def test_circle_fit_ignores_specks_and_an_inner_hole_opening_through_a_gap() -> None:
    """The enclosing fit is the outer edge, although a ragged inner edge and specks add outline points."""
    rng = np.random.default_rng(7)
    mask = disc((300, 300), Circle(150.0, 148.0, 0.0), 120.0)
    mask &= ~disc((300, 300), Circle(150.0, 148.0, 0.0), 45.0)
    mask[148 - 10 : 148 + 10, 150:] = False  # a sector missing: the firing-pin hole opens to the outside
    mask[rng.integers(0, 300, 400), rng.integers(0, 300, 400)] ^= True
    found = fit_circle(mask, 2.0, enclosing=True)
    assert found is not None and abs(found.r - 120.0) < 1.5 and np.hypot(found.x - 150.0, found.y - 148.0) < 1.0


def test_circle_fit_needs_an_outline() -> None:
    assert fit_circle(np.zeros((50, 50), bool), 2.0) is None
    assert fit_circle(np.ones((50, 50), bool), 2.0) is None  # only the array border: left out


def test_primer_circle_of_a_generated_case_is_where_the_truth_puts_it() -> None:
    """Simulated scans: the primer is centred on the firearm frame's centre plus the case's shift."""
    spacing_um = PIXEL_M * 1e6
    primer_px = GEOMETRY.primer_radius_um / spacing_um
    for name in ("F01-01.x3p", "F02-03.x3p", "F03-02.x3p"):
        heights = load_scan(SAMPLE_DATA / name).heights
        face = largest_component(np.isfinite(heights))
        found = fit_circle(opening(fill_holes(face), 3), 2.0, enclosing=True)
        centre = (heights.shape[1] - 1) / 2, (heights.shape[0] - 1) / 2
        x = centre[0] + float(TRUTH[name]["shift_x_um"]) / spacing_um
        y = centre[1] + float(TRUTH[name]["shift_y_um"]) / spacing_um
        assert found is not None
        assert np.hypot(found.x - x, found.y - y) < 1.0, (name, found, x, y)
        assert abs(found.r - primer_px) < 3.0, (name, found.r, primer_px)


def test_primer_circle_of_a_real_processed_scan_encloses_its_breech_face() -> None:
    require_real_scans()
    heights = load_scan(FADUL / "Fadul 1-1.x3p").heights
    valid = np.isfinite(heights)
    found = fit_circle(fill_holes(valid), 2.7, enclosing=True)
    assert found is not None
    # cmcR cropped this scan to its primer circle: the circle fills the 545 x 545 array
    assert abs(found.r - 272.0) < 3.0 and np.hypot(found.x - 272.0, found.y - 272.0) < 3.0
    ys, xs = np.nonzero(valid)
    assert (np.hypot(xs - found.x, ys - found.y) <= found.r + 2.7).mean() > 0.99


def test_fill_holes_is_scipys_fill_on_random_masks() -> None:
    rng = np.random.default_rng(3)
    for density in (0.3, 0.5, 0.7):
        mask = ndi.binary_opening(rng.random((120, 90)) < density)
        np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))


def test_fill_holes_leaves_gaps_that_reach_the_border() -> None:
    ring = disc((60, 60), Circle(30.0, 30.0, 0.0), 20.0) & ~disc((60, 60), Circle(30.0, 30.0, 0.0), 8.0)
    assert fill_holes(ring)[30, 30]  # a closed hole is filled
    ring[28:33, 30:] = False  # a channel from the hole to the border
    assert not fill_holes(ring)[30, 30]


def test_largest_component_keeps_the_biggest_piece_only() -> None:
    mask = np.zeros((40, 40), bool)
    mask[2:6, 2:6] = True  # 16 points
    mask[10:30, 10:15] = True  # 100 points
    mask[35:38, 30:39] = True  # 27 points
    kept = largest_component(mask)
    assert kept.sum() == 100 and kept[20, 12] and not kept[3, 3]
    assert not largest_component(np.zeros((5, 5), bool)).any()


def test_firing_pin_zone_of_a_generated_crater_is_found_with_its_size() -> None:
    """A flat primer with one round crater of known centre and radius."""
    shape = (400, 400)
    primer = Circle(200.0, 200.0, 180.0)
    inside = disc(shape, primer, primer.r)
    crater = disc(shape, Circle(185.0, 214.0, 0.0), 48.0)
    levelled = np.where(crater, -40.0, 0.0)
    levelled[~inside] = np.nan
    zone = locate_firing_pin(levelled, inside, np.zeros(shape, bool), primer, 8.0, 16.0, max_offset=0.5, flowback_reach=1.6)
    assert zone is not None
    assert np.hypot(zone.centre.x - 185.0, zone.centre.y - 214.0) < 1.0 and abs(zone.centre.r - 48.0) < 1.5, zone.centre
    removed = star_mask(shape, zone, 10.0)
    assert removed[crater].all() and removed.sum() < np.pi * 60.0**2  # the crater plus the margin, not more


def test_no_firing_pin_zone_on_a_flat_primer_or_far_from_its_centre() -> None:
    shape = (400, 400)
    primer = Circle(200.0, 200.0, 180.0)
    inside = disc(shape, primer, primer.r)
    flat = np.where(inside, 0.0, np.nan)
    assert locate_firing_pin(flat, inside, np.zeros(shape, bool), primer, 8.0, 16.0, max_offset=0.5, flowback_reach=1.6) is None
    off_centre = flat.copy()
    off_centre[disc(shape, Circle(330.0, 200.0, 0.0), 30.0)] = -40.0  # 0.72 primer radii out
    assert locate_firing_pin(off_centre, inside, np.zeros(shape, bool), primer, 8.0, 16.0, max_offset=0.5, flowback_reach=1.6) is None


@pytest.mark.parametrize("name", ["F01-01.x3p", "F03-02.x3p"])
def test_firing_pin_zone_of_a_generated_case_has_the_true_class_and_is_removed(name: str) -> None:
    face = prepare(load_scan(SAMPLE_DATA / name), mode="raw")
    pin = face.firing_pin
    assert pin is not None and pin.shape == TRUTH[name]["firing_pin_shape"]
    assert face.primer_center_px is not None
    # the pin strikes within ~80 um (1 sd) of the primer's centre
    assert np.hypot(pin.center_px[0] - face.primer_center_px[0], pin.center_px[1] - face.primer_center_px[1]) * 6.25 < 300.0
    if pin.shape == "hemispherical":
        assert 480.0 <= pin.radius_um <= 560.0  # the simulated hemispherical pins' radius range
    x, y = (round(v) for v in pin.center_px)
    assert np.isnan(face.surface[y, x])  # the zone is not breech face
    assert np.isfinite(face.surface).mean() > 0.4


def test_primer_minimum_radius_is_a_parameter() -> None:
    """A 3 mm minimum refuses the simulated primer (2.2 mm), and the error says the limit."""
    with pytest.raises(PrimerNotFoundError, match="3 mm"):
        prepare(load_scan(SAMPLE_DATA / "F01-01.x3p"), PreprocessParams(primer_min_radius_um=3000.0), mode="raw")


@pytest.mark.parametrize("name", ["F01-01.x3p", "F03-02.x3p"])
def test_no_seam_inside_a_primer_scanned_alone(name: str) -> None:
    """The confocal cases show the primer alone: its crater's unmeasured wall is a ring, but too small to be a primer's seam."""
    heights = load_scan(SAMPLE_DATA / name).heights * 1e6
    outline = fit_circle(opening(fill_holes(largest_component(np.isfinite(heights))), 3), 2.0, enclosing=True)
    assert outline is not None
    params = PreprocessParams()
    px = 1 / 6.25
    seam = find_seam(
        heights, outline, params.seam_width_um * px, params.seam_depth_um, params.seam_coverage, params.seam_min_radius_um * px, 2.0
    )
    assert seam is None


@pytest.mark.parametrize("name", ["fadul1.1_raw", "fadul2.1_raw"])
def test_no_seam_inside_a_raw_fadul_primer(name: str) -> None:
    """The raw Fadul scans show the primer alone: no seam inside it (the firing-pin aperture's edge, a step
    1.06-1.19 mm out, lies within the seam's least radius)."""
    require_real_scans()
    scan = load_scan(RAW_FADUL / f"{name}.x3p")
    heights = scan.heights * 1e6
    outline = fit_circle(opening(fill_holes(largest_component(np.isfinite(heights))), 3), 2.0, enclosing=True)
    assert outline is not None
    px = 1e-6 / scan.spacing_x
    params = PreprocessParams()
    args = (params.seam_width_um * px, params.seam_depth_um, params.seam_coverage)
    assert find_seam(heights, outline, *args, params.seam_min_radius_um * px, 2.0) is None


def test_seam_of_a_generated_groove_and_of_a_generated_step() -> None:
    """A primer 2.2 mm in radius inside a head to 4.9 mm, parted by a groove or by a step alone."""
    spacing = 10.0
    size = 1000
    yy, xx = np.mgrid[:size, :size].astype(float)
    centre = Circle(503.0, 497.0, 0.0)
    r = np.hypot(xx - centre.x, yy - centre.y) * spacing
    rng = np.random.default_rng(5)
    base = rng.normal(0, 0.5, (size, size))
    groove = np.where(r < 2200, 0.0, np.where(r < 2340, -40.0 * np.sin(np.pi * (r - 2200) / 140), 15.0)) + base
    step = np.where(r < 2200, 0.0, -25.0) + base
    for heights in (groove, step):
        heights[r > 4900] = np.nan
        outline = fit_circle(np.isfinite(heights), 2.0, enclosing=True)
        assert outline is not None and abs(outline.r * spacing - 4900) < 20
        seam = find_seam(heights, outline, 10.0, 10.0, 0.75, 150.0, 2.0)
        assert seam is not None
        assert np.hypot(seam.x - centre.x, seam.y - centre.y) * spacing < 10 and abs(seam.r * spacing - 2200) < 30, seam
