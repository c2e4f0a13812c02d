"""``request`` and ``leads``: correlation requests to partner labs, and the leads partner scans find in the collection."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commands.bundles import export_event
from commands.collection import ShapeOpt
from commands.common import JsonOpt, add_row, audit, emit_json, note, open_store, passphrase, print_rows, print_table, state, table
from commands.comparison import Afte, VerbalOpinion, examiner_conclusion
from exchange import audit_events as events

if TYPE_CHECKING:
    from ballistics.leads import Lead
    from ballistics.records import MatchRecord
    from exchange.correlate import ConfirmedLead

request_app = typer.Typer(
    help="Correlation requests: ask partner labs to search scans of a case against their collections.", no_args_is_help=True
)
leads_app = typer.Typer(
    help="Leads: exhibits of this lab that partners' scans identified, for an examiner to confirm or dismiss.", no_args_is_help=True
)

OutboxOpt = Annotated[Path | None, typer.Option("--outbox", help="Where the hit notification is written [default: <home>/outbox].")]


@request_app.command("export")
def request_export(
    to: Annotated[list[str], typer.Option("--to", help="Partner lab id (trusted, unrevoked); repeat for several.")],
    scan: Annotated[list[Path], typer.Option("--scan", help="Scan (x3p) to search; repeat.")],
    case: Annotated[str, typer.Option("--case", help="This lab's case reference.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The request bundle to write (.bfx).")],
    exhibit: Annotated[
        str | None, typer.Option("--exhibit", help="Exhibit id of the first scan (the next get -2, -3, ...) [default: file names].")
    ] = None,
    calibre: Annotated[str | None, typer.Option(help="Calibre, e.g. 9mm Luger: partners search only exhibits of this calibre.")] = None,
    firing_pin_shape: ShapeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign and encrypt a correlation request: scans of a case for partners to search against their collections."""
    from ballistics.characteristics import ClassCharacteristics
    from exchange.correlate import send_request
    from exchange.keys import load_identity
    from exchange.trust import TrustStore

    identity = load_identity(state.home, passphrase())
    request, result = send_request(
        state.home,
        open_store(),
        identity,
        TrustStore.open(state.home),
        output,
        recipients=to,
        scans=scan,
        case_id=case,
        exhibit=exhibit,
        characteristics=ClassCharacteristics(calibre, firing_pin_shape),
    )
    doc = result.manifest.to_dict()
    audit(
        export_event(result),
        (
            events.REQUEST_SENT,
            {"bundle_id": doc["bundle_id"], "recipients": list(to), "path": str(result.path), "request": request.to_dict()},
        ),
        identity=identity,
    )
    if json_out:
        emit_json({"request": request.to_dict(), "bundle_id": doc["bundle_id"], "path": str(result.path)})
        return
    note(f"wrote {result.path}: request {request.request_id} for case {case}, {len(request.scans)} scan(s), to {', '.join(to)}")


@request_app.command("list")
def request_list(json_out: JsonOpt = False) -> None:
    """The correlation requests this lab sent, with their status: sent, answered (no candidate) or hits."""
    requests = open_store().sent_requests()
    if json_out:
        emit_json({"requests": [r.to_dict() for r in requests]})
        return
    listing = table(
        f"{len(requests)} correlation requests",
        ("request", "case", "scans", "to", "status", "answers"),
        keep=("request", "scans", "status"),
        fold=("case", "to", "answers"),
    )
    for r in requests:
        answers = "; ".join(
            [f"{a.responder_lab}: {a.candidates} candidate(s) among {a.collection_size} exhibits" for a in r.answers]
            + [f"hit confirmed by {h.partner_lab}: {h.partner_case}/{h.partner_exhibit}" for h in r.hits]
        )
        add_row(listing, r.request_id[:8], r.case_id, str(len(r.scans)), ", ".join(r.recipients), r.status, answers or "-")
    print_table(listing)


@leads_app.command("list")
def leads_list(
    status: Annotated[str | None, typer.Option("--status", help="Only leads of this status: new, confirmed or dismissed.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Leads: partner scans that identified an exhibit of this lab, newest decisions last."""
    from ballistics.errors import UsageError
    from ballistics.leads import LEAD_STATUSES

    if status is not None and status not in LEAD_STATUSES:
        raise UsageError("--status", f"one of {', '.join(LEAD_STATUSES)}")
    found = open_store().leads(status)
    if json_out:
        emit_json({"leads": [lead.to_dict() for lead in found]})
        return
    listing = table(
        f"{len(found)} leads",
        ("#", "partner case/exhibit", "our case/exhibit", "CMC", "log10 LR", "status"),
        keep=("#", "CMC", "log10 LR", "status"),
        fold=("partner case/exhibit", "our case/exhibit"),
    )
    for lead in found:
        add_row(
            listing,
            str(lead.id),
            f"{lead.sender_lab} {lead.partner_case}/{lead.partner_exhibit}",
            f"{lead.our_case}/{lead.our_exhibit}",
            str(lead.cmc),
            "-" if lead.log10_lr is None else f"{lead.log10_lr:+.2f}",
            lead.status,
        )
    print_table(listing)


@leads_app.command("show")
def leads_show(lead_id: Annotated[int, typer.Argument(help="The lead's number (leads list).")], json_out: JsonOpt = False) -> None:
    """One lead: both exhibits, the scores, the likelihood ratio, and what was decided."""
    lead = open_store().lead(lead_id)
    if json_out:
        emit_json({**lead.to_dict(), "likelihood_ratio": lead.likelihood_ratio})
        return
    print_rows(f"lead {lead.id}", _rows(lead), whole=[("partner scan SHA-256", lead.partner_sha256), ("our scan SHA-256", lead.our_sha256)])


def _rows(lead: Lead) -> list[tuple[str, str]]:
    rows = [
        ("status", lead.status),
        ("partner", f"{lead.sender_lab}: case {lead.partner_case}, exhibit {lead.partner_exhibit}"),
        ("ours", f"{lead.our_lab}: case {lead.our_case}, exhibit {lead.our_exhibit}"),
        ("CMC", str(lead.cmc)),
        ("correlation (ccf)", "-" if lead.ccf is None else f"{lead.ccf:.3f}"),
        ("log10 LR", "-" if lead.log10_lr is None else f"{lead.log10_lr:+.2f}"),
        ("in words", lead.likelihood_ratio["verbal"]["statement"] if lead.likelihood_ratio else "-"),
        ("request", lead.request_id or "- (a findings bundle)"),
        ("found", lead.found),
    ]
    if lead.decided:
        rows.append(("decided", f"{lead.decided} by {lead.examiner or '?'}"))
    rows += [
        (name, value) for name, value in (("reason", lead.reason), ("record", lead.record_id), ("notification", lead.notification)) if value
    ]
    return rows


@leads_app.command("confirm")
def leads_confirm(
    lead_id: Annotated[int, typer.Argument(help="The lead's number (leads list).")],
    examiner: Annotated[str, typer.Option("--examiner", help="The examiner who confirms the identification.")],
    conclusion: Annotated[
        Afte | None, typer.Option(metavar="AFTE", help="The examiner's conclusion on the AFTE range [default: identification].")
    ] = None,
    verbal_conclusion: Annotated[
        VerbalOpinion | None,
        typer.Option(
            metavar="CATEGORY", help="The examiner's conclusion as a verbal LR category of the ENFSI 2015 scale (e.g. strong-same-source)."
        ),
    ] = None,
    reviewer: Annotated[str | None, typer.Option(help="Who made the technical review.")] = None,
    remarks: Annotated[str | None, typer.Option(help="The examiner's remarks.")] = None,
    record: Annotated[Path | None, typer.Option("--record", help="Also write the match record (JSON) here.")] = None,
    outbox: OutboxOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Confirm a lead: a match record with its LR and the conclusion, and a hit notification to the partner lab."""
    from exchange.correlate import confirm_lead, default_outbox
    from exchange.intelligence import decimal
    from exchange.keys import load_identity
    from exchange.trust import TrustStore

    identity = load_identity(state.home, passphrase())
    opinion = examiner_conclusion(conclusion or Afte.identification, verbal_conclusion, remarks)

    def confirmed(lead: Lead, record: MatchRecord) -> None:  # on record even if the notification then fails
        audit(
            (
                events.LEAD_CONFIRMED,
                {"lead": lead.id, "partner": lead.sender_lab, "record_id": record["record_id"], "log10_lr": decimal(lead.log10_lr)},
            ),
            (events.RECORD_ADD, {"record_id": record["record_id"], "case_id": lead.our_case}),
            identity=identity,
            examiner=examiner,
        )

    done = confirm_lead(
        state.home,
        open_store(),
        identity,
        TrustStore.open(state.home),
        lead_id,
        outbox or default_outbox(state.home),
        examiner=examiner,
        conclusion=opinion,
        reviewer=reviewer,
        record_file=record,
        committed=confirmed,
    )
    lead = done.lead
    audit(_notification_sent(done), identity=identity, examiner=examiner)
    if json_out:
        emit_json({"lead": lead.to_dict(), "record": done.record, "notification": str(done.notification)})
        return
    note(
        f"lead {lead.id} confirmed by {examiner}: record {done.record['record_id']}; hit notification for {lead.sender_lab} in {done.notification}"
    )


@leads_app.command("notify")
def leads_notify(
    lead_id: Annotated[int, typer.Argument(help="The lead's number (leads list).")], outbox: OutboxOpt = None, json_out: JsonOpt = False
) -> None:
    """Write a confirmed lead's hit notification again, from its stored match record: when confirm could not write it, or it was lost."""
    from exchange.correlate import default_outbox, notify_lead
    from exchange.keys import load_identity
    from exchange.trust import TrustStore

    identity = load_identity(state.home, passphrase())
    done = notify_lead(state.home, open_store(), identity, TrustStore.open(state.home), lead_id, outbox or default_outbox(state.home))
    audit(_notification_sent(done), identity=identity)
    lead = done.lead
    if json_out:
        emit_json({"lead": lead.to_dict(), "record_id": done.record["record_id"], "notification": str(done.notification)})
        return
    note(f"lead {lead.id}: hit notification of record {done.record['record_id']} for {lead.sender_lab} written to {done.notification}")


def _notification_sent(done: ConfirmedLead) -> tuple[str, dict[str, Any]]:
    """The audit event of a hit notification written (by confirm, or again by notify)."""
    lead = done.lead
    return events.HIT_NOTIFICATION_SENT, {
        "lead": lead.id,
        "partner": lead.sender_lab,
        "record_id": done.record["record_id"],
        "path": str(done.notification),
    }


@leads_app.command("dismiss")
def leads_dismiss(
    lead_id: Annotated[int, typer.Argument(help="The lead's number (leads list).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the lead is not a hit.")],
    examiner: Annotated[str | None, typer.Option("--examiner", help="The examiner who dismisses it.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Dismiss a lead, saying why."""
    from exchange.correlate import dismiss_lead

    lead = dismiss_lead(open_store(), lead_id, reason, examiner=examiner)
    audit((events.LEAD_DISMISSED, {"lead": lead.id, "partner": lead.sender_lab, "reason": reason}), examiner=examiner)
    if json_out:
        emit_json({"lead": lead.to_dict()})
        return
    note(f"lead {lead.id} dismissed: {reason}")


def register(app: typer.Typer) -> None:
    app.add_typer(request_app, name="request")
    app.add_typer(leads_app, name="leads")
