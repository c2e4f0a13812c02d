"""`compare` and `validate` end to end: real scans in, documented JSON and exit codes out."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import FADUL, RAW_FADUL, SAMPLE_DATA, require_real_scans

from ballistics.compare import compare, compare_prepared
from ballistics.errors import UsageError
from ballistics.labs import Lab
from ballistics.method import CmcParams, DecisionParams, PreprocessParams, method_description, method_name
from ballistics.preprocess import prepare
from ballistics.records import build_record
from ballistics.scan import load_scan
from cli import main

JSON_KEYS = {
    "reference",
    "questioned",
    "cmc",
    "cmc_forward",
    "cmc_backward",
    "cells_compared",
    "rotation_deg",
    "translation_um",
    "ccf",
    "firing_pin",
    "decision",
    "method",
    "software",
    "elapsed_s",
}


def run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict]:
    code = main(args)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else {})


def test_compare_json_document_has_the_documented_fields(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    require_real_scans()
    plot = tmp_path / "cmc.png"
    code, doc = run_json(capsys, ["compare", str(FADUL / "Fadul 1-1.x3p"), str(FADUL / "Fadul 1-2.x3p"), "--json", "--plot", str(plot)])
    assert code == 0
    assert set(doc) >= JSON_KEYS
    assert doc["decision"] == "identification"
    assert doc["cmc"] >= 6 and doc["cmc"] == doc["cmc_original"] == min(doc["cmc_forward"], doc["cmc_backward"])
    assert -180 < doc["rotation_deg"] <= 180
    assert len(doc["reference"]["sha256"]) == 64 and doc["reference"]["path"].endswith("Fadul 1-1.x3p")
    assert doc["method"]["cmc"]["translation_um"] == 125.0 and doc["method"]["cmc"]["ccf_threshold"] == 0.5
    assert doc["method"]["decision"] == {"identification_cmc": 6, "elimination_cmc": 2, "rule": "original"}
    assert doc["software"]["name"] == "ballistics"
    assert doc["firing_pin"] is None  # processed scans no longer carry the firing-pin impression
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_known_non_match_is_eliminated(capsys: pytest.CaptureFixture[str]) -> None:
    require_real_scans()
    code, doc = run_json(capsys, ["compare", str(FADUL / "Fadul 1-1.x3p"), str(FADUL / "Fadul 2-1.x3p"), "--json"])
    assert code == 0
    assert doc["cmc"] <= 2 and doc["decision"] == "elimination"


def test_options_change_the_method_and_are_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    require_real_scans()
    args = [
        "compare",
        str(FADUL / "Fadul 1-1.x3p"),
        str(FADUL / "Fadul 1-2.x3p"),
        "--json",
        "--rule",
        "high",
        "--ccf-threshold",
        "0.6",
        "--cmcr-window",
    ]
    code, doc = run_json(capsys, args)
    assert code == 0
    assert doc["method"]["decision"]["rule"] == "high" and doc["method"]["cmc"]["ccf_threshold"] == 0.6
    assert doc["method"]["cmc"]["full_circle"] is False
    assert doc["cmc"] == doc["cmc_high"]


def test_raw_scans_compare_like_their_processed_versions() -> None:
    """The raw Fadul 1-1 / 1-2 / 2-1 scans, preprocessed here, give the same verdicts."""
    require_real_scans()
    raw = {name: load_scan(RAW_FADUL / f"fadul{name}_raw.x3p") for name in ("1.1", "1.2", "2.1")}
    same = compare(raw["1.1"], raw["1.2"])
    different = compare(raw["1.1"], raw["2.1"])
    assert same.decision == "identification", same.to_dict()
    assert different.decision != "identification", different.to_dict()
    assert same.firing_pin is not None  # raw scans keep the firing-pin impression


def test_decision_thresholds() -> None:
    decide = DecisionParams().decide
    assert [decide(n) for n in (0, 2, 3, 5, 6, 30)] == [
        "elimination",
        "elimination",
        "inconclusive",
        "inconclusive",
        "identification",
        "identification",
    ]


def test_bad_input_is_one_line_exit_3_and_one_json_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bogus = tmp_path / "case.x3p"
    bogus.write_bytes(b"not a scan at all")
    code = main(["compare", str(bogus), str(bogus), "--json"])
    captured = capsys.readouterr()
    assert code == 3
    assert json.loads(captured.out) == {
        "error": {"path": str(bogus), "reason": "not an x3p (zip) file nor a PNG, TIFF, JPEG or BMP image", "exit_code": 3}
    }
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: {bogus}: ")


def test_validate_small_labelled_set(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Four Fadul knowns from two slides: 2 known matches, 4 known non-matches, perfectly separated."""
    require_real_scans()
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("Fadul 1-1", "Fadul 1-2", "Fadul 2-1", "Fadul 2-2"):
        shutil.copy(FADUL / f"{name}.x3p", folder)
    pairs = tmp_path / "pairs.csv"
    code, doc = run_json(
        capsys, ["validate", str(folder), "--json", "--workers", "1", "--pairs-csv", str(pairs), "--plot", str(tmp_path / "h.png")]
    )
    assert code == 0
    assert doc["pairs"] == 6
    assert doc["known_match"]["n"] == 2 and doc["known_non_match"]["n"] == 4
    assert doc["auc"] == 1.0
    assert doc["false_identifications"] == 0 and doc["missed_identifications"] == 0
    rows = list(csv.DictReader(pairs.open()))
    assert len(rows) == 6 and {r["same_source"] for r in rows} == {"0", "1"}


def test_validate_with_a_truth_csv_on_generated_cases(capsys: pytest.CaptureFixture[str]) -> None:
    """The committed sample set: its truth.csv labels the cases; same-firearm pairs score higher."""
    code, doc = run_json(capsys, ["validate", str(SAMPLE_DATA), "--truth", str(SAMPLE_DATA / "truth.csv"), "--json", "--workers", "2"])
    assert code == 0
    assert doc["pairs"] == 36 and doc["known_match"]["n"] == 9
    assert doc["auc"] == 1.0 and doc["false_identifications"] == 0 and doc["missed_identifications"] == 0
    assert doc["known_match"]["min"] > doc["known_non_match"]["max"]


def test_generated_pair_recovers_the_true_rotation() -> None:
    """Simulated shots of one firearm: identified, and the rotation is the difference of the poses."""
    truth = {row["file"]: row for row in csv.DictReader((SAMPLE_DATA / "truth.csv").open())}
    result = compare(load_scan(SAMPLE_DATA / "F01-01.x3p"), load_scan(SAMPLE_DATA / "F01-03.x3p"))
    expected = float(truth["F01-03.x3p"]["rotation_deg"]) - float(truth["F01-01.x3p"]["rotation_deg"])
    assert result.decision == "identification"
    assert abs((result.rotation_deg - expected + 180) % 360 - 180) <= 2.0
    assert result.firing_pin is not None and result.firing_pin > 0.5


#: Every preprocessing parameter moved off its default (and still valid).
NON_DEFAULT_PREPROCESS = {
    "working_spacing_um": 6.5,
    "bandpass_um": (15.0, 510.0),
    "blur_coarse_sigmas": 3.5,
    "trend": "quadratic",
    "trend_points": 30_000,
    "trend_passes": 25,
    "trend_tolerance": 2e-3,
    "trend_floor": 0.06,
    "face_blur_um": 35.0,
    "primer_tolerance_um": 7.0,
    "primer_min_radius_um": 320.0,
    "seam_width_um": 90.0,
    "seam_depth_um": 12.0,
    "seam_coverage": 0.7,
    "seam_min_radius_um": 1400.0,
    "primer_max_radius_um": 3400.0,
    "exterior_offset_um": 90.0,
    "firing_pin_margin_um": 140.0,
    "firing_pin_depth_um": 9.0,
    "crater_min_radius_um": 110.0,
    "crater_max_offset": 0.45,
    "crater_max_radius": 0.55,
    "flowback_reach": 1.5,
    "firing_pin_max_offset": 0.35,
    "aperture_smoothing_um": 9.0,
    "aperture_tolerance_um": 14.0,
    "aperture_max_radius": 0.75,
    "outlier_z": 6.5,
    "outlier_dilation_um": 18.0,
    "min_valid_points": 1500,
    "form_grid_um": 55.0,
    "form_fraction": 0.45,
}


def test_method_record_echoes_every_preprocessing_parameter() -> None:
    """What a match record keeps of a comparison is enough to rerun its preprocessing."""
    assert set(NON_DEFAULT_PREPROCESS) == {f.name for f in fields(PreprocessParams)}, "a new parameter must be added here"
    params = PreprocessParams(**NON_DEFAULT_PREPROCESS)  # type: ignore[arg-type]
    assert all(getattr(params, name) != getattr(PreprocessParams(), name) for name in NON_DEFAULT_PREPROCESS)
    face = prepare(load_scan(SAMPLE_DATA / "F01-01.x3p"), params)
    result = compare_prepared(face, face, {"path": "a", "sha256": "0" * 64}, {"path": "b", "sha256": "1" * 64})
    echoed = result.to_dict()["method"]["preprocess"]  # type: ignore[index]
    assert set(echoed) == {f.name for f in fields(PreprocessParams)}
    assert PreprocessParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in echoed.items()}) == params
    record = build_record(
        result.to_dict(),
        lab=Lab("UK-FSL", "UK Forensic Science Laboratory", "GB"),
        case_id="C1",
        exhibits=("K1", "Q1"),
        examiner={"name": "A. Examiner"},
    )
    assert record["comparison"]["method"]["parameters"]["preprocess"] == echoed
    assert record["comparison"]["method"]["name"] == "congruent-matching-cells, original rule (Song 2013) deciding, full circle"


def test_method_name_says_which_rule_decides_and_where_it_searches() -> None:
    assert (
        method_name(CmcParams(), DecisionParams(rule="original"))
        == "congruent-matching-cells, original rule (Song 2013) deciding, full circle"
    )
    assert method_name(CmcParams(full_circle=False), DecisionParams(rule="high")) == (
        "congruent-matching-cells, High CMC rule (Tong 2015) deciding, original rule where it fails, -30..30 degrees"
    )
    description = method_description(PreprocessParams(), CmcParams(), DecisionParams(rule="high"))
    assert description["decision"] == {"identification_cmc": 6, "elimination_cmc": 2, "rule": "high"}
    assert "High CMC rule (Tong 2015) deciding" in str(description["name"])


def test_a_scan_is_never_compared_with_itself(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    scan = SAMPLE_DATA / "F01-01.x3p"
    copy = tmp_path / "same bytes.x3p"
    copy.write_bytes(scan.read_bytes())
    assert main(["compare", str(scan), str(copy), "--json"]) == 2  # the same SHA-256 under another name
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["path"] == str(copy) and "the questioned scan is the reference itself" in error["reason"]
    with pytest.raises(UsageError, match="a comparison needs two cartridge cases"):
        compare(load_scan(scan), load_scan(copy))


def test_image_pairs_report_counts_without_a_conclusion(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    record = tmp_path / "images.json"
    images = [str(SAMPLE_DATA / f"F01-0{i}.png") for i in (1, 2)]
    code, doc = run_json(capsys, ["compare", *images, "--pixel-um", "6.25", "--record", str(record), "--case", "C1", "--json"])
    assert code == 0 and doc["decision"] == "not validated" and doc["cmc"] >= 0
    assert doc["warnings"] and "validated on 3-D topography only" in doc["warnings"][0]
    assert [doc[side]["kind"] for side in ("reference", "questioned")] == ["image", "image"]
    assert doc["reference"]["spacing_um"] == [6.25, 6.25]  # the pixel size given, echoed
    assert json.loads(record.read_text())["conclusion"]["decision"] == "not validated"  # the record says so too
    topo = [str(SAMPLE_DATA / f"F01-0{i}.x3p") for i in (1, 2)]
    code, doc = run_json(capsys, ["compare", *topo, "--json"])
    assert code == 0 and doc["decision"] == "identification" and doc["warnings"] == []
