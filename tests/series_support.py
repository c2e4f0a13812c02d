"""Match records with a chosen examiner's conclusion, likelihood ratio and date, for the records and series tests.

The comparison part is the engine's document shape (``test_records.comparison_dict``) with the
scans' SHA-256 chosen by the test; the likelihood-ratio block's verbal equivalent is computed
from its number on the ENFSI scale (:func:`ballistics.verbal.verbal_equivalent`).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from test_records import LR_BLOCK, comparison_dict

from ballistics.labs import Lab
from ballistics.records import AfteCategory, ExaminerConclusion, build_record
from ballistics.verbal import verbal_equivalent


def lr_block(log10_lr: float) -> dict:
    block = copy.deepcopy(LR_BLOCK)
    block.update(log10_lr=log10_lr, interval_log10=[log10_lr - 0.4, log10_lr], bounds_log10=[-4.0, max(6.0, log10_lr)])
    block["verbal"] = verbal_equivalent(log10_lr).to_dict()
    return block


def link_record(
    lab: Lab,
    case: str,
    scans: tuple[str, str],
    exhibits: tuple[str, str] = ("K1", "Q1"),
    *,
    afte: AfteCategory | None = "identification",
    decision: str = "identification",
    log10_lr: float | None = 4.2,
    day: int = 1,
    record_id: str | None = None,
    version: int = 2,
) -> dict:
    """A validated record of ``lab``'s ``case`` comparing the scans of these SHA-256, with the examiner's ``afte`` conclusion.

    ``version`` 1 states the record as version 1 wrote it: the examiner's AFTE category in
    ``conclusion``, and an LR, if any, as a bare number.
    """
    comparison = comparison_dict()
    comparison["reference"] = {"path": f"/cases/{exhibits[0]}.x3p", "sha256": scans[0]}
    comparison["questioned"] = {"path": f"/cases/{exhibits[1]}.x3p", "sha256": scans[1]}
    comparison["decision"] = decision
    record = build_record(
        comparison,
        lab=lab,
        case_id=case,
        exhibits=exhibits,
        examiner={"name": f"Examiner of {lab.id}"},
        likelihood_ratio=None if log10_lr is None or version == 1 else lr_block(log10_lr),
        examiner_conclusion=None if afte is None or version == 1 else ExaminerConclusion(afte_category=afte),
        created=datetime(2026, 1, day, 9, 30, tzinfo=UTC),
        record_id=record_id,
    )
    if version == 1:
        record["schema_version"] = 1
        if afte is not None:
            record["conclusion"]["afte_category"] = afte
        if log10_lr is not None:
            record["scores"]["likelihood_ratio"] = round(10**log10_lr, 3)
    return record
