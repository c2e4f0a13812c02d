"""``bundle``: signed, encrypted exchange with partner labs (exchange/bundle.py, reader.py, importer.py)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commands.common import (
    EXAMINER_ENV,
    JsonOpt,
    add_row,
    audit,
    audit_refusal,
    emit_json,
    note,
    open_store,
    passphrase,
    print_rows,
    print_table,
    progress,
    state,
    table,
)
from exchange import audit_events as events

if TYPE_CHECKING:
    from exchange.bundle import ExportResult
    from exchange.importer import ImportReport

bundle_app = typer.Typer(help="Signed, encrypted bundles of match records and scans for partner labs.", no_args_is_help=True)


def export_event(result: ExportResult) -> tuple[str, dict[str, Any]]:
    """The audit log's ``bundle_export`` event of a bundle written for partners."""
    doc = result.manifest.to_dict()
    return (
        events.BUNDLE_EXPORT,
        {
            "bundle_id": doc["bundle_id"],
            "path": str(result.path),
            "recipients": doc["recipients"],
            "sequence": doc["sequence"],
            "header_hash": result.header_hash,
            "files": [f.to_dict() for f in result.manifest.files],
        },
    )


@bundle_app.command("export")
def bundle_export(
    to: Annotated[list[str], typer.Option("--to", help="Recipient lab id (trusted, unrevoked); repeat for several.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle to write (.bfx).")],
    record: Annotated[list[Path] | None, typer.Option("--record", help="Match record (JSON) of this lab; repeat.")] = None,
    scan: Annotated[list[Path] | None, typer.Option("--scan", help="Scan (x3p); repeat.")] = None,
    lifetime_days: Annotated[int, typer.Option(min=1, max=90, help="Days before the bundle expires (at most 90).")] = 30,
) -> None:
    """Sign and encrypt records and scans to one or more partner labs."""
    from exchange.bundle import ExportOptions, export_bundle
    from exchange.keys import load_identity
    from exchange.trust import TrustStore

    identity = load_identity(state.home, passphrase())
    with progress("encrypting", unit="bytes") as update:
        result = export_bundle(
            state.home,
            identity,
            TrustStore.open(state.home),
            output,
            recipients=to,
            records=record or [],
            scans=scan or [],
            options=ExportOptions(lifetime=timedelta(days=lifetime_days)),
            progress=update,
        )
    audit(export_event(result), identity=identity)
    note(
        f"wrote {result.path}: {len(result.manifest.files)} files, {result.size} bytes, sequence {result.manifest.sequence}, to {', '.join(to)}"
    )


@bundle_app.command("inspect")
def bundle_inspect(bundle: Annotated[Path, typer.Argument(help="A bundle (.bfx).")], json_out: JsonOpt = False) -> None:
    """Show what the header reveals, without any private key."""
    from exchange.errors import MissingIdentityError
    from exchange.keys import load_card
    from exchange.reader import inspect_bundle
    from exchange.trust import TrustStore

    try:
        own = load_card(state.home)
    except MissingIdentityError:
        own = None
    info_doc = inspect_bundle(bundle, TrustStore.open(state.home), own)
    if json_out:
        emit_json(info_doc)
        return
    rows = [(k, str(v)) for k, v in info_doc.items() if k not in ("sender", "recipients")]
    whole = [("sender", f"{info_doc['sender']['lab'] or '?'} key {info_doc['sender']['key_id']}")]
    whole += [("recipient", f"{r['lab'] or '?'} key {r['key_id']}") for r in info_doc["recipients"]]
    print_rows(str(bundle), rows, whole=whole)


@bundle_app.command("verify")
def bundle_verify(bundle: Annotated[Path, typer.Argument(help="A bundle (.bfx).")], json_out: JsonOpt = False) -> None:
    """Decrypt and check everything the import checks (signature, every chunk, file hashes, records), writing nothing."""
    from exchange.keys import load_identity
    from exchange.reader import open_bundle
    from exchange.trust import TrustStore

    identity = load_identity(state.home, passphrase())
    with progress("verifying", quiet=json_out, unit="bytes") as update, audit_refusal(events.BUNDLE_REJECTED, {"path": str(bundle)}):
        verified = open_bundle(bundle, identity, TrustStore.open(state.home), ledger=open_store(), progress=update)
    summary = verified.to_dict()
    if json_out:
        emit_json(summary)
        return
    rows = [
        ("status", "verified"),
        ("sender", f"{summary['sender']['lab']} {summary['sender']['key_id']}"),
        ("recipients", ", ".join(r["lab"] for r in summary["recipients"])),
        ("sequence", str(summary["sequence"])),
        ("created / expires", f"{summary['created']} / {summary['expires']}"),
    ]
    rows += [(f["name"], f"{f['size']} bytes") for f in summary["files"]]
    print_rows(str(bundle), rows, whole=[(f"sha256 {f['name']}", f["sha256"]) for f in summary["files"]])


@bundle_app.command("import")
def bundle_import(
    paths: Annotated[list[Path], typer.Argument(help="Bundles (.bfx) and folders (every *.bfx inside).")],
    json_out: JsonOpt = False,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--outbox",
            help="Write here, for their senders, a signed delivery receipt per imported findings bundle and the correlation "
            "response to each request (responses go to <home>/outbox without it).",
        ),
    ] = None,
    receipt_dir: Annotated[Path | None, typer.Option("--receipt-dir", hidden=True, help="Former name of --outbox.")] = None,
    correlate: Annotated[
        bool,
        typer.Option(
            "--correlate/--no-correlate", help="Search the scans of imported findings bundles against the collection (requests always are)."
        ),
    ] = True,
) -> None:
    """Import partner bundles: verify, refuse replays, store records and scans, search partner scans; quarantine the bad ones."""
    from ballistics.errors import UsageError
    from exchange.audit import Actor, audit_session
    from exchange.importer import import_bundles
    from exchange.keys import load_identity
    from exchange.trust import TrustStore

    if outbox is not None and receipt_dir is not None:
        raise UsageError("--receipt-dir", "give --outbox only (--receipt-dir is its former name)")
    identity = load_identity(state.home, passphrase())
    store = open_store()
    with audit_session(state.home, Actor.current(state.home, os.environ.get(EXAMINER_ENV))) as log:
        log.certify_key(identity)
        with progress("verifying and importing", quiet=json_out) as update:
            report = import_bundles(
                state.home,
                store,
                identity,
                TrustStore.open(state.home),
                paths,
                outbox=outbox or receipt_dir,
                correlate=correlate,
                audit=log,
                progress=update,
            )
    if json_out:
        emit_json(report.to_dict())
    else:
        print_import_report(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def print_import_report(report: ImportReport) -> None:
    from rich.text import Text

    styles = {"imported": "green", "duplicate": "yellow", "not_for_us": "dim", "rejected": "bold red"}
    listing = table(
        f"{len(report.of('imported'))} imported, {len(report.of('duplicate'))} duplicates, "
        f"{len(report.of('not_for_us'))} not for us, {len(report.of('rejected'))} rejected",
        ("bundle", "outcome", "sender #seq", "id", "exit", "what happened"),
        keep=("outcome", "sender #seq", "id", "exit"),
        fold=("bundle", "what happened"),
    )
    for o in report.outcomes:
        outcome = "receipt" if o.kind == "receipt" and o.status == "imported" else o.status.replace("_", " ")
        sender = f"{o.sender or '?'} #{o.sequence if o.sequence is not None else '?'}"
        detail = (
            o.reason
            + (f"; receipt {Path(o.receipt).name}" if o.receipt else "")
            + (f"; {o.no_receipt}" if o.no_receipt else "")
            + (f"; quarantined as {Path(o.quarantine).name}" if o.quarantine else "")
            + (f"; {o.not_moved}" if o.not_moved else "")
        )
        # Partner-supplied text (names, reasons) is data: Text() never interprets it as markup.
        add_row(
            listing,
            Text(o.path.name),
            Text(outcome, style=styles[o.status]),
            Text(sender),
            (o.bundle_id or "-")[:8],
            str(o.exit_code) if o.status == "rejected" else "",
            Text(detail),
        )
    print_table(listing)
    for c in report.correlations:
        what = f"request {c.request_id[:8]}" if c.request_id else f"bundle {c.bundle_id[:8]}"
        leads = f"{len(c.leads)} new lead(s) (ballistics leads list)" if c.leads else "no lead"
        answer = f"; response {Path(c.response).name}" if c.response else ""
        note(f"correlated {what} of {c.sender}: {c.scans} scan(s) against {c.collection_size} exhibit(s), {leads}{answer}")


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
