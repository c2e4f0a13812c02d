"""Ballistic intelligence as the lab keeps it: leads against its collection, its requests and their answers.

The store (:mod:`ballistics.store`) keeps these values in the tables of revision 0006; the
exchange package (:mod:`exchange.correlate`) makes them from partner bundles. A **lead** is a
candidate of the lab's own collection that a partner's scan identified on import: it waits for an
examiner to confirm it (a match record, and a hit notification to the partner) or dismiss it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LeadStatus = Literal["new", "confirmed", "dismissed"]
LEAD_STATUSES: tuple[LeadStatus, ...] = ("new", "confirmed", "dismissed")
#: States of the correlation of one partner bundle: its row is written with the bundle (pending),
#: its leads with ``searched``, and ``answered`` once its response (for a request) is written.
PENDING, SEARCHED, ANSWERED = "pending", "searched", "answered"


@dataclass(frozen=True)
class Lead:
    """A partner's scan and an exhibit of ours that the comparison identified, for an examiner to decide."""

    sender_lab: str
    bundle_id: str
    request_id: str | None
    partner_case: str
    partner_exhibit: str
    partner_sha256: str
    our_lab: str
    our_case: str
    our_exhibit: str
    our_sha256: str
    cmc: int
    ccf: float | None
    log10_lr: float | None
    likelihood_ratio: dict[str, Any] | None = field(repr=False, compare=False)
    comparison: dict[str, Any] = field(repr=False, compare=False)
    found: str
    id: int = 0
    status: LeadStatus = "new"
    decided: str | None = None
    examiner: str | None = None
    reason: str | None = None
    record_id: str | None = None
    notification: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "partner": {"lab": self.sender_lab, "case": self.partner_case, "exhibit": self.partner_exhibit, "sha256": self.partner_sha256},
            "ours": {"lab": self.our_lab, "case": self.our_case, "exhibit": self.our_exhibit, "sha256": self.our_sha256},
            "cmc": self.cmc,
            "ccf": None if self.ccf is None else round(self.ccf, 4),
            "log10_lr": None if self.log10_lr is None else round(self.log10_lr, 3),
            "bundle_id": self.bundle_id,
            "request_id": self.request_id,
            "found": self.found,
            "decided": self.decided,
            "examiner": self.examiner,
            "reason": self.reason,
            "record_id": self.record_id,
            "notification": self.notification,
        }


@dataclass(frozen=True)
class RequestAnswer:
    """A partner's correlation response to one of our requests."""

    responder_lab: str
    bundle_id: str
    collection_size: int
    candidates: int
    document: dict[str, Any] = field(repr=False, compare=False)
    received: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "responder": self.responder_lab,
            "bundle_id": self.bundle_id,
            "collection_size": self.collection_size,
            "candidates": self.document.get("candidates", []),
            "received": self.received,
        }


@dataclass(frozen=True)
class ReceivedHit:
    """A partner's examiner confirmed that one of our scans matches an exhibit of theirs (its record is stored)."""

    record_id: str
    partner_lab: str
    bundle_id: str
    request_id: str | None
    scan_sha256: str
    partner_case: str
    partner_exhibit: str
    log10_lr: str | None
    examiner: str
    received: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "partner": {"lab": self.partner_lab, "case": self.partner_case, "exhibit": self.partner_exhibit},
            "bundle_id": self.bundle_id,
            "request_id": self.request_id,
            "scan_sha256": self.scan_sha256,
            "log10_lr": self.log10_lr,
            "examiner": self.examiner,
            "received": self.received,
        }


@dataclass(frozen=True)
class SentRequest:
    """A correlation request this lab sent, with the answers and hits it has had."""

    request_id: str
    bundle_id: str
    case_id: str
    recipients: tuple[str, ...]
    scans: tuple[tuple[str, str], ...]  # (SHA-256, exhibit)
    created: str
    answers: tuple[RequestAnswer, ...] = ()
    hits: tuple[ReceivedHit, ...] = ()

    @property
    def status(self) -> str:
        """``sent`` until a partner answers, ``answered`` when answered without candidates, ``hits`` once any candidate or hit came back."""
        if self.hits or any(a.candidates for a in self.answers):
            return "hits"
        return "answered" if self.answers else "sent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": self.status,
            "case_id": self.case_id,
            "bundle_id": self.bundle_id,
            "recipients": list(self.recipients),
            "scans": [{"sha256": sha, "exhibit": exhibit} for sha, exhibit in self.scans],
            "created": self.created,
            "answers": [a.to_dict() for a in self.answers],
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass(frozen=True)
class Correlation:
    """The search of one partner bundle's scans against the collection (a request, or findings)."""

    sender_lab: str
    bundle_id: str
    request_id: str | None
    scans: tuple[str, ...]
    state: str = PENDING
    collection_size: int | None = None
    searched: str | None = None
    response: str | None = None
