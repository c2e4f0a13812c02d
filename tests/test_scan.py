"""Reading and writing scans: every failure class on a real broken file, images, x3p round trip,
the x3ptools mask, and the real scans against their provenance table."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import x3pio
from conftest import FADUL, RAW_FADUL, REAL_SCANS, SAMPLE_DATA, WELLER
from PIL import Image

import cli
from ballistics import scan as scan_module
from ballistics.errors import (
    BadSpacingError,
    ChecksumMismatchError,
    EmptySurfaceError,
    MalformedX3PError,
    NotAScanError,
    NotASurfaceError,
    ScanError,
    TooLargeError,
    UnreadableImageError,
)
from ballistics.scan import Scan, load_scan, save_x3p

SPACING = 6.25e-6


def surface(rows: int = 24, cols: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1e-6, (rows, cols))
    z[0, :3] = np.nan
    return z


def write_x3p(path: Path, z: np.ndarray | None = None) -> Path:
    x3pio.write(path, surface() if z is None else z, x_scale=SPACING, y_scale=SPACING)
    return path


def rezip(source: Path, target: Path, replace: dict[str, bytes] | None = None, drop: tuple[str, ...] = (), fix_md5: bool = True) -> Path:
    """Copy an x3p archive member by member, replacing or dropping members.

    With ``fix_md5`` the checksum file of main.xml is recomputed, as a careful forger would, so
    that what is tested is the damage itself and not a stale checksum.
    """
    replace = dict(replace or {})
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members.update(replace)
    for name in drop:
        members.pop(name, None)
    if fix_md5 and "main.xml" in members and "md5checksum.hex" in members:
        members["md5checksum.hex"] = f"{hashlib.md5(members['main.xml']).hexdigest()} *main.xml\n".encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


def assert_cli_error(path: Path, capfd: pytest.CaptureFixture[str], *args: str) -> str:
    """The CLI reports the failure as one line naming the file, exit code 3, no traceback.

    ``capfd`` rather than ``capsys``: native libraries (OpenCV) write to the stderr descriptor.
    """
    capfd.readouterr()
    code = cli.main(["info", *args, str(path)])
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert code == 3
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {path}: ")
    assert len(lines[0]) > len(f"error: {path}: ")
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


# --- each failure class, on a real file -------------------------------------------------------


def broken_garbage(tmp: Path) -> Path:
    path = tmp / "garbage.x3p"
    path.write_bytes(b"this is not a scan at all, just text\n" * 10)
    return path


def broken_empty(tmp: Path) -> Path:
    path = tmp / "empty.x3p"
    path.write_bytes(b"")
    return path


def broken_directory(tmp: Path) -> Path:
    path = tmp / "folder.x3p"
    path.mkdir()
    return path


def broken_missing(tmp: Path) -> Path:
    return tmp / "missing.x3p"


def broken_truncated_zip(tmp: Path) -> Path:
    whole = write_x3p(tmp / "whole.x3p").read_bytes()
    path = tmp / "truncated.x3p"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def broken_no_main_xml(tmp: Path) -> Path:
    return rezip(write_x3p(tmp / "whole.x3p"), tmp / "no-main.x3p", drop=("main.xml",))


def broken_malformed_main_xml(tmp: Path) -> Path:
    return rezip(
        write_x3p(tmp / "whole.x3p"), tmp / "bad-xml.x3p", replace={"main.xml": b"<?xml version='1.0'?><p:ISO5436_2 xmlns:p='x'><Record1>"}
    )


def broken_main_xml_without_record3(tmp: Path) -> Path:
    whole = write_x3p(tmp / "whole.x3p")
    xml = re.sub(rb"<Record3>.*</Record3>", b"", member(whole, "main.xml"), flags=re.S)
    return rezip(whole, tmp / "no-record3.x3p", replace={"main.xml": xml})


def broken_data_checksum(tmp: Path) -> Path:
    whole = write_x3p(tmp / "whole.x3p")
    return rezip(whole, tmp / "data-flipped.x3p", replace={"bindata/data.bin": flip_byte(member(whole, "bindata/data.bin"), 40)})


def broken_main_xml_checksum(tmp: Path) -> Path:
    whole = write_x3p(tmp / "whole.x3p")
    xml = member(whole, "main.xml").replace(b"<Model>x3pio</Model>", b"<Model>x3pjo</Model>")
    return rezip(whole, tmp / "xml-edited.x3p", replace={"main.xml": xml}, fix_md5=False)


def broken_profile(tmp: Path) -> Path:
    path = tmp / "profile.x3p"
    x3pio.write(path, np.linspace(0, 1e-6, 50), x_scale=SPACING)
    return path


def broken_point_cloud(tmp: Path) -> Path:
    path = tmp / "points.x3p"
    x3pio.write_points(path, np.random.default_rng(1).normal(0, 1e-3, (40, 3)))
    return path


def broken_all_nan(tmp: Path) -> Path:
    return write_x3p(tmp / "all-nan.x3p", np.full((10, 12), np.nan))


def broken_png(tmp: Path) -> Path:
    path = tmp / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return path


def broken_jpeg(tmp: Path) -> Path:
    path = tmp / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50)
    return path


FAILURES = {
    "garbage bytes": (broken_garbage, NotAScanError, "not an x3p"),
    "empty file": (broken_empty, NotAScanError, "empty"),
    "directory": (broken_directory, NotAScanError, "directory"),
    "missing file": (broken_missing, NotAScanError, "no such file"),
    "truncated zip": (broken_truncated_zip, MalformedX3PError, "zip"),
    "zip without main.xml": (broken_no_main_xml, MalformedX3PError, "main.xml"),
    "malformed main.xml": (broken_malformed_main_xml, MalformedX3PError, "main.xml"),
    "main.xml without Record3": (broken_main_xml_without_record3, MalformedX3PError, ""),
    "data.bin byte flipped": (broken_data_checksum, ChecksumMismatchError, "checksum"),
    "main.xml edited": (broken_main_xml_checksum, ChecksumMismatchError, "checksum"),
    "profile": (broken_profile, NotASurfaceError, "profile"),
    "point cloud": (broken_point_cloud, NotASurfaceError, "point cloud"),
    "no valid point": (broken_all_nan, EmptySurfaceError, "no measured point"),
    "PNG header then garbage": (broken_png, UnreadableImageError, "PNG"),
    "JPEG header then garbage": (broken_jpeg, UnreadableImageError, "JPEG"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_broken_file_raises_its_class_naming_the_file(case: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    make, error_class, words = FAILURES[case]
    path = make(tmp_path)
    pixel = ("--pixel-um", "5") if path.suffix in (".png", ".jpg") else ()
    with pytest.raises(error_class) as caught:
        load_scan(path, pixel_um=5.0 if pixel else None)
    assert isinstance(caught.value, ScanError) and caught.value.exit_code == 3
    assert str(path) in str(caught.value)
    assert words.lower() in caught.value.reason.lower()
    assert "\n" not in caught.value.reason
    assert_cli_error(path, capfd, *pixel)


@pytest.mark.parametrize("spacing", [0.0, -1e-6, float("nan"), float("inf")])
def test_scan_refuses_non_positive_or_non_finite_spacing(spacing: float) -> None:
    with pytest.raises(BadSpacingError, match="spacing"):
        Scan(heights=surface(), spacing_x=spacing, spacing_y=SPACING)
    with pytest.raises(BadSpacingError, match="spacing"):
        Scan(heights=surface(), spacing_x=SPACING, spacing_y=spacing)


@pytest.mark.parametrize("pixel_um", ["0", "-1", "nan"])
def test_image_with_bad_pixel_size_is_refused(pixel_um: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((8, 9), 100, np.uint8))
    with pytest.raises(BadSpacingError) as caught:
        load_scan(path, pixel_um=float(pixel_um))
    assert str(path) in str(caught.value)
    assert_cli_error(path, capfd, "--pixel-um", pixel_um)


def test_image_without_pixel_size_is_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((8, 9), 100, np.uint8))
    with pytest.raises(BadSpacingError, match="pixel size unknown"):
        load_scan(path)
    assert_cli_error(path, capfd)


def test_x3p_refuses_pixel_size_option(tmp_path: Path) -> None:
    with pytest.raises(BadSpacingError, match="own spacing"):
        load_scan(write_x3p(tmp_path / "s.x3p"), pixel_um=5.0)


def test_scan_refuses_arrays_that_are_not_surfaces() -> None:
    with pytest.raises(NotASurfaceError):
        Scan(heights=np.zeros(5), spacing_x=SPACING, spacing_y=SPACING)
    with pytest.raises(EmptySurfaceError):
        Scan(heights=np.full((3, 3), np.nan), spacing_x=SPACING, spacing_y=SPACING)


def test_dimensions_beyond_the_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    x3p = write_x3p(tmp_path / "wide.x3p", surface(20, 64))
    png = tmp_path / "wide.png"
    cv2.imwrite(str(png), np.zeros((20, 64), np.uint8))
    assert load_scan(x3p).shape == (20, 64)
    monkeypatch.setattr(scan_module, "MAX_SIDE_PX", 50)
    for path, extra in ((x3p, ()), (png, ("--pixel-um", "2"))):
        with pytest.raises(TooLargeError, match="exceeds the limit") as caught:
            load_scan(path, pixel_um=2.0 if extra else None)
        assert str(path) in str(caught.value)
        assert_cli_error(path, capfd, *extra)


# --- the x3ptools / FiX3P mask ----------------------------------------------------------------


def test_x3ptools_mask_turns_painted_points_into_nan(tmp_path: Path) -> None:
    z = surface(20, 30)
    plain = write_x3p(tmp_path / "plain.x3p", z)
    mask = np.empty((20, 30, 3), np.uint8)
    mask[:] = (0x32, 0x7F, 0xCD)  # #cd7f32 in OpenCV's BGR order: the un-annotated background
    mask[5:9, 10:20] = (0, 0, 255)  # a region an examiner painted red for removal
    ok, png = cv2.imencode(".png", mask)
    assert ok
    xml = member(plain, "main.xml").replace(
        b"</DataLink>",
        b"</DataLink>\n    <Mask>\n      <Size>3</Size>\n      <Background>#cd7f32</Background>\n"
        b'      <Annotations>\n        <Annotation color="#ff0000">firing pin drag</Annotation>\n      </Annotations>\n    </Mask>',
    )
    masked = rezip(plain, tmp_path / "masked.x3p", replace={"main.xml": xml, "bindata/mask.png": png.tobytes()})
    loaded = load_scan(masked).heights
    painted = np.zeros(z.shape, bool)
    painted[5:9, 10:20] = True
    assert np.isnan(loaded[painted]).all()
    np.testing.assert_array_equal(loaded[~painted], load_scan(plain).heights[~painted])


def test_unreadable_mask_image_is_a_malformed_x3p(tmp_path: Path) -> None:
    plain = write_x3p(tmp_path / "plain.x3p")
    damaged = rezip(plain, tmp_path / "bad-mask.x3p", replace={"bindata/mask.png": b"not a png"})
    with pytest.raises(MalformedX3PError, match=r"mask\.png"):
        load_scan(damaged)


# --- images -----------------------------------------------------------------------------------


def test_8_and_16_bit_png_scale_grey_level_by_pixel_size(tmp_path: Path) -> None:
    grey8 = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    grey16 = (grey8.astype(np.uint16) * 300).astype(np.uint16)
    for name, image, full, depth in (("g8.png", grey8, 255, "8"), ("g16.png", grey16, 65535, "16")):
        path = tmp_path / name
        cv2.imwrite(str(path), image)
        loaded = load_scan(path, pixel_um=4.0)
        assert loaded.kind == "image" and loaded.format == "png" and loaded.metadata["bit_depth"] == depth
        assert loaded.spacing_x == loaded.spacing_y == pytest.approx(4e-6)
        np.testing.assert_allclose(loaded.heights, image / full * 4e-6)


def test_colour_jpeg_becomes_grey(tmp_path: Path) -> None:
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 1] = 200  # green
    path = tmp_path / "colour.jpg"
    cv2.imwrite(str(path), colour)
    loaded = load_scan(path, pixel_um=2.0)
    assert loaded.format == "jpeg" and loaded.shape == (16, 16)
    expected = 0.587 * 200 / 255 * 2e-6  # the luma weight of green
    np.testing.assert_allclose(loaded.heights, expected, rtol=0.03)


def test_bmp_loads(tmp_path: Path) -> None:
    path = tmp_path / "grey.bmp"
    cv2.imwrite(str(path), np.full((7, 9), 51, np.uint8))
    loaded = load_scan(path, pixel_um=1.0)
    assert loaded.format == "bmp" and loaded.shape == (7, 9)
    np.testing.assert_allclose(loaded.heights, 0.2e-6)


@pytest.mark.parametrize(("resolution", "unit", "pixel_um"), [(4000.0, "cm", 2.5), (5080.0, "inch", 5.0)])
def test_tiff_resolution_tags_give_pixel_size(resolution: float, unit: str, pixel_um: float, tmp_path: Path) -> None:
    path = tmp_path / "tagged.tif"
    unit_code = {"inch": 2, "cm": 3}[unit]
    Image.fromarray(np.full((10, 11), 128, np.uint8)).save(path, tiffinfo={282: resolution, 283: resolution, 296: unit_code})
    loaded = load_scan(path)
    assert loaded.format == "tiff" and loaded.spacing_x == pytest.approx(pixel_um * 1e-6)
    assert load_scan(path, pixel_um=1.5).spacing_x == pytest.approx(1.5e-6)  # the option wins


def test_tiff_without_resolution_needs_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "untagged.tif"
    cv2.imwrite(str(path), np.full((10, 11), 128, np.uint8))
    with pytest.raises(BadSpacingError):
        load_scan(path)


# --- writing ----------------------------------------------------------------------------------


def test_save_x3p_round_trip_keeps_heights_spacing_and_metadata(tmp_path: Path) -> None:
    heights = surface(17, 23)
    metadata = {"creator": "lab examiner", "comment": "exhibit 7, breech face", "date": "2024-03-05T10:20:30+00:00"}
    original = Scan(heights=heights, spacing_x=SPACING, spacing_y=3.125e-6, metadata=metadata)
    path = save_x3p(original, tmp_path / "out" / "round.x3p")
    loaded = load_scan(path)
    np.testing.assert_array_equal(loaded.heights, heights)
    assert (loaded.spacing_x, loaded.spacing_y) == (SPACING, 3.125e-6)
    for key, value in metadata.items():
        assert loaded.metadata[key] == value
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["round.x3p"]  # no temporary file left


def test_failed_save_leaves_target_unchanged_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_x3p(tmp_path / "existing.x3p")
    before = target.read_bytes()

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scan_module.os, "replace", refuse)
    with pytest.raises(OSError):
        save_x3p(Scan(heights=surface(5, 5), spacing_x=SPACING, spacing_y=SPACING), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["existing.x3p"]


# --- the CLI ----------------------------------------------------------------------------------


def test_info_json_is_one_document_with_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    files = [SAMPLE_DATA / "F01-01.x3p", SAMPLE_DATA / "F01-01.png"]
    assert cli.main(["info", "--json", "--pixel-um", "12.5", *map(str, files)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["scans"] and len(document["scans"]) == 2
    x3p, png = document["scans"]
    assert set(x3p) == {"path", "format", "kind", "shape", "spacing_um", "valid_fraction", "height_range_um", "metadata", "sha256"}
    assert (x3p["format"], x3p["kind"], x3p["shape"]) == ("x3p", "topography", [840, 840])
    assert x3p["spacing_um"] == pytest.approx([6.25, 6.25])
    assert x3p["sha256"] == hashlib.sha256(files[0].read_bytes()).hexdigest()
    assert (png["format"], png["kind"], png["shape"]) == ("png", "image", [420, 420])
    assert png["spacing_um"] == pytest.approx([12.5, 12.5])


def test_convert_png_to_x3p(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = SAMPLE_DATA / "F02-01.png", tmp_path / "F02-01.x3p"
    assert cli.main(["convert", "--pixel-um", "12.5", str(source), str(target)]) == 0
    assert str(target) in capsys.readouterr().err
    image, converted = load_scan(source, pixel_um=12.5), load_scan(target)
    np.testing.assert_array_equal(converted.heights, image.heights)
    assert converted.spacing_x == pytest.approx(12.5e-6) and converted.kind == "topography"


def test_convert_refuses_broken_input_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = broken_garbage(tmp_path), tmp_path / "out.x3p"
    assert cli.main(["convert", str(source), str(target)]) == 3
    assert capsys.readouterr().err.startswith(f"error: {source}: ")
    assert not target.exists()


# --- real scans -------------------------------------------------------------------------------


def provenance_table() -> dict[str, tuple[tuple[int, int], float, float]]:
    """``relative path -> ((rows, cols), spacing, NaN fraction)`` from PROVENANCE.md."""
    table = {}
    pattern = re.compile(r"^\| ((?:fadul|weller)Processed/[^|]+\.x3p) \| \d+ \| [^|]+ \| (\d+)x(\d+) \| ([0-9.e-]+) \| ([0-9.]+) \|")
    for line in (REAL_SCANS / "PROVENANCE.md").read_text().splitlines():
        match = pattern.match(line)
        if match:
            name, rows, cols, spacing, nan = match.groups()
            table[name] = ((int(rows), int(cols)), float(spacing), float(nan))
    return table


#: A spread of 6 Fadul and 6 Weller scans (small, large, non-square).
REAL_SAMPLE = [
    "fadulProcessed/Fadul 1-1.x3p", "fadulProcessed/Fadul 2-1.x3p", "fadulProcessed/Fadul 8-1.x3p",
    "fadulProcessed/Fadul C.x3p", "fadulProcessed/Fadul P.x3p", "fadulProcessed/Fadul Q.x3p",
    "wellerProcessed/TW01-01.x3p", "wellerProcessed/TW02-03.x3p", "wellerProcessed/TW05-08.x3p",
    "wellerProcessed/TW07-06.x3p", "wellerProcessed/TW10-01.x3p", "wellerProcessed/TW11-05.x3p",
]  # fmt: skip


def test_provenance_table_lists_every_processed_scan(real_scans: Path) -> None:
    table = provenance_table()
    assert len(table) == 40 + 95
    assert set(REAL_SAMPLE) <= set(table)


@pytest.mark.parametrize("name", REAL_SAMPLE)
def test_real_processed_scan_matches_provenance(name: str, real_scans: Path) -> None:
    shape, spacing, nan_fraction = provenance_table()[name]
    loaded = load_scan(real_scans / "cartridgeCaseScans" / name)
    assert loaded.shape == shape
    assert loaded.spacing_x == pytest.approx(spacing) and loaded.spacing_y == pytest.approx(spacing)
    assert loaded.valid_fraction == pytest.approx(1 - nan_fraction, abs=0.005)


#: The converted cmcR and TopMatch scans, from the prose of PROVENANCE.md: the R matrices are
#: [x, y], so the x3p rows x cols are the transpose of the stated sizes.
CONVERTED = {
    "cmcR/converted_x3p/fadul1.1_raw.x3p": ((1223, 1231), 3.125e-6, 0.46, 0.01),
    "cmcR/converted_x3p/fadul1.2_raw.x3p": ((1214, 1227), 3.125e-6, 0.45, 0.01),
    "cmcR/converted_x3p/fadul2.1_raw.x3p": ((1205, 1204), 3.125e-6, 0.44, 0.01),
    "cmcR/converted_x3p/fadul2.1_processed.x3p": ((537, 537), 6.25e-6, 0.703, 0.005),
    "scored/converted_x3p/K013sA1.x3p": ((416, 423), 7.37364e-6, 0.70, 0.05),
    "scored/converted_x3p/K013sA2.x3p": ((420, 425), 7.37364e-6, 0.70, 0.05),
}


@pytest.mark.parametrize("name", list(CONVERTED))
def test_real_converted_scan_matches_provenance(name: str, real_scans: Path) -> None:
    shape, spacing, nan_fraction, tolerance = CONVERTED[name]
    loaded = load_scan(real_scans / name)
    assert loaded.shape == shape
    assert loaded.spacing_x == pytest.approx(spacing, rel=1e-5)
    assert loaded.valid_fraction == pytest.approx(1 - nan_fraction, abs=tolerance)


def test_fadul_2_1_converted_equals_the_processed_x3p(real_scans: Path) -> None:
    converted = load_scan(real_scans / "cmcR/converted_x3p/fadul2.1_processed.x3p")
    processed = load_scan(FADUL / "Fadul 2-1.x3p")
    np.testing.assert_array_equal(converted.heights, processed.heights)
    assert RAW_FADUL.is_dir() and WELLER.is_dir()


@pytest.mark.real_scans_all
def test_every_real_x3p_loads_as_a_surface(real_scans: Path) -> None:
    paths = sorted(real_scans.rglob("*.x3p"))
    assert len(paths) >= 40 + 95 + 6
    for path in paths:
        loaded = load_scan(path)
        assert loaded.kind == "topography", path
        assert loaded.spacing_x > 0 and loaded.spacing_y > 0, path
        assert 0 < loaded.valid_fraction < 1, path


def test_real_2d_images_load_with_pixel_size(real_scans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = sorted((real_scans / "cartridges").glob("*.png"))
    assert len(paths) == 2
    for path in paths:
        loaded = load_scan(path, pixel_um=3.0)
        assert (loaded.kind, loaded.format, loaded.shape) == ("image", "png", (1944, 2592))
        assert loaded.metadata["bit_depth"] == "8"
    assert cli.main(["info", "--json", "--pixel-um", "3", *map(str, paths)]) == 0
    assert [s["shape"] for s in json.loads(capsys.readouterr().out)["scans"]] == [[1944, 2592]] * 2
