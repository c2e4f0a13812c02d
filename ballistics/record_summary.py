"""What a listing of match records shows of each: who, which case and exhibits, the algorithm's
result, the likelihood ratio with its words, and the examiner's own conclusion.

A :class:`RecordSummary` is read from a validated record of either schema version (version 1
kept the examiner's AFTE category in ``conclusion`` and could carry a bare, uncalibrated
``scores.likelihood_ratio``; :func:`ballistics.records.examiner_conclusion`). The full record is
``records show``'s; this is one row of ``records list``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ballistics.labs import Lab
from ballistics.records import examiner_conclusion


@dataclass(frozen=True)
class StatedLR:
    """A record's likelihood ratio as a reader is given it: never the number alone.

    ``log10_lr`` is the base-10 logarithm of the LR (same source against different sources).
    ``category`` and ``supports`` are its verbal equivalent on the scale the record names
    (``scale``); a version-1 number names no calibration and no verbal equivalent
    (``calibrated`` false).
    """

    log10_lr: float
    calibrated: bool
    category: str | None = None
    supports: str | None = None
    scale: str | None = None

    def text(self) -> str:
        """One line: the verbal category and the proposition it supports, then the number."""
        if not self.calibrated:
            return f"{10**self.log10_lr:g}, uncalibrated (version-1 record: no calibration, no verbal equivalent)"
        words = "supports neither proposition" if self.supports == "neither" else f"{self.category} support for {self.supports}"
        return f"{words} (log10 LR {self.log10_lr:+.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "log10_lr": self.log10_lr,
            "calibrated": self.calibrated,
            "category": self.category,
            "supports": self.supports,
            "scale": self.scale,
            "text": self.text(),
        }


def stated_lr(record: Mapping[str, Any]) -> StatedLR | None:
    """The LR a (validated) record states, if any: the version-2 block, else a version-1 bare number."""
    block = record.get("likelihood_ratio")
    if block is not None:
        verbal = block["verbal"]
        return StatedLR(float(block["log10_lr"]), True, verbal["category"], verbal["supports"], verbal["scale"])
    bare = record["scores"].get("likelihood_ratio")
    if bare is not None and bare > 0:
        return StatedLR(math.log10(bare), False)
    return None


@dataclass(frozen=True)
class RecordSummary:
    """One match record as ``records list`` shows it; ``partner``: made by a partner lab and imported."""

    record_id: str
    schema_version: int
    lab: Lab
    partner: bool
    case: str
    exhibits: tuple[str, str]  # reference, questioned
    decision: str  # the algorithm's
    cmc: int
    likelihood_ratio: StatedLR | None
    examiner_afte: str | None  # the examiner's AFTE category
    examiner_verbal: str | None  # the examiner's verbal category, e.g. "strong support, same source"
    examiner: str
    reviewer: str | None
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "schema_version": self.schema_version,
            "lab": self.lab.to_dict(),
            "partner": self.partner,
            "case": self.case,
            "exhibits": {"reference": self.exhibits[0], "questioned": self.exhibits[1]},
            "decision": self.decision,
            "cmc": self.cmc,
            "likelihood_ratio": None if self.likelihood_ratio is None else self.likelihood_ratio.to_dict(),
            "examiner_conclusion": {"afte_category": self.examiner_afte, "verbal": self.examiner_verbal},
            "examiner": self.examiner,
            "reviewer": self.reviewer,
            "created": self.created,
        }

    @property
    def conclusion_text(self) -> str:
        """The examiner's conclusion in words, or that the record states none."""
        said = [text for text in (self.examiner_afte, self.examiner_verbal) if text]
        return "; ".join(said) if said else "none stated"


def summarize(record: Mapping[str, Any], *, partner: bool) -> RecordSummary:
    """The summary of a validated record of either version."""
    mine = examiner_conclusion(record)
    verbal = mine.get("verbal")
    return RecordSummary(
        record_id=record["record_id"],
        schema_version=int(record["schema_version"]),
        lab=Lab.from_dict(record["lab"]),
        partner=partner,
        case=record["case_id"],
        exhibits=(record["exhibits"]["reference"], record["exhibits"]["questioned"]),
        decision=record["conclusion"]["decision"],
        cmc=int(record["scores"]["cmc"]),
        likelihood_ratio=stated_lr(record),
        examiner_afte=mine.get("afte_category"),
        examiner_verbal=None if verbal is None else f"{verbal['category']} support, {verbal['supports']}",
        examiner=record["examiner"]["name"],
        reviewer=record["reviewer"]["name"] if "reviewer" in record else None,
        created=record["created"],
    )
