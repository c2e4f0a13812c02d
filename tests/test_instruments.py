"""Scans from other instruments: whole-head scans at 9.5 um with known truth, and the TopMatch pair.

A whole-head scan shows the case head around the primer (a measured seam groove between the two,
a headstamp, the rim) and a firing-pin crater measured down to its bottom. The primer must be
found by its own edge, and comparisons must still tell one firearm from another, within the
instrument and across instruments.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REAL_SCANS, require_real_scans

import cli
from ballistics import synth
from ballistics.compare import compare
from ballistics.errors import PrimerNotFoundError
from ballistics.method import PreprocessParams
from ballistics.preprocess import BreechFace, prepare
from ballistics.scan import Scan, load_scan, save_x3p

SEED = 7
#: Tolerances of the primer found on a whole-head scan against the simulated truth, micrometres.
CENTRE_TOLERANCE_UM = 15.0
RADIUS_TOLERANCE_UM = 40.0
TOPMATCH = REAL_SCANS / "scored" / "converted_x3p"


@cache
def firearms() -> list[synth.Firearm]:
    return synth.generate_firearms(6, SEED)  # F01, F02: elliptical (family A); F03 hemispherical; F04 rectangular


@cache
def whole_head(index: int, shot: int) -> synth.SimulatedCase:
    return synth.fire_whole_head(firearms()[index], shot, SEED)


@cache
def prepared(index: int, shot: int) -> BreechFace:
    return prepare(whole_head(index, shot).scan)


def true_primer_px(case: synth.SimulatedCase) -> tuple[float, float]:
    """Where the simulated primer's centre lies on the scan (x, y pixels): grid centre plus the shift."""
    spacing_um = case.scan.spacing_x * 1e6
    centre = (case.scan.shape[1] - 1) / 2, (case.scan.shape[0] - 1) / 2
    return centre[0] + case.shift_um[0] / spacing_um, centre[1] + case.shift_um[1] / spacing_um


@pytest.mark.parametrize(("index", "shot"), [(0, 1), (2, 1), (3, 2)])
def test_primer_of_a_whole_head_scan_is_found_by_its_seam(index: int, shot: int) -> None:
    """Centre within 15 um and radius within 40 um of the truth; the firing pin is the crater, not the primer."""
    case, face = whole_head(index, shot), prepared(index, shot)
    assert face.mode == "raw" and face.crop is not None and face.crop.primer is not None
    spacing_um = case.scan.spacing_x * 1e6
    x, y, r = face.crop.primer
    tx, ty = true_primer_px(case)
    assert np.hypot(x - tx, y - ty) * spacing_um < CENTRE_TOLERANCE_UM, (x, y, tx, ty)
    assert abs(r * spacing_um - synth.GEOMETRY.primer_radius_um) < RADIUS_TOLERANCE_UM, r * spacing_um
    pin = face.firing_pin
    assert pin is not None and pin.shape == case.firearm.firing_pin_shape
    assert pin.radius_um < 700.0  # a 9 mm crater, not the 2.2 mm primer
    # the breech face kept lies inside the primer: the head ring and the headstamp are left out
    valid_radius_um = np.sqrt(np.isfinite(face.surface).sum() / np.pi) * face.spacing_m * 1e6
    assert valid_radius_um < synth.GEOMETRY.primer_radius_um


def test_whole_head_scan_is_refused_when_no_seam_qualifies(tmp_path: Path) -> None:
    """Without its seam the outline is the rim, 4.95 mm out, wider than any primer: refused, naming the file."""
    case = whole_head(2, 1)
    path = tmp_path / "head.x3p"
    save_x3p(case.scan, path)
    with pytest.raises(PrimerNotFoundError, match=r"head\.x3p: no primer edge found") as caught:
        prepare(load_scan(path), PreprocessParams(seam_depth_um=500.0))
    assert "\n" not in str(caught.value)


def test_a_scan_without_any_primer_exits_3_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plate.x3p"
    x = np.arange(300) * 9.5e-6
    tilted = 0.05 * (x[None, :] + x[:, None]) + np.random.default_rng(1).normal(0, 1e-7, (300, 300))  # raw: its form dominates
    save_x3p(Scan(tilted, 9.5e-6, 9.5e-6), path)
    assert cli.main(["info", str(path), "--plot", str(tmp_path / "plate.png")]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: no primer boundary found") and err.count("\n") == 1
    assert not (tmp_path / "plate.png").exists()


def test_same_firearm_whole_head_pair_is_an_identification() -> None:
    first, second = whole_head(2, 1).scan, whole_head(2, 2).scan
    result = compare(first, second)
    assert result.decision == "identification", (result.cmc, result.ccf)


def test_different_firearm_whole_head_pair_is_not_an_identification() -> None:
    result = compare(whole_head(0, 1).scan, whole_head(2, 2).scan)
    assert result.decision != "identification" and result.cmc <= 2, result.cmc


def test_consecutively_made_slides_are_told_apart_on_whole_head_scans() -> None:
    """F04, F05 (family C) share their subclass marks; at 9.5 um the firearm's own marks still decide.

    With the marks of the committed confocal set (generation 1: individual marks mostly below 40 um,
    half of whose variance a 9.5 um scan loses) F04-01 against F05-02 reached CMC 7, an identification.
    """
    same = compare(whole_head(3, 1).scan, whole_head(3, 2).scan)
    family = compare(whole_head(3, 1).scan, whole_head(4, 2).scan)
    assert same.decision == "identification", same.cmc
    assert family.decision == "elimination", family.cmc


def test_whole_head_scan_matches_a_confocal_scan_of_the_same_firearm() -> None:
    """Across instruments (9.5 um whole head against 6.25 um confocal primer, same marks) the firearm is still found."""
    confocal = synth.fire(firearms()[2], 1, SEED, marks=2).scan
    same = compare(confocal, whole_head(2, 2).scan)
    other = compare(confocal, whole_head(3, 2).scan)
    assert same.decision == "identification", same.cmc
    assert other.decision != "identification" and other.cmc <= 2, other.cmc


def test_info_plot_draws_the_crop_over_the_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = whole_head(3, 2)
    path = tmp_path / "F04-02.x3p"
    save_x3p(case.scan, path)
    figure = tmp_path / "crop.png"
    assert cli.main(["info", str(path), "--plot", str(figure), "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)["scans"][0]["prepared"]
    assert doc["mode"] == "raw" and abs(doc["primer"]["radius_mm"] * 1000 - synth.GEOMETRY.primer_radius_um) < RADIUS_TOLERANCE_UM
    assert doc["firing_pin"]["shape"] == "rectangular"
    image = cv2.imread(str(figure))
    assert image is not None and min(image.shape[:2]) > 1000  # 200 dpi


def test_topmatch_pair_is_an_identification() -> None:
    """Two cases fired by one Ruger SR9 (K013), Cadre TopMatch, 7.37 um, already processed: resampled and identified."""
    require_real_scans()
    first, second = (load_scan(TOPMATCH / f"K013sA{k}.x3p") for k in (1, 2))
    result = compare(first, second)
    assert result.decision == "identification", result.cmc
    assert result.reference["spacing_um"][0] == pytest.approx(7.37364, abs=1e-3)
    assert result.surfaces is not None and all(face.mode == "preprocessed" for face in result.surfaces)
