"""Ballistic intelligence between labs: requests sent, partner scans searched on import, leads decided, hits notified.

The flow (docs/exchange.md, "Correlation requests, leads and hits"):

1. :func:`send_request`: a lab sends scans of a case as a ``correlation-request`` bundle.
2. The partner's import stores them as partner exhibits and marks the bundle for correlation in
   the same transaction (:meth:`ballistics.store.Store.add_correlation`); findings bundles with
   scans are marked too unless the import says ``--no-correlate``.
3. :func:`correlate_unfinished`, run by every import after its bundles are in, searches each
   marked bundle's scans against the lab's own collection (class filters applied), stores the
   candidates at or above :data:`LEAD_MIN_CMC` as **leads** together with the mark's change to
   ``searched`` (one transaction: a crash leaves no half-made lead, and the next import finishes
   the job), then answers a request with a signed, encrypted ``correlation-response``.
4. :func:`confirm_lead`: an examiner's confirmation makes a match record (with the LR and the
   conclusion) and a ``hit-notification`` bundle for the partner; :func:`dismiss_lead` records why not;
   :func:`notify_lead` writes a confirmed lead's notification again from its stored record (one
   lost, or never written because the process died after the confirmation's commit).
5. The requester's import records a response against its request and a notification's record
   as a hit (:func:`take_in_answer`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ballistics.calibration import Calibration, default_calibration
from ballistics.characteristics import ClassCharacteristics
from ballistics.clock import format_time, now_utc
from ballistics.errors import BallisticsError, InvalidInputError, SearchError, StoreError, UsageError
from ballistics.leads import PENDING, SEARCHED, Correlation, Lead, ReceivedHit, RequestAnswer, SentRequest
from ballistics.method import DecisionParams
from ballistics.records import ExaminerConclusion, MatchRecord, build_record, write_record
from ballistics.scan import load_scan, sha256_file
from ballistics.search import Executor, LocalExecutor, SearchParams, search
from ballistics.store import Store
from exchange import audit_events as events
from exchange.audit import AuditLog
from exchange.bundle import ExportResult, export_bundle
from exchange.errors import BundleContentError
from exchange.intelligence import (
    Candidate,
    CorrelationRequest,
    CorrelationResponse,
    HitNotification,
    IntelligenceDocument,
    RequestedScan,
    decimal,
)
from exchange.keys import Identity
from exchange.trust import TrustStore

#: A candidate becomes a lead when its CMC count reaches the identification threshold of the
#: method (Song 2013: CMC >= 6; :class:`ballistics.method.DecisionParams`). On the validation sets
#: different-source pairs stay at 0-3 under the deciding (original) rule while same-source pairs
#: reach 11 or more (docs/comparison.md), so a lead is what the method alone would call an
#: identification: an examiner's queue of candidates worth confirming, not a list of near misses,
#: and nothing of the lab's collection below it is disclosed to the partner.
LEAD_MIN_CMC = DecisionParams().identification_cmc


def default_outbox(home: Path) -> Path:
    """Where responses and hit notifications go when no outbox is named: ``<home>/outbox``."""
    return Path(home) / "outbox"


# --- requests --------------------------------------------------------------------------------------


def send_request(
    home: Path,
    store: Store,
    identity: Identity,
    trust: TrustStore,
    output: Path,
    *,
    recipients: Sequence[str],
    scans: Sequence[Path],
    case_id: str,
    exhibit: str | None = None,
    characteristics: ClassCharacteristics = ClassCharacteristics(),
    now: datetime | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> tuple[CorrelationRequest, ExportResult]:
    """Write a correlation request for these scans of ``case_id`` and register it as sent.

    Exhibits are ``exhibit``, ``exhibit-2``, ``exhibit-3``, ... as ``db add`` names them, else each
    file's stem.
    """
    now = (now or now_utc()).replace(microsecond=0)
    if not scans:
        raise UsageError(output, "give at least one --scan")
    if not case_id or len(case_id) > 128 or not case_id.isprintable():
        raise UsageError(case_id, "the case reference is 1-128 printable characters")
    hashes = [sha256_file(p) for p in scans]
    if len(set(hashes)) != len(hashes):
        raise BundleContentError(output, "the same scan is given twice")
    names = [(exhibit if i == 1 else f"{exhibit}-{i}") if exhibit else Path(p).stem for i, p in enumerate(scans, 1)]
    request = CorrelationRequest(
        request_id=rng(16).hex(),
        lab=identity.card.lab.id,
        case_id=case_id,
        scans=tuple(RequestedScan(sha, name[:128], characteristics) for sha, name in zip(hashes, names, strict=True)),
        created=format_time(now),
    )
    result = export_bundle(home, identity, trust, output, recipients=recipients, scans=scans, document=request, now=now)
    store.add_sent_request(
        SentRequest(
            request.request_id,
            result.manifest.bundle_id,
            case_id,
            tuple(dict.fromkeys(recipients)),
            tuple((s.sha256, s.exhibit) for s in request.scans),
            request.created,
        )
    )
    return request, result


# --- correlation of partner scans on import ----------------------------------------------------------


@dataclass(frozen=True)
class CorrelationResult:
    """What the correlation of one partner bundle did: scans searched, against how many exhibits, leads, response."""

    sender: str
    bundle_id: str
    request_id: str | None
    scans: int
    collection_size: int
    leads: tuple[Lead, ...]
    response: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "bundle_id": self.bundle_id,
            "request_id": self.request_id,
            "scans": self.scans,
            "collection_size": self.collection_size,
            "leads": [lead.id for lead in self.leads],
            "response": self.response,
        }


def correlate_unfinished(
    home: Path,
    store: Store,
    identity: Identity,
    trust: TrustStore,
    outbox: Path,
    *,
    audit: AuditLog | None = None,
    now: datetime | None = None,
    executor: Executor | None = None,
    calibration: Calibration | None = None,
) -> list[CorrelationResult]:
    """Search every partner bundle marked for correlation and not yet done, and answer each request.

    A correlation killed before its leads were stored is still ``pending`` and searched again; one
    whose response was not written yet is answered from its stored leads.
    """
    now = now or now_utc()
    loaded: list[Calibration] = [calibration] if calibration is not None else []

    def calibration_of() -> Calibration:
        """The lab's calibration, read once and only when a candidate needs its LR."""
        if not loaded:
            loaded.append(default_calibration(Path(home)))
        return loaded[0]

    results = []
    for correlation in store.correlations(unfinished=True):
        found: tuple[Lead, ...] = ()
        size = correlation.collection_size or 0
        if correlation.state == PENDING:
            leads, size = _search(store, correlation, now, executor or LocalExecutor(1), calibration_of)
            found = tuple(store.finish_search(correlation, leads, size, format_time(now)))
            if audit is not None:
                audit.append(
                    events.CORRELATION_SEARCHED,
                    {
                        "bundle_id": correlation.bundle_id,
                        "partner": correlation.sender_lab,
                        "request_id": correlation.request_id,
                        "scans": list(correlation.scans),
                        "collection_size": size,
                        "leads": [lead.id for lead in found],
                    },
                )
                for lead in found:
                    audit.append(events.LEAD_FOUND, _lead_event(lead))
        response = None
        if correlation.request_id is not None:
            response = str(_answer(home, store, identity, trust, correlation, size, outbox, now, audit))
        store.set_answered(correlation.sender_lab, correlation.bundle_id, response)
        results.append(
            CorrelationResult(
                correlation.sender_lab, correlation.bundle_id, correlation.request_id, len(correlation.scans), size, found, response
            )
        )
    return results


def _search(
    store: Store, correlation: Correlation, now: datetime, executor: Executor, calibration: Callable[[], Calibration]
) -> tuple[list[Lead], int]:
    """Leads of one bundle's scans against the lab's own exhibits; and the most exhibits one scan was searched against."""
    from ballistics.likelihood_ratio import likelihood_ratio

    leads: list[Lead] = []
    size = 0
    for sha in correlation.scans:
        partner = store.by_sha256(sha)
        if partner is None or not partner.partner:  # the scan is one of ours after all: nothing to correlate
            continue
        traits = partner.characteristics
        params = SearchParams(calibre=traits.calibre, firing_pin_shape=traits.firing_pin_shape, own_only=True)
        try:
            result = search(store, load_scan(partner.path), params, executor)
        except SearchError:  # no exhibit of ours passes the class filters
            continue
        size = max(size, result.searched)
        for hit in result.candidates:
            if hit.cmc < LEAD_MIN_CMC:
                continue
            try:
                statement: dict[str, Any] | None = likelihood_ratio(calibration(), hit.comparison).to_dict()
            except BallisticsError:  # e.g. a comparison the calibration cannot score: the lead stands on its CMC
                statement = None
            ours = hit.exhibit
            leads.append(
                Lead(
                    sender_lab=correlation.sender_lab,
                    bundle_id=correlation.bundle_id,
                    request_id=correlation.request_id,
                    partner_case=partner.case,
                    partner_exhibit=partner.exhibit,
                    partner_sha256=sha,
                    our_lab=ours.lab,
                    our_case=ours.case,
                    our_exhibit=ours.exhibit,
                    our_sha256=ours.sha256,
                    cmc=hit.cmc,
                    ccf=hit.score,
                    log10_lr=None if statement is None else float(statement["log10_lr"]),
                    likelihood_ratio=statement,
                    comparison=hit.comparison,
                    found=format_time(now),
                )
            )
    return leads, size


def _answer(
    home: Path,
    store: Store,
    identity: Identity,
    trust: TrustStore,
    correlation: Correlation,
    size: int,
    outbox: Path,
    now: datetime,
    audit: AuditLog | None,
) -> Path:
    """Write the correlation response of a searched request, from its stored leads."""
    assert correlation.request_id is not None and correlation.state in (PENDING, SEARCHED)
    leads = store.leads(sender_lab=correlation.sender_lab, bundle_id=correlation.bundle_id)
    response = CorrelationResponse(
        request_id=correlation.request_id,
        bundle_id=correlation.bundle_id,
        requester=correlation.sender_lab,
        responder=identity.card.lab.id,
        searched=correlation.scans,
        collection_size=size,
        candidates=tuple(
            Candidate(lead.partner_sha256, lead.our_case, lead.our_exhibit, lead.cmc, decimal(lead.ccf), decimal(lead.log10_lr))
            for lead in leads
        ),
        answered=format_time(now),
    )
    output = _write(home, identity, trust, response, correlation.sender_lab, outbox, now)
    if audit is not None:
        audit.append(
            events.RESPONSE_SENT,
            {
                "request_id": response.request_id,
                "bundle_id": correlation.bundle_id,
                "partner": correlation.sender_lab,
                "collection_size": size,
                "candidates": len(response.candidates),
                "path": str(output),
            },
        )
    return output


def _write(
    home: Path,
    identity: Identity,
    trust: TrustStore,
    document: IntelligenceDocument,
    to: str,
    outbox: Path,
    now: datetime,
    records: Sequence[Path] = (),
) -> Path:
    outbox.mkdir(parents=True, exist_ok=True)
    output = outbox / f"{document.member.removesuffix('.json')}-{identity.card.lab.id}-to-{to}.bfx"
    export_bundle(home, identity, trust, output, recipients=[to], records=records, document=document, now=now)
    return output


def _lead_event(lead: Lead) -> dict[str, Any]:
    return {
        "lead": lead.id,
        "partner": lead.sender_lab,
        "partner_case": lead.partner_case,
        "partner_exhibit": lead.partner_exhibit,
        "partner_sha256": lead.partner_sha256,
        "case": lead.our_case,
        "exhibit": lead.our_exhibit,
        "sha256": lead.our_sha256,
        "cmc": lead.cmc,
        "log10_lr": decimal(lead.log10_lr),
        "bundle_id": lead.bundle_id,
        "request_id": lead.request_id,
    }


# --- leads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmedLead:
    lead: Lead
    record: MatchRecord
    notification: Path


def confirm_lead(
    home: Path,
    store: Store,
    identity: Identity,
    trust: TrustStore,
    lead_id: int,
    outbox: Path,
    *,
    examiner: str,
    conclusion: ExaminerConclusion | None = None,
    reviewer: str | None = None,
    record_file: Path | None = None,
    now: datetime | None = None,
    committed: Callable[[Lead, MatchRecord], None] | None = None,
) -> ConfirmedLead:
    """The examiner's confirmation: a match record stored with its comparison, and a hit notification to the partner.

    The lead's status changes from ``new`` in the transaction that stores the record, so a lead
    is confirmed (or dismissed) once: a second confirmation is a :class:`UsageError`. The
    notification is written after that commit, and ``committed`` (the command's audit of the
    confirmation) is called between the two: when writing the notification fails, the lead stays
    confirmed and on record without one, the failure is an :class:`InvalidInputError` naming
    :func:`notify_lead`'s command, which writes it.
    """
    now = (now or now_utc()).replace(microsecond=0)
    lead = store.lead(lead_id)
    _check_new(lead)
    ours = store.by_sha256(lead.our_sha256)
    partner = store.by_sha256(lead.partner_sha256)
    if ours is None or partner is None:
        raise UsageError(f"lead {lead_id}", "one of its exhibits was removed from the collection since the lead was found")
    record = build_record(
        lead.comparison,
        lab=identity.card.lab,
        case_id=lead.our_case,
        exhibits=(lead.our_exhibit, f"{lead.sender_lab}:{lead.partner_case}/{lead.partner_exhibit}"[:128]),
        examiner={"name": examiner},
        class_characteristics=ours.characteristics.to_dict() or None,
        likelihood_ratio=lead.likelihood_ratio,
        examiner_conclusion=conclusion,
        reviewer=None if reviewer is None else {"name": reviewer},
        created=now,
    )
    with store.transaction(immediate=True) as conn:
        if not store.decide_lead(
            lead_id, "confirmed", decided=format_time(now), examiner=examiner, reason=None, record_id=record["record_id"], conn=conn
        ):
            _check_new(store.lead(lead_id, conn=conn))
        comparison_id = store.add_comparison(lead.comparison, ours.path, partner.path, conn=conn)
        store.add_record(record, comparison_id=comparison_id, conn=conn)
    confirmed = store.lead(lead_id)
    if committed is not None:
        committed(confirmed, record)
    try:
        output = _notify(home, store, identity, trust, confirmed, record, outbox, now)
    except OSError as exc:
        raise InvalidInputError(
            str(outbox),
            f"lead {lead_id} is confirmed and its record {record['record_id']} stored, but the hit notification could not be "
            f"written ({exc.strerror or exc}): write it with `ballistics leads notify {lead_id} --outbox DIR`",
        ) from exc
    if record_file is not None:
        write_record(record, record_file)
    return ConfirmedLead(store.lead(lead_id), record, output)


def notify_lead(
    home: Path, store: Store, identity: Identity, trust: TrustStore, lead_id: int, outbox: Path, *, now: datetime | None = None
) -> ConfirmedLead:
    """Write the hit notification of a confirmed lead again, from the match record stored with the confirmation.

    For a confirmation whose notification was never written (the process died after the commit,
    the outbox refused the file) or was lost on its way. The notification is the one the
    confirmation made (same record, examiner and time) in a new bundle; the partner's import
    takes a notification it already has without storing anything twice. A lead that is not
    confirmed is a :class:`UsageError`.
    """
    lead = store.lead(lead_id)
    if lead.status != "confirmed" or lead.record_id is None:
        state = f"was {_decision(lead)}" if lead.decided else f"is {lead.status}"
        raise UsageError(f"lead {lead.id}", f"the lead {state}: only a confirmed lead has a hit notification to send")
    record = store.record(lead.record_id)
    if record is None:
        raise StoreError(f"lead {lead.id}", f"its match record {lead.record_id} is no longer in the store")
    output = _notify(home, store, identity, trust, lead, record, outbox, (now or now_utc()).replace(microsecond=0))
    return ConfirmedLead(store.lead(lead_id), record, output)


def _notify(
    home: Path, store: Store, identity: Identity, trust: TrustStore, lead: Lead, record: MatchRecord, outbox: Path, now: datetime
) -> Path:
    """Write the hit notification of a confirmed lead, with its match record, for the partner; note its path on the lead."""
    assert lead.status == "confirmed" and lead.examiner is not None and lead.decided is not None
    notification = HitNotification(
        bundle_id=lead.bundle_id,
        request_id=lead.request_id,
        scan_sha256=lead.partner_sha256,
        case_id=lead.our_case,
        exhibit=lead.our_exhibit,
        record_id=record["record_id"],
        log10_lr=decimal(lead.log10_lr),
        examiner=lead.examiner,
        confirmed=lead.decided,
    )
    with tempfile.TemporaryDirectory(prefix=".hit-") as tmp:
        source = write_record(record, Path(tmp) / f"{record['record_id']}.json")
        output = _write(home, identity, trust, notification, lead.sender_lab, outbox, now, records=[source])
    store.set_lead_notification(lead.id, str(output))
    return output


def dismiss_lead(store: Store, lead_id: int, reason: str, *, examiner: str | None = None, now: datetime | None = None) -> Lead:
    """Record why a lead is not a hit; like a confirmation, once."""
    if not reason.strip():
        raise UsageError("--reason", "say why the lead is dismissed")
    with store.transaction(immediate=True) as conn:
        if not store.decide_lead(
            lead_id, "dismissed", decided=format_time(now or now_utc()), examiner=examiner, reason=reason, record_id=None, conn=conn
        ):
            _check_new(store.lead(lead_id, conn=conn))
    return store.lead(lead_id)


def _check_new(lead: Lead) -> None:
    if lead.status != "new":
        raise UsageError(
            f"lead {lead.id}",
            f"already {_decision(lead)}; a lead is decided once",
        )


def _decision(lead: Lead) -> str:
    """How a decided lead was decided, for a refusal: its status, when and by whom."""
    return f"{lead.status} on {lead.decided}" + (f" by {lead.examiner}" if lead.examiner else "")


# --- answers received --------------------------------------------------------------------------------


def take_in_answer(store: Store, sender: str, bundle_id: str, document: IntelligenceDocument, now: datetime, conn: Any) -> bool:
    """Record a response against our request, or a notification's hit, in the import's transaction; False if already known."""
    if isinstance(document, CorrelationResponse):
        answer = RequestAnswer(sender, bundle_id, document.collection_size, len(document.candidates), document.to_dict(), format_time(now))
        return store.add_request_answer(document.request_id, answer, conn=conn)
    assert isinstance(document, HitNotification)
    hit = ReceivedHit(
        document.record_id,
        sender,
        document.bundle_id,
        document.request_id,
        document.scan_sha256,
        document.case_id,
        document.exhibit,
        document.log10_lr,
        document.examiner,
        format_time(now),
    )
    return store.add_received_hit(hit, conn=conn)
