"""Labelled-set evaluation: AUC, truth tables, and every pair of a small set scored against its truth."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_DATA

from ballistics.errors import TruthError
from ballistics.method import DecisionParams
from ballistics.validate import (
    PairResult,
    Validation,
    auc,
    firearm_from_name,
    labelled_scans,
    load_truth,
    read_pairs,
    validate,
    write_pairs,
)


def test_auc_against_hand_computed_values() -> None:
    assert auc([3, 4], [1, 2]) == 1.0  # every positive above every negative
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1], [1]) == 0.5  # a tie counts half
    assert auc([0, 5], [1, 6]) == 0.25  # 1 of 4 pairs ordered right: 5 > 1
    # 3 positives x 4 negatives = 12 pairs, counted by hand:
    positives, negatives = [5, 3, 2], [0, 2, 2, 6]
    # 5: > 0, 2, 2 (3), < 6            -> 3
    # 3: > 0, 2, 2 (3), < 6            -> 3
    # 2: > 0 (1), ties 2, 2 (2 x 0.5)  -> 2
    assert auc(positives, negatives) == pytest.approx(8 / 12)
    assert auc(np.array([7, 7]), np.array([7, 7, 7])) == 0.5  # all tied


def test_auc_of_an_empty_side_is_nan() -> None:
    assert np.isnan(auc([], [1, 2])) and np.isnan(auc([1], []))


@pytest.mark.parametrize(
    ("name", "firearm"),
    [
        ("Fadul 3-2.x3p", "Fadul 3"),
        ("Fadul 10-1.x3p", "Fadul 10"),
        ("TW04-07.x3p", "TW04"),
        ("TW11-05.x3p", "TW11"),
        ("Fadul A.x3p", None),  # questioned cases are a blind test: no firearm
        ("Fadul Z.x3p", None),
        ("fadul 3-2.x3p", None),  # names are matched exactly
        ("F01-01.x3p", None),
    ],
)
def test_firearm_from_fadul_and_weller_names(name: str, firearm: str | None) -> None:
    assert firearm_from_name(Path(name)) == firearm


def test_load_truth_reads_file_and_firearm_and_ignores_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("file,firearm,notes\nsub/a.x3p,G1,x\nb.x3p,G2,\n,G3,empty file name\n", encoding="utf-8")
    assert load_truth(path) == {"a.x3p": "G1", "b.x3p": "G2"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("name,gun\nx,y\n", "columns"),
        ("file,firearm\n", "no rows"),
        (b"file,firearm\n\xff\xfe,x\n", "not a readable CSV"),
    ],
)
def test_load_truth_errors_name_the_file(tmp_path: Path, content: str | bytes, reason: str) -> None:
    path = tmp_path / "my-truth.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TruthError, match=reason) as caught:
        load_truth(path)
    assert caught.value.path == str(path) and caught.value.exit_code == 3


def test_missing_truth_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="no such file") as caught:
        load_truth(tmp_path / "absent.csv")
    assert caught.value.path.endswith("absent.csv")


def test_labelled_scans_needs_two_labelled_scans(tmp_path: Path) -> None:
    truth = load_truth(SAMPLE_DATA / "truth.csv")
    scans = labelled_scans(SAMPLE_DATA, truth)
    assert [p.name for p in scans] == sorted(truth)  # the x3p files the table labels; PNGs are not labelled
    with pytest.raises(TruthError, match="fewer than two"):
        labelled_scans(SAMPLE_DATA, {"F01-01.x3p": "F01"})
    with pytest.raises(TruthError, match="not a folder"):
        labelled_scans(tmp_path / "nowhere", truth)


def test_validation_counts_and_errors_follow_the_deciding_count() -> None:
    pairs = [
        PairResult("a", "b", True, cmc=7, cmc_original=7, cmc_high=20, decision="identification", rotation_deg=0.0),
        PairResult("a", "c", True, cmc=5, cmc_original=5, cmc_high=9, decision="inconclusive", rotation_deg=0.0),
        PairResult("b", "c", False, cmc=6, cmc_original=6, cmc_high=1, decision="identification", rotation_deg=0.0),
        PairResult("b", "d", False, cmc=0, cmc_original=0, cmc_high=0, decision="elimination", rotation_deg=0.0),
    ]
    result = Validation(pairs, DecisionParams())
    assert result.counts(True).tolist() == [7, 5] and result.counts(False, "high").tolist() == [1, 0]
    assert result.false_identifications == 1 and result.missed_identifications == 1
    assert result.auc() == pytest.approx(0.75)  # 7 > 6, 7 > 0, 5 > 0, 5 < 6
    assert result.auc("high") == 1.0
    summary = result.to_dict()
    assert summary["known_match"] == {"n": 2, "min": 5, "max": 7, "mean": 6.0, "histogram": {"5": 1, "7": 1}}


def test_validate_separates_same_and_different_firearms_on_the_sample_set(tmp_path: Path) -> None:
    """Generated cases of three firearms (two of them sharing subclass marks): every pair right."""
    truth = load_truth(SAMPLE_DATA / "truth.csv")
    names = ("F01-01.x3p", "F01-02.x3p", "F02-01.x3p", "F03-01.x3p", "F03-02.x3p")
    result = validate([SAMPLE_DATA / n for n in names], truth, workers=2)
    assert len(result.pairs) == 10
    same, different = result.counts(True), result.counts(False)
    assert same.size == 2 and different.size == 8
    assert same.min() >= result.decision.identification_cmc and different.max() <= result.decision.elimination_cmc
    assert result.auc() == 1.0 and result.false_identifications == 0 and result.missed_identifications == 0
    assert all(p.decision == ("identification" if p.same_source else "elimination") for p in result.pairs)
    rows = list(csv.DictReader(write_pairs(result, tmp_path / "pairs.csv").open()))
    assert [(r["reference"], r["questioned"], int(r["cmc"])) for r in rows] == [(p.reference, p.questioned, p.cmc) for p in result.pairs]


def test_pairs_csv_reads_back_and_an_older_one_takes_its_firearms_from_a_truth_table(tmp_path: Path) -> None:
    pairs = [
        PairResult("a.x3p", "b.x3p", True, 7, 7, 20, "identification", 1.5, 0.61, 30, "G1", "G1", "1" * 64, "2" * 64),
        PairResult("a.x3p", "c.x3p", False, 0, 0, 1, "elimination", -3.0, None, 28, "G1", "G2", "1" * 64, "3" * 64),
    ]
    path = write_pairs(Validation(pairs, DecisionParams()), tmp_path / "pairs.csv")
    back = read_pairs(path)
    assert [(p.cmc, p.ccf, p.questioned_firearm, p.questioned_sha256) for p in back] == [
        (7, 0.61, "G1", "2" * 64),
        (0, None, "G2", "3" * 64),
    ]
    older = tmp_path / "older.csv"
    older.write_text(
        "reference,questioned,same_source,cmc,cmc_original,cmc_high,decision,rotation_deg\n"
        "a.x3p,b.x3p,1,7,7,20,identification,1.5\na.x3p,c.x3p,0,0,0,1,elimination,-3.0\n",
        encoding="utf-8",
    )
    from_truth = read_pairs(older, {"a.x3p": "G1", "b.x3p": "G1", "c.x3p": "G2"})
    assert [(p.reference_firearm, p.questioned_firearm, p.reference_sha256) for p in from_truth] == [("G1", "G1", None), ("G1", "G2", None)]
    with pytest.raises(TruthError, match="line 3: same_source disagrees"):
        read_pairs(older, {"a.x3p": "G1", "b.x3p": "G1", "c.x3p": "G1"})
    (tmp_path / "other.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    with pytest.raises(TruthError, match="not a pairs CSV"):
        read_pairs(tmp_path / "other.csv")
