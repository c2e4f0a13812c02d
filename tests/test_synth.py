"""The simulator: reproducible files, and a model whose known truth behaves as declared."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SAMPLE_DATA

import cli
from ballistics import synth
from ballistics.characteristics import MEASURED_SHAPES
from ballistics.scan import Scan, load_scan

SAMPLE_ARGS = ["--firearms", "3", "--shots", "3", "--seed", "2026"]


def truth_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "truth.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def band_pass(heights: np.ndarray) -> np.ndarray:
    """NaN-aware Gaussian band-pass 16-500 um, the band the comparison works in."""
    valid = np.isfinite(heights)
    values = np.where(valid, heights, 0).astype(np.float32)
    weights = valid.astype(np.float32)

    def smooth(wavelength_um: float) -> np.ndarray:
        sigma = wavelength_um / (2 * math.pi) / 6.25
        return cv2.GaussianBlur(values, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(weights, (0, 0), sigma), 1e-3)

    band = smooth(16) - smooth(500)
    band[~valid] = np.nan
    return band


def breech_face_roi(size: int) -> np.ndarray:
    """The breech-face annulus in the firearm frame: outside the firing pin, inside the primer edge."""
    axis = np.arange(size) - (size - 1) / 2
    r = np.hypot(axis[None, :], axis[:, None]) * 6.25
    return (r > 700) & (r < 2050)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    both = breech_face_roi(a.shape[0]) & np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[both], b[both])[0, 1])


def aligned(path: Path, row: dict[str, str], sign: float = 1.0) -> np.ndarray:
    scan = load_scan(path)
    shift = (float(row["shift_x_um"]), float(row["shift_y_um"]))
    return band_pass(synth.to_firearm_frame(scan.heights, sign * float(row["rotation_deg"]), shift))


@pytest.fixture(scope="module")
def sample_aligned() -> dict[str, tuple[dict[str, str], np.ndarray]]:
    """Every committed case, turned back into its firearm's frame by its truth, band-passed."""
    return {row["file"]: (row, aligned(SAMPLE_DATA / row["file"], row)) for row in truth_rows(SAMPLE_DATA)}


def test_regenerating_the_sample_set_gives_byte_identical_files(tmp_path: Path) -> None:
    assert cli.main(["sample", "generate", str(tmp_path), *SAMPLE_ARGS]) == 0
    committed = sorted(p.name for p in SAMPLE_DATA.iterdir() if p.name != "README.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DATA / name).read_bytes(), name


def test_sample_readme_gives_the_command_the_test_runs() -> None:
    readme = (SAMPLE_DATA / "README.md").read_text()
    assert "ballistics sample generate sample_data " + " ".join(SAMPLE_ARGS) in readme


def test_sample_set_is_small_and_covers_families_and_shapes() -> None:
    rows = truth_rows(SAMPLE_DATA)
    assert sum(p.stat().st_size for p in SAMPLE_DATA.iterdir()) <= 8_000_000
    assert list(rows[0]) == list(synth.TRUTH_COLUMNS)
    families = {}
    for row in rows:
        families.setdefault(row["family"], set()).add(row["firearm"])
        assert (SAMPLE_DATA / row["file"]).is_file()
        assert (SAMPLE_DATA / row["file"]).with_suffix(".png").is_file()
    assert max(len(members) for members in families.values()) >= 2
    assert len({row["firing_pin_shape"] for row in rows}) >= 2


def test_same_seed_same_case_and_other_seed_other_case() -> None:
    firearm = synth.generate_firearms(1, 5)[0]
    first, again = synth.fire(firearm, 1, 5), synth.fire(firearm, 1, 5)
    np.testing.assert_array_equal(first.scan.heights, again.scan.heights)
    assert (first.rotation_deg, first.shift_um) == (again.rotation_deg, again.shift_um)
    other = synth.fire(synth.generate_firearms(1, 6)[0], 1, 6)
    assert not np.array_equal(np.isnan(first.scan.heights), np.isnan(other.scan.heights))


def test_generate_firearms_groups_families_sharing_class_characteristics() -> None:
    firearms = synth.generate_firearms(12, 11)
    assert [f.id for f in firearms] == [f"F{i:02d}" for i in range(1, 13)]
    assert firearms[0].family == firearms[1].family
    by_family: dict[str, list[synth.Firearm]] = {}
    for firearm in firearms:
        by_family.setdefault(firearm.family, []).append(firearm)
    assert len(by_family) >= 4
    for members in by_family.values():
        assert len({(f.firing_pin_shape, f.lay, f.family_seed) for f in members}) == 1
        assert len({f.seed for f in members}) == len(members)
    assert {f.firing_pin_shape for f in firearms} == set(MEASURED_SHAPES)
    three = synth.generate_firearms(3, 2026)
    assert len({f.family for f in three}) == 2


def test_loaded_sample_scan_equals_the_simulated_one() -> None:
    firearm = synth.generate_firearms(3, 2026)[1]
    case = synth.fire(firearm, 2, 2026)
    loaded = load_scan(SAMPLE_DATA / f"{case.stem}.x3p")
    np.testing.assert_array_equal(loaded.heights, case.scan.heights)
    assert loaded.spacing_x == loaded.spacing_y == pytest.approx(6.25e-6, rel=1e-12)
    assert dict(loaded.metadata) == dict(case.scan.metadata)


def test_nan_outside_the_measured_disc_and_in_the_primer_gap() -> None:
    case = synth.fire(synth.generate_firearms(1, 3)[0], 1, 3)
    heights = case.scan.heights
    size = heights.shape[0]
    assert heights.shape == (size, size)
    primer, inner, outer = synth.GEOMETRY.radii_px()
    axis = np.arange(size) - (size - 1) / 2
    dx, dy = np.asarray(case.shift_um) / 6.25
    r = np.hypot(axis[None, :] - dx, axis[:, None] - dy)
    assert np.isnan(heights[r > outer + 1.5]).all()
    assert np.isnan(heights[(r > primer + 1.5) & (r < inner - 1.5)]).all()
    assert np.isfinite(heights[r < primer - 2]).mean() > 0.9
    assert np.isfinite(heights[(r > inner + 2) & (r < outer - 2)]).mean() > 0.9
    assert 0.55 < case.scan.valid_fraction < 0.8


def test_breech_face_marks_have_micrometre_amplitude() -> None:
    case = synth.fire(synth.generate_firearms(1, 8)[0], 1, 8)
    band = band_pass(synth.to_firearm_frame(case.scan.heights, case.rotation_deg, case.shift_um))
    rms_um = float(np.nanstd(band[breech_face_roi(band.shape[0])])) * 1e6
    assert 0.3 < rms_um < 3.0


def test_truth_rotation_is_the_one_applied(sample_aligned: dict) -> None:
    """Undoing the truth pose aligns two shots of a firearm; the opposite turn does not."""
    rows = {row["file"]: row for row in truth_rows(SAMPLE_DATA)}
    first, second = sample_aligned["F01-01.x3p"][1], sample_aligned["F01-02.x3p"][1]
    assert correlation(first, second) > 0.5
    wrong = aligned(SAMPLE_DATA / "F01-02.x3p", rows["F01-02.x3p"], sign=-1.0)
    assert correlation(first, wrong) < 0.1


def test_same_firearm_beats_family_beats_other_families(sample_aligned: dict) -> None:
    same, family, other = [], [], []
    for (row_a, a), (row_b, b) in itertools.combinations(sample_aligned.values(), 2):
        value = correlation(a, b)
        if row_a["firearm"] == row_b["firearm"]:
            same.append(value)
        elif row_a["family"] == row_b["family"]:
            family.append(value)
        else:
            other.append(value)
    assert same and family and other
    assert min(same) > max(family) > max(other)
    assert min(family) > 0.1 and max(other) < 0.1


def crater_outline(scan: Scan) -> tuple[float, float]:
    """Aspect ratio and fill of the rotated bounding box of the firing-pin crater (pose-free)."""
    heights = scan.heights
    size = heights.shape[0]
    axis = (np.arange(size) - (size - 1) / 2) * 6.25
    central = np.hypot(axis[None, :], axis[:, None]) < 1500
    level = np.nanmedian(heights[central])
    crater = (central & (np.nan_to_num(heights, nan=level) < level - 20e-6)).astype(np.uint8)
    crater = cv2.morphologyEx(crater, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(crater)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    points = np.column_stack(np.nonzero(labels == biggest)[::-1]).astype(np.float32)
    (_, _), (w, h), _ = cv2.minAreaRect(points)
    return max(w, h) / min(w, h), len(points) / (w * h)


@pytest.mark.parametrize("shape", MEASURED_SHAPES)
def test_firing_pin_outline_follows_the_declared_class(shape: str) -> None:
    firearm = dataclasses.replace(synth.generate_firearms(1, 21)[0], firing_pin_shape=shape)
    aspect, fill = crater_outline(synth.fire(firearm, 1, 21).scan)
    if shape == "hemispherical":
        assert aspect < 1.15 and fill < 0.85
    elif shape == "elliptical":
        assert aspect > 1.3 and fill < 0.85
    else:
        assert aspect > 1.3 and fill > 0.88


def test_sample_images_are_oblique_light_renderings_at_half_resolution() -> None:
    image = load_scan(SAMPLE_DATA / "F03-01.png", pixel_um=synth.IMAGE_PIXEL_M * 1e6)
    scan = load_scan(SAMPLE_DATA / "F03-01.x3p")
    assert image.kind == "image" and image.metadata["bit_depth"] == "8"
    assert image.shape == (scan.shape[0] // 2, scan.shape[1] // 2)
    grey = image.heights / image.spacing_x * 255
    assert grey[0, 0] == 0 and grey[:2, :].max() == 0  # unmeasured corner is black
    centre = grey[image.shape[0] // 2 - 100 : image.shape[0] // 2 + 100, 20:60]
    assert centre.std() > 10  # lit texture, not a flat fill


def test_progress_is_reported_per_case(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    paths = synth.write_sample_set(tmp_path, synth.generate_firearms(1, 4), 2, 4, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert [p.name for p in paths] == ["F01-01.x3p", "F01-02.x3p"]
    assert [row["file"] for row in truth_rows(tmp_path)] == ["F01-01.x3p", "F01-02.x3p"]
