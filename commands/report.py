"""``report``: a court report of a match record (HTML, PDF), signed; and ``report verify`` (ballistics/report*.py, exchange/report_signature.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer._click.core import Context
from typer.core import TyperGroup

from commands.common import DbUrlOpt, JsonOpt, audit, emit_json, note, open_store, out, passphrase, state, visible
from exchange import audit_events as events

if TYPE_CHECKING:
    from ballistics.calibration import Calibration
    from ballistics.records import MatchRecord
    from ballistics.store import Store

DEFAULT_COMMAND = "make"


class _DefaultCommand(TyperGroup):
    """``report RECORD ...`` is ``report make RECORD ...``; ``report verify ...`` is the subcommand."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


report_app = typer.Typer(
    cls=_DefaultCommand,
    help="Court reports of match records: `report RECORD_OR_ID -o report.html [--pdf report.pdf] [--sign]`, and `report verify`.",
    no_args_is_help=True,
)


def resolve_record(argument: str, store: Store) -> tuple[MatchRecord, Path | None, str]:
    """A record named by its file or by its id in the collection: the record, its file (if any) and how the report names its source."""
    from ballistics.errors import RecordError
    from ballistics.records import load_record

    path = Path(argument)
    if path.exists():
        return load_record(path), path, f"the file {path.name}"
    record = store.record(argument)
    if record is None:
        raise RecordError(argument, "neither a record file nor the id of a record in the collection")
    return record, None, "the collection"


def calibration_candidates(given: Path | None) -> list[Any]:
    """Loaders of the calibrations a record's LR may name: the one given, the home's, the packaged default."""
    from ballistics.calibration import HOME_FILE, default_calibration, load_calibration

    loaders: list[Any] = []
    if given is not None:
        loaders.append(lambda: load_calibration(given))
    if (state.home / HOME_FILE).is_file():
        loaders.append(lambda: load_calibration(state.home / HOME_FILE))

    def packaged() -> Calibration:
        return default_calibration(None)

    loaders.append(packaged)
    return loaders


@report_app.command(DEFAULT_COMMAND)
def make(
    record: Annotated[
        str, typer.Argument(metavar="RECORD_OR_ID", help="A match record (JSON file) or the id of a record in the collection.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="The report to write (self-contained HTML).")],
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Also print it to this PDF (A4, headless Chromium).")] = None,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign",
            help="Sign the report's SHA-256 (and the PDF's) with the lab's key into REPORT.sig (passphrase from a prompt or BALLISTICS_PASSPHRASE).",
        ),
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration", help="The calibration the record's LR names, when it is neither HOME/calibration.json nor the packaged one."
        ),
    ] = None,
    db_url: DbUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the court report of a match record: lab, case, exhibits, question and propositions, method, results, LR, conclusion, figures and hashes.

    The figures are drawn again from the scans (found by SHA-256 in the collection, at the path
    the record names, or beside the record file); without them the report says so.
    """
    from ballistics.files import write_atomic
    from ballistics.report import assemble_report
    from ballistics.report_html import comparison_view_section, render_report

    store = open_store(db_url)
    doc, record_file, source = resolve_record(record, store)
    identity = None
    if sign:  # the passphrase before the work, so a wrong one costs nothing
        from exchange.keys import load_identity

        identity = load_identity(state.home, passphrase())
        identity.require_usable(str(output))
    report = assemble_report(
        doc, record_source=source, record_file=record_file, stored_scan=store.stored_scan, calibrations=calibration_candidates(calibration)
    )
    view = comparison_view_section(report)
    html = render_report(report, () if view is None else (view,))
    write_atomic(output, html)
    report_sha256 = hashlib.sha256(html).hexdigest()
    written: dict[str, dict[str, str] | None] = {"report": {"path": str(output), "sha256": report_sha256}, "pdf": None}
    if pdf is not None:
        from ballistics.report_pdf import print_pdf

        print_pdf(output, pdf)
        written["pdf"] = {"path": str(pdf), "sha256": hashlib.sha256(pdf.read_bytes()).hexdigest()}
    signed: list[str] = []
    if identity is not None:
        from exchange.report_signature import sign_report, signature_path

        for target in (output, pdf):
            if target is not None:
                signature = sign_report(
                    identity, target.read_bytes(), name=target.name, record_id=doc["record_id"], record_sha256=report.record_sha256
                )
                signed.append(str(write_atomic(signature_path(target), signature)))
    audit(
        (
            events.REPORT,
            {
                "record_id": doc["record_id"],
                "record_sha256": report.record_sha256,
                **written,
                "figures": [figure.sha256 for figure in report.figures],
                "signed": signed,
            },
        ),
        identity=identity,
    )
    summary = {
        **written,
        "record_id": doc["record_id"],
        "record_sha256": report.record_sha256,
        "figures": [{"title": f.title, "sha256": f.sha256} for f in report.figures],
        "figures_note": report.figures_note,
        "calibration_note": report.calibration_note,
        "signatures": signed,
    }
    if json_out:
        emit_json(summary)
        return
    note(f"wrote {output} (SHA-256 {report_sha256}), {len(report.figures)} figures")
    for remark in (report.figures_note, report.calibration_note):
        if remark:
            note(f"note: {remark}")
    if pdf is not None:
        note(f"wrote {pdf}")
    for path in signed:
        note(f"wrote {path}")


@report_app.command("verify")
def verify(
    report: Annotated[Path, typer.Argument(help="The report (HTML or PDF) to check.")],
    signature: Annotated[Path | None, typer.Option("--signature", help="Its detached signature [default: REPORT.sig].")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check that a report came unaltered from a lab: its signature against this lab's keys and trusted partner cards (exit 4 if not)."""
    from ballistics.errors import InvalidInputError
    from ballistics.files import read_bounded
    from ballistics.scan import sha256_file
    from exchange.report_signature import MAX_SIGNATURE_BYTES, signature_path, verify_report

    signature = signature or signature_path(report)
    try:
        digest = sha256_file(report)
        signed = read_bounded(signature, MAX_SIGNATURE_BYTES + 1)
    except OSError as exc:
        raise InvalidInputError(exc.filename or report, f"cannot read: {exc.strerror}") from None
    result = verify_report(state.home, digest, signed, where=str(report))
    if json_out:
        emit_json({"verified": True, **result.to_dict()})
        return
    lab = result.lab
    line = (
        f"{report}: signed by {lab.name} ({lab.id}, {lab.country}) at {result.signed_at}, key {result.fingerprint} "
        f"({result.via}); record {result.record_id}; SHA-256 {result.report_sha256}"
    )
    out().print(visible(line), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
