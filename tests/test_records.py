"""Match records: the published schema, validation with one-line reasons, atomic writes."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ballistics.errors import InvalidInputError, RecordError
from ballistics.labs import Lab
from ballistics.records import (
    ExaminerConclusion,
    build_record,
    ecma_pattern,
    load_record,
    migrate_v1,
    parse_record,
    record_bytes,
    schema,
    validate_record,
    write_record,
)

REPO = Path(__file__).resolve().parents[1]
LAB = Lab("UK-FSL", "UK Forensic Science Laboratory", "GB")


def comparison_dict() -> dict:
    """What the comparison engine hands over: the shape of ``Comparison.to_dict()``."""
    return {
        "reference": {"path": "/cases/K1.x3p", "sha256": "a" * 64},
        "questioned": {"path": "/cases/Q1.x3p", "sha256": "b" * 64},
        "cmc": 17,
        "cmc_original": 12,
        "cmc_high": 17,
        "cmc_forward": 18,
        "cmc_backward": 17,
        "high_cmc_passed": True,
        "cells_compared": 41,
        "rotation_deg": -12.0,
        "translation_um": [31.25, -6.25],
        "ccf": 0.61,
        "firing_pin": None,
        "decision": "identification",
        "method": {"name": "congruent-matching-cells/high-cmc", "cmc": {"cell_grid": 8}, "decision": {"identification_cmc": 6}},
        "software": {"name": "ballistics", "version": "0.1.0"},
        "elapsed_s": 1.5,
    }


def a_record() -> dict:
    return build_record(
        comparison_dict(),
        lab=LAB,
        case_id="CASE-2026-0042",
        exhibits=("K1", "Q1"),
        examiner={"name": "A. Examiner", "id": "E17"},
        class_characteristics={"calibre": "9mm Luger", "firing_pin_shape": "hemispherical"},
        likelihood_ratio=LR_BLOCK,
        examiner_conclusion=ExaminerConclusion(afte_category="identification", verbal=("strong", "same source"), remarks="agrees"),
        reviewer={"name": "B. Reviewer", "id": "E21"},
        created=datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
    )


#: The shape of ``LikelihoodRatio.to_dict()``.
LR_BLOCK = {
    "log10_lr": 3.69,
    "interval_log10": [3.1, 3.69],
    "interval": {"level": 0.95, "method": "percentile bootstrap over reference firearms, 200 replicates"},
    "bounds_log10": [-2.58, 3.69],
    "at_bound": True,
    "propositions": {"same_source": "fired by the same firearm", "different_source": "fired by two different firearms"},
    "relevant_population": "9 mm Ruger pistols",
    "calibration": {"id": "3096f995-fbb1-488a-8ca0-499c1dce1263", "sha256": "c" * 64},
    "score": {"name": "cmc", "cmc": 17},
    "verbal": {
        "scale": "ENFSI 2015",
        "category": "strong",
        "supports": "same source",
        "statement": "The findings provide strong support ...",
    },
    "warnings": [],
}


def a_v1_record() -> dict:
    """A record as version 1 wrote it (what partner bundles and the conformance vectors still carry)."""
    record = copy.deepcopy(a_record())
    for key in ("likelihood_ratio", "examiner_conclusion", "reviewer"):
        record.pop(key)
    record["schema_version"] = 1
    record["conclusion"].update(afte_category="inconclusive-b", remarks="poor marks")
    record["scores"]["likelihood_ratio"] = 250.0
    return record


def test_published_schema_is_the_packaged_schema() -> None:
    assert (REPO / "docs" / "match-record.schema.json").read_bytes() == (
        REPO / "ballistics" / "schemas" / "match-record.schema.json"
    ).read_bytes()
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_built_record_carries_the_comparison(tmp_path: Path) -> None:
    record = a_record()
    assert record["scores"]["cmc"] == 17 and record["scores"]["firing_pin"] is None and record["scores"]["cmc_high"] == 17
    assert record["comparison"]["method"]["name"] == "congruent-matching-cells/high-cmc"
    assert record["comparison"]["method"]["parameters"]["cmc"] == {"cell_grid": 8}
    assert record["scans"]["reference"] == {"sha256": "a" * 64, "path": "/cases/K1.x3p", "name": "K1.x3p"}
    assert record["created"] == "2026-01-15T09:30:00Z"
    path = write_record(record, tmp_path / "r.json")
    assert load_record(path) == record
    assert path.read_bytes() == record_bytes(record)
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda r: r["scans"]["reference"].update(sha256="XYZ"), "scans/reference/sha256"),
        (lambda r: r["conclusion"].update(decision="probable"), "conclusion/decision"),
        (lambda r: r["scores"].update(ccf=1.5), "scores/ccf"),
        (lambda r: r["scores"].pop("cmc"), "scores"),
        (lambda r: r.update(created="15/01/2026"), "created"),
        (lambda r: r["lab"].update(country="France"), "lab/country"),
        (lambda r: r.update(extra=1), "(record)"),
        (lambda r: r["likelihood_ratio"]["calibration"].update(sha256="short"), "likelihood_ratio/calibration/sha256"),
        (lambda r: r["likelihood_ratio"].pop("propositions"), "likelihood_ratio"),
        (lambda r: r["examiner_conclusion"].update(afte_category="probable"), "examiner_conclusion/afte_category"),
        (lambda r: r["conclusion"].update(afte_category="identification"), "conclusion"),  # the examiner's opinion has its own field
        (lambda r: r["scores"].update(likelihood_ratio=3.0), "scores"),  # a bare LR without its calibration: version 1 only
        (lambda r: r.update(schema_version=3), "schema_version"),
    ],
)
def test_invalid_records_name_the_violation_in_one_line(mutate, where: str, tmp_path: Path) -> None:
    record = copy.deepcopy(a_record())
    mutate(record)
    with pytest.raises(RecordError) as caught:
        validate_record(record, "r.json")
    assert isinstance(caught.value, InvalidInputError) and caught.value.exit_code == 3
    assert f"at {where}:" in caught.value.reason and "\n" not in caught.value.reason
    with pytest.raises(RecordError):
        write_record(record, tmp_path / "bad.json")
    assert not list(tmp_path.iterdir())


def test_unreadable_record_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    with pytest.raises(RecordError, match="not UTF-8 JSON"):
        load_record(tmp_path / "bad.json")
    with pytest.raises(RecordError, match="cannot read"):
        load_record(tmp_path / "missing.json")


def test_build_refuses_a_comparison_without_scan_hashes() -> None:
    comparison = comparison_dict()
    comparison["questioned"] = {"path": None, "sha256": None}
    with pytest.raises(RecordError, match="scans/questioned/sha256"):
        build_record(comparison, lab=LAB, case_id="C", exhibits=("K1", "Q1"), examiner={"name": "A"})


def test_schema_file_is_valid_json_for_partners() -> None:
    doc = json.loads((REPO / "docs" / "match-record.schema.json").read_text())
    assert set(doc["required"]) >= {"lab", "case_id", "exhibits", "comparison", "scores", "conclusion", "examiner", "created", "scans"}


@pytest.mark.parametrize(
    ("field", "where"),
    [
        (("lab", "id"), "lab/id"),
        (("lab", "country"), "lab/country"),
        (("case_id",), "case_id"),
        (("exhibits", "questioned"), "exhibits/questioned"),
        (("record_id",), "record_id"),
        (("created",), "created"),
        (("scans", "reference", "sha256"), "scans/reference/sha256"),
    ],
)
def test_a_trailing_newline_does_not_pass_an_anchored_pattern(field: tuple[str, ...], where: str) -> None:
    """Python's ``$`` also matches before a final newline; a schema pattern's does not (ECMA-262)."""
    record = copy.deepcopy(a_record())
    parent = record
    for key in field[:-1]:
        parent = parent[key]
    parent[field[-1]] += "\n"
    with pytest.raises(RecordError, match=f"at {where}: .* does not match"):
        validate_record(record, "r.json")


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^[A-Z]{2}$", "FR", True),
        ("^[A-Z]{2}$", "FR\n", False),
        ("^a[$]b$", "a$b", True),
        (r"^a\$$", "a$", True),
        (r"^a\$$", "a$\n", False),
    ],
)
def test_schema_patterns_read_dollar_as_ecma_262_does(pattern: str, text: str, matches: bool) -> None:
    assert (ecma_pattern(pattern).search(text) is not None) is matches


def test_version_2_carries_lr_examiner_conclusion_and_reviewer_apart_from_the_decision() -> None:
    record = a_record()
    assert record["schema_version"] == 2
    assert record["conclusion"] == {"decision": "identification"}  # the algorithm's
    assert record["examiner_conclusion"] == {
        "afte_category": "identification",
        "verbal": {
            "scale": "ENFSI Guideline for Evaluative Reporting in Forensic Science (2015), verbal equivalents",
            "category": "strong",
            "supports": "same source",
        },
        "remarks": "agrees",
    }
    assert record["likelihood_ratio"]["calibration"]["sha256"] == "c" * 64 and record["reviewer"] == {"name": "B. Reviewer", "id": "E21"}
    bare = build_record(comparison_dict(), lab=LAB, case_id="C", exhibits=("K1", "Q1"), examiner={"name": "A"})
    assert not {"likelihood_ratio", "examiner_conclusion", "reviewer"} & set(bare)


def test_version_1_records_still_validate_and_migrate_to_version_2(tmp_path: Path) -> None:
    old = a_v1_record()
    validate_record(old)
    assert parse_record(record_bytes(old)) == old  # as a bundle's reader takes it
    new = migrate_v1(old)
    assert new["schema_version"] == 2 and new["record_id"] == old["record_id"] and new["scans"] == old["scans"]
    assert new["conclusion"] == {"decision": "identification"}
    assert new["examiner_conclusion"] == {
        "afte_category": "inconclusive-b",
        "remarks": "poor marks; version-1 record gave a likelihood ratio of 250 without naming a calibration",
    }
    assert "likelihood_ratio" not in new["scores"] and "likelihood_ratio" not in new
    with pytest.raises(RecordError, match="not a version-1 record"):
        migrate_v1(new)
    broken = copy.deepcopy(old)
    broken["examiner_conclusion"] = {"afte_category": "identification"}  # a version-2 field in a version-1 record
    with pytest.raises(RecordError, match="at \\(record\\)"):
        validate_record(broken)


def test_the_version_1_schema_is_published_beside_the_current_one() -> None:
    assert (REPO / "docs" / "match-record-v1.schema.json").read_bytes() == (
        REPO / "ballistics" / "schemas" / "match-record-v1.schema.json"
    ).read_bytes()
    assert schema(1)["properties"]["schema_version"] == {"const": 1} and schema()["properties"]["schema_version"] == {"const": 2}
