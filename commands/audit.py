"""``audit``: the lab's tamper-evident log (exchange/audit.py, exchange/audit_verify.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from commands.common import JsonOpt, add_row, emit_json, note, print_rows, print_table, state, table

audit_app = typer.Typer(
    help="The lab's hash-chained, signed log of comparisons, exchanges, key events and trust changes.", no_args_is_help=True
)


@audit_app.command("verify")
def audit_verify(
    json_out: JsonOpt = False,
    expect_fingerprint: Annotated[
        str | None,
        typer.Option(help="The lab identity you expect (fingerprint obtained independently): its chain must hold it, or exit 4."),
    ] = None,
    accept_unsigned_tail: Annotated[
        bool,
        typer.Option(
            "--accept-unsigned-tail",
            help="Accept lines after the last head signature, and (with an audit key) put the acceptance on record and sign over it.",
        ),
    ] = False,
) -> None:
    """Check the whole chain (links, sequence numbers, key certificates, head signatures); exit 4 where it breaks.

    Says how far the log is proven and by which key. Lines after the last valid head signature
    are a failure unless --accept-unsigned-tail.
    """
    from exchange.audit import AuditLog
    from exchange.audit_verify import verify_log
    from exchange.card import parse_fingerprint

    expected = parse_fingerprint(expect_fingerprint, where="--expect-fingerprint") if expect_fingerprint is not None else None
    report = verify_log(state.home, expect_fingerprint=expected, accept_unsigned_tail=accept_unsigned_tail)
    doc = report.to_dict()
    accepted = AuditLog(state.home).accept_tail() if accept_unsigned_tail and report.intact and report.unsigned_tail else None
    doc["tail_accepted_at_line"] = accepted.line - 1 if accepted is not None else None
    if json_out:
        emit_json(doc)
    else:
        keys = ("status", "lines", "events", "heads", "signed_through_line", "unsigned_tail", "last_sha256")
        print_rows(doc["path"], [(k, str(doc[k])) for k in keys])
        if report.problems:
            problems = table("problems", ("line", "kind", "what is wrong"), keep=("line", "kind"), fold=("what is wrong",))
            for problem in report.problems:
                add_row(problems, str(problem.line), problem.kind, problem.message)
            print_table(problems)
    proven = report.proven_by
    if not json_out and report.intact:  # (the JSON document holds proven_by; a broken log's error line says where)
        note(
            f"no line of the {report.lines} is proven by a head signature"
            if proven is None
            else f"proven through line {report.signed_through} of {report.lines} by audit key {proven['audit_key']}, "
            f"certified by identity {proven['identity']} of lab {proven['lab']}"
        )
    if accepted is not None:
        note(f"accepted lines {report.signed_through + 1}..{report.lines} unproven, on record at line {accepted.line - 1}, and signed over")
    elif report.unsigned_tail and report.intact:
        note(f"note: the last {report.unsigned_tail} lines are accepted without a head signature")
    report.raise_if_broken()


@audit_app.command("show")
def audit_show(
    since: Annotated[
        str | None, typer.Option(help="Only events at or after this UTC date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the logged events (signatures and certificates abbreviated to their key ids)."""
    from rich.text import Text

    from exchange.audit import AuditLog, parse_since

    cutoff = parse_since(since) if since is not None else None
    entries = [e for e in AuditLog(state.home).entries() if cutoff is None or e.time >= cutoff]
    if json_out:
        emit_json({"events": [e.to_dict() for e in entries]})
        return
    listing = table(
        f"audit log of {state.home}", ("line", "time", "type", "lab / user", "details"), keep=("line", "time", "type"), fold=("details",)
    )
    for entry in entries:
        actor = entry.record["actor"]
        details = json.dumps(entry.to_dict()["details"], separators=(",", ":"))
        add_row(
            listing,
            str(entry.line),
            entry.record["time"],
            entry.type,
            Text(f"{actor.get('lab') or '-'} / {actor.get('examiner') or actor.get('user')}"),
            Text(details if len(details) <= 240 else details[:239] + "…"),
        )
    print_table(listing)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
