"""Calibrations: the document and its hash, refusals, the LR of a comparison with its flags, and the commands."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FADUL, WELLER, require_real_scans

from ballistics.calibration import (
    HOME_FILE,
    Calibration,
    build_calibration,
    default_calibration,
    load_calibration,
    parse_calibration,
    scoring_method,
    write_calibration,
)
from ballistics.errors import CalibrationError
from ballistics.likelihood_ratio import likelihood_ratio, lr_text
from ballistics.method import CmcParams, DecisionParams
from ballistics.records import load_record as load_record_file
from cli import main
from exchange.audit import AuditLog


@pytest.fixture(scope="module")
def small() -> Calibration:
    """A calibration refitted on five firearms of the packaged reference pairs (real CMC counts)."""
    packaged = default_calibration()
    firearms = np.arange(5)
    keep = np.isin(packaged.pairs.firearm_a, firearms) & np.isin(packaged.pairs.firearm_b, firearms)
    pairs = packaged.pairs.subset(keep)
    names = {packaged.pairs.firearms[i] for i in firearms}
    scans = [s for s in packaged.reference.scans if s.firearm in names]
    return build_calibration(
        pairs,
        scans,
        method=scoring_method(CmcParams(), DecisionParams()),
        description="five firearms",
        relevant_population="test population",
        score="cmc",
        calibrator="kde",
    )


def comparison_doc(calibration: Calibration, cmc: int, reference_sha: str = "a" * 64, questioned_sha: str = "b" * 64) -> dict[str, Any]:
    """The parts of ``Comparison.to_dict()`` an LR reads."""
    return {
        "cmc": cmc,
        "ccf": 0.5,
        "decision": DecisionParams().decide(cmc),
        "method": {"cmc": CmcParams().to_dict(), "decision": {"rule": "original"}},
        "reference": {"path": "r.x3p", "sha256": reference_sha},
        "questioned": {"path": "q.x3p", "sha256": questioned_sha},
    }


def test_the_file_round_trips_and_its_sha256_identifies_it(small: Calibration, tmp_path: Path) -> None:
    path = write_calibration(small, tmp_path / "cal.json")
    back = load_calibration(path)
    assert back.sha256 == small.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert back.to_bytes() == path.read_bytes()
    doc = json.loads(path.read_bytes())
    assert doc["score"] == {"name": "cmc", "features": ["cmc"]} and doc["calibrator"]["name"] == "kde"
    assert doc["reference_set"]["firearms"] == 5 and len(doc["reference_set"]["scans"]) == len(small.reference.scans)
    assert all(len(s["sha256"]) == 64 for s in doc["reference_set"]["scans"])
    assert doc["reference_set"]["same_source_pairs"] + doc["reference_set"]["different_source_pairs"] == len(doc["pairs"]["rows"])
    assert doc["validation"]["metrics"]["cllr"] == pytest.approx(small.metrics.cllr, abs=1e-5)
    assert doc["software"]["name"] == "ballistics"


def test_an_edited_calibration_is_refused(small: Calibration, tmp_path: Path) -> None:
    data = small.to_bytes()
    with pytest.raises(CalibrationError, match="not in the form the software writes"):
        parse_calibration(json.dumps(json.loads(data)).encode())  # same content, other spelling: the hash would not identify it
    doc = small.to_dict()
    bogus = replace(small, bounds_log10=(-4.0, 6.0))  # bounds the pairs do not support
    with pytest.raises(CalibrationError, match="refit to bounds"):
        parse_calibration(bogus.to_bytes())
    assert doc["format"] == "ballistics-calibration"
    with pytest.raises(CalibrationError, match="not a ballistics-calibration"):
        parse_calibration(b'{"format": "other", "version": 1}')
    with pytest.raises(CalibrationError, match="not a readable calibration"):
        parse_calibration(b"[1, 2]")


def test_lr_of_a_comparison_states_propositions_bounds_interval_and_scale(small: Calibration) -> None:
    statement = likelihood_ratio(small, comparison_doc(small, 20))
    doc = statement.to_dict()
    assert doc["log10_lr"] == pytest.approx(small.bounds_log10[1], abs=1e-3) and doc["at_bound"]
    assert doc["bounds_log10"] == [round(v, 3) for v in small.bounds_log10]
    low, high = doc["interval_log10"]
    assert low <= doc["log10_lr"] <= high
    assert doc["propositions"]["same_source"].startswith("The reference and the questioned cartridge cases were fired by the same")
    assert "different firearms" in doc["propositions"]["different_source"]
    assert doc["relevant_population"] == "test population"
    assert doc["calibration"] == {"id": small.calibration_id, "sha256": small.sha256}
    assert doc["verbal"]["supports"] == "same source" and "ENFSI" in doc["verbal"]["scale"]
    assert doc["warnings"] == []
    text = "\n".join(statement.statement())
    assert "H1 (same source)" in text and "H2 (different sources)" in text and "Relevant population" in text and small.sha256 in text
    against = likelihood_ratio(small, comparison_doc(small, 0)).to_dict()
    assert against["log10_lr"] < 0 and against["verbal"]["supports"] == "different sources"


def test_a_scan_of_the_reference_set_is_flagged(small: Calibration) -> None:
    known = small.reference.scans[0].sha256
    doc = likelihood_ratio(small, comparison_doc(small, 15, questioned_sha=known)).to_dict()
    assert len(doc["warnings"]) == 1 and "questioned scan" in doc["warnings"][0] and known in doc["warnings"][0]


def test_no_lr_from_other_scoring_parameters_or_a_photograph(small: Calibration) -> None:
    doc = comparison_doc(small, 10)
    doc["method"]["cmc"]["ccf_threshold"] = 0.4
    with pytest.raises(CalibrationError, match="ccf_threshold"):
        likelihood_ratio(small, doc)
    doc = comparison_doc(small, 10)
    doc["method"]["decision"]["rule"] = "high"
    with pytest.raises(CalibrationError, match="deciding rule"):
        likelihood_ratio(small, doc)
    doc = comparison_doc(small, 10)
    doc["decision"] = "not validated"
    with pytest.raises(CalibrationError, match="2-D image"):
        likelihood_ratio(small, doc)
    speed = comparison_doc(small, 10)
    speed["method"]["cmc"]["candidates"] = 5  # a search setting, not a scoring one
    likelihood_ratio(small, speed)


def test_build_refuses_sets_it_cannot_validate(small: Calibration) -> None:
    pairs = small.pairs
    only_two = pairs.subset(np.isin(pairs.firearm_a, [0, 1]) & np.isin(pairs.firearm_b, [0, 1]))
    with pytest.raises(CalibrationError, match="four firearms"):
        build_calibration(only_two, [], method={}, description="", relevant_population="")
    different = pairs.subset(pairs.firearm_a != pairs.firearm_b)
    with pytest.raises(CalibrationError, match="same-source and different-source"):
        build_calibration(different, [], method={}, description="", relevant_population="")


def test_lr_text_reads_both_ways() -> None:
    assert lr_text(3.0) == "about 1,000" and lr_text(-1.5) == "about 1/32" and lr_text(0.1) == "about 1.3"


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight Fadul knowns of four slides (28 pairs, 4 same source)."""
    require_real_scans()
    folder = tmp_path_factory.mktemp("fadul6")
    for name in ("Fadul 1-1", "Fadul 1-2", "Fadul 2-1", "Fadul 2-2", "Fadul 3-1", "Fadul 3-2", "Fadul 4-1", "Fadul 4-2"):
        shutil.copy(FADUL / f"{name}.x3p", folder)
    return folder


def run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, Any]:
    code = main(args)
    return code, json.loads(capsys.readouterr().out)


TRUTH = Path(__file__).resolve().parents[1] / "ballistics" / "calibrations" / "default-truth.csv"


@dataclass(frozen=True)
class Validated:
    """``validate --lr`` on the subset: its JSON document, its pairs CSV and its two plots."""

    doc: dict[str, Any]
    pairs_csv: Path
    tippett: Path
    ece: Path


@pytest.fixture(scope="module")
def validated(subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Validated:
    """One ``validate --lr --pairs-csv --tippett --ece`` run on the subset, in a home of its own."""
    out = tmp_path_factory.mktemp("validated")
    result = Validated({}, out / "pairs.csv", out / "tippett.png", out / "ece.png")
    args = ["--home", str(out / "home"), "validate", str(subset), "--json", "--workers", "1", "--lr", "--pairs-csv", str(result.pairs_csv),
            "--tippett", str(result.tippett), "--ece", str(result.ece)]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(args)
    assert code == 0
    result.doc.update(json.loads(stdout.getvalue()))
    return result


def test_validate_lr_reports_the_held_out_figures_and_writes_both_plots(validated: Validated) -> None:
    """Cllr, Cllr-min, Cllr-cal, misleading evidence both ways, the extreme LRs, every candidate's Cllr, Tippett and ECE PNGs."""
    block = validated.doc["likelihood_ratio"]
    metrics = block["metrics"]
    for key in ("cllr", "cllr_min", "cllr_cal", "misleading_same_source", "misleading_same_source_rate", "misleading_different_source",
                "misleading_different_source_rate", "largest_different_source_log10_lr", "smallest_same_source_log10_lr"):  # fmt: skip
        assert key in metrics
    assert metrics["same_source_pairs"] == 4 and metrics["different_source_pairs"] == 24
    assert metrics["cllr"] == pytest.approx(metrics["cllr_min"] + metrics["cllr_cal"], abs=2e-5)
    assert metrics["largest_different_source_log10_lr"] < 0 < metrics["smallest_same_source_log10_lr"]
    assert "leave firearms out" in block["validation"]
    # the fused score was measured beside the count, with every calibrator, and is kept only if it lowers the Cllr
    assert set(block["candidates_cllr"]) == {f"{s}/{c}" for s in ("cmc", "cmc+ccf") for c in ("kde", "logistic", "isotonic")}
    chosen = block["candidates_cllr"][f"{block['score']}/{block['calibrator']}"]
    assert chosen == min(block["candidates_cllr"].values()) == pytest.approx(metrics["cllr"], abs=1e-5)
    if block["score"] == "cmc+ccf":
        assert chosen < min(v for k, v in block["candidates_cllr"].items() if k.startswith("cmc/"))
    for plot in (validated.tippett, validated.ece):
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_calibrate_validate_and_compare_commands(
    subset: Path, validated: Validated, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rebuild command on a subset; validate --lr agrees with it; compare uses it from the home, flags its scans, and audits it."""
    cal = tmp_path / "cal.json"
    code, built = run_json(
        capsys,
        ["calibrate", str(subset), "--truth", str(TRUTH), "-o", str(cal), "--json", "--workers", "1", "--install", "--licence", "CC-BY 4.0",
         "--tippett", str(tmp_path / "t.png"), "--ece", str(tmp_path / "e.png")],
    )  # fmt: skip
    assert code == 0 and built["sha256"] == load_calibration(cal).sha256
    assert built["firearms"] == 4 and built["metrics"]["same_source_pairs"] == 4 and built["metrics"]["different_source_pairs"] == 24
    assert built["metrics"]["misleading_same_source"] == 0 and built["metrics"]["misleading_different_source"] == 0
    assert (home / HOME_FILE).read_bytes() == cal.read_bytes()
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    calibration = load_calibration(cal)
    assert {s.make for s in calibration.reference.scans} == {"Ruger"} and calibration.reference.licence == "CC-BY 4.0"

    assert validated.doc["likelihood_ratio"]["metrics"] == built["metrics"]
    code, again = run_json(capsys, ["calibrate", "--pairs-csv", str(validated.pairs_csv), "-o", str(tmp_path / "again.json"), "--json"])
    assert code == 0 and again["metrics"] == built["metrics"] and again["bounds_log10"] == built["bounds_log10"]

    # compare: the home's calibration replaces the packaged one; a scan of its reference set is flagged
    code, doc = run_json(capsys, ["compare", str(subset / "Fadul 1-1.x3p"), str(subset / "Fadul 1-2.x3p"), "--json"])
    assert code == 0
    block = doc["likelihood_ratio"]
    assert block["calibration"] == {"id": calibration.calibration_id, "sha256": calibration.sha256}
    assert block["log10_lr"] > 0 and block["verbal"]["supports"] == "same source"
    assert len(block["warnings"]) == 2 and all(w in doc["warnings"] for w in block["warnings"])
    # the audit log names the calibration of the LR it quotes
    compared = [e.record for e in AuditLog(home).entries() if e.record["type"] == "comparison"]
    assert compared[-1]["details"]["calibration_sha256"] == calibration.sha256
    assert compared[-1]["details"]["log10_lr"] == f"{block['log10_lr']:.3f}"


def test_the_documented_rebuild_takes_two_pairs_csvs_and_keeps_the_shipped_wording(
    validated: Validated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/likelihood-ratios.md's rebuild command, option for option, on two pairs CSVs (two halves of the subset's pairs)."""
    with open(validated.pairs_csv, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        fields, rows = reader.fieldnames, list(reader)
    assert fields is not None
    halves = []
    for name, firearms in (("first.csv", {"Fadul 1", "Fadul 2"}), ("second.csv", {"Fadul 3", "Fadul 4"})):
        path = tmp_path / name
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fields)
            writer.writeheader()
            writer.writerows(r for r in rows if {r["reference_firearm"], r["questioned_firearm"]} <= firearms)
        halves.append(path)
    shipped = default_calibration()
    description = "Known cases of two Fadul halves"
    code, doc = run_json(
        capsys,
        ["calibrate", "--pairs-csv", str(halves[0]), "--pairs-csv", str(halves[1]), "--truth", str(TRUTH), "--licence", "CC-BY 4.0",
         "--description", description, "--population", shipped.relevant_population, "--provenance", str(shipped.reference.provenance),
         "-o", str(tmp_path / "default.json"), "--tippett", str(tmp_path / "tippett.png"), "--ece", str(tmp_path / "ece.png"), "--json"],
    )  # fmt: skip
    assert code == 0
    rebuilt = load_calibration(tmp_path / "default.json")
    assert doc["sha256"] == rebuilt.sha256 and rebuilt.reference.firearms == 4
    # pairs within each CSV only: 2 x (1 different-source pair of slides x 4 + 2 same-source) = 12 pairs
    assert (rebuilt.reference.same_source_pairs, rebuilt.reference.different_source_pairs) == (4, 8)
    assert rebuilt.relevant_population == shipped.relevant_population and rebuilt.reference.provenance == shipped.reference.provenance
    assert rebuilt.reference.description == description and rebuilt.reference.licence == "CC-BY 4.0"
    assert {(s.make, s.calibre) for s in rebuilt.reference.scans} == {("Ruger", "9 mm")} and len(rebuilt.reference.scans) == 8
    assert (tmp_path / "tippett.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "ece.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_prints_the_whole_statement_with_the_packaged_calibration(capsys: pytest.CaptureFixture[str]) -> None:
    """A Weller pair (not in the provisional reference set it ships with, or flagged if it is): the LR is never alone."""
    require_real_scans()
    code = main(["compare", str(WELLER / "TW02-01.x3p"), str(WELLER / "TW03-01.x3p")])
    text = capsys.readouterr().out
    assert code == 0
    for phrase in (
        "H1 (same source)",
        "H2 (different sources)",
        "Relevant population",
        "Likelihood ratio: about 1/",
        "ENFSI",
        "Calibration: ",
    ):
        assert phrase in text
    assert default_calibration().sha256 in text


def test_calibration_option_replaces_the_homes_calibration(
    small: Calibration, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--calibration FILE, else HOME/calibration.json, else the packaged default: the option wins over the home's file."""
    require_real_scans()
    write_calibration(small, home / HOME_FILE)
    other = replace(small, calibration_id="00000000-0000-4000-8000-000000000001", relevant_population="another population")
    path = write_calibration(other, tmp_path / "other.json")
    assert other.sha256 != small.sha256
    pair = [str(FADUL / "Fadul 1-1.x3p"), str(FADUL / "Fadul 2-1.x3p")]
    code, doc = run_json(capsys, ["compare", *pair, "--json", "--calibration", str(path)])
    assert code == 0
    block = doc["likelihood_ratio"]
    assert block["calibration"] == {"id": other.calibration_id, "sha256": other.sha256}
    assert block["relevant_population"] == "another population" and block["log10_lr"] < 0


def test_compare_refuses_an_unreadable_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_real_scans()
    bad = tmp_path / "cal.json"
    bad.write_text("{}")
    code, doc = run_json(
        capsys, ["compare", str(FADUL / "Fadul 1-1.x3p"), str(FADUL / "Fadul 2-1.x3p"), "--json", "--calibration", str(bad)]
    )
    assert code == 3 and doc["error"]["path"] == str(bad)


def test_compare_records_the_lr_and_the_examiners_conclusion_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_real_scans()
    record = tmp_path / "record.json"
    pair = [str(WELLER / "TW02-01.x3p"), str(FADUL / "Fadul 5-1.x3p")]
    args = ["--conclusion", "elimination", "--verbal-conclusion", "moderate-different-sources", "--reviewer", "B. Reviewer",
            "--remarks", "different makers' marks", "--reference-exhibit", "K7", "--questioned-exhibit", "Q12"]  # fmt: skip
    code, doc = run_json(capsys, ["compare", *pair, "--json", *args])
    assert code == 2 and "give --record too" in doc["error"]["reason"]
    code, doc = run_json(capsys, ["compare", *pair, "--json", "--record", str(record), "--case", "C-9", "--examiner", "A. Examiner", *args])
    assert code == 0
    written = load_record_file(record)
    assert written["schema_version"] == 2 and written["exhibits"] == {"reference": "K7", "questioned": "Q12"}
    assert written["conclusion"] == {"decision": doc["decision"]}
    assert written["examiner_conclusion"] == {
        "afte_category": "elimination",
        "verbal": {"scale": written["likelihood_ratio"]["verbal"]["scale"], "category": "moderate", "supports": "different sources"},
        "remarks": "different makers' marks",
    }
    assert written["reviewer"] == {"name": "B. Reviewer"} and written["examiner"] == {"name": "A. Examiner"}
    assert written["likelihood_ratio"] == doc["likelihood_ratio"]
    assert written["likelihood_ratio"]["calibration"]["sha256"] == default_calibration().sha256


def test_validate_lr_needs_four_firearms_before_it_compares(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    require_real_scans()
    for name in ("Fadul 1-1", "Fadul 1-2", "Fadul 2-1"):
        shutil.copy(FADUL / f"{name}.x3p", tmp_path)
    code, doc = run_json(capsys, ["validate", str(tmp_path), "--lr", "--json"])
    assert code == 2 and "at least four firearms" in doc["error"]["reason"]
    code, doc = run_json(capsys, ["validate", str(tmp_path), "--tippett", str(tmp_path / "t.png"), "--json"])
    assert code == 2 and "--lr" in doc["error"]["reason"]
