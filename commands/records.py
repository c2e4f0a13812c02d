"""``records``: the match records of the collection, the lab's own and those imported from partners."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands.common import DbUrlOpt, JsonOpt, add_row, emit_json, open_store, print_rows, print_table, table

records_app = typer.Typer(
    help="The match records of the collection (the lab's own and partners'): list them, show one.", no_args_is_help=True
)


@records_app.command("list")
def records_list(
    case: Annotated[str | None, typer.Option("--case", help="Only the records of this case.")] = None,
    lab: Annotated[str | None, typer.Option("--lab", help="Only the records this lab made (its id, e.g. FR-IRCGN).")] = None,
    json_out: JsonOpt = False,
    db_url: DbUrlOpt = None,
) -> None:
    """List the stored match records, oldest first: lab, case, exhibits, the algorithm's result, the LR in words, the examiner's conclusion.

    The table shows the first 8 characters of each record id; records show takes them.
    """
    from ballistics.record_summary import summarize

    store = open_store(db_url)
    partners = store.partner_labs()
    found = [summarize(record, partner=record["lab"]["id"] in partners) for record in store.records(case_id=case, lab=lab)]
    if json_out:
        emit_json({"records": [summary.to_dict() for summary in found]})
        return
    listing = table(
        f"{len(found)} match records",
        ("record, date", "lab", "case, exhibits", "findings"),
        keep=("record, date",),
        fold=("findings",),
    )
    for s in found:
        add_row(
            listing,
            (s.record_id[:8], s.created[:10]),
            (s.lab.id, "partner") if s.partner else s.lab.id,
            (s.case, f"{s.exhibits[0]} vs {s.exhibits[1]}"),
            (
                f"algorithm: {s.decision} (CMC {s.cmc})",
                f"LR: {'none stated' if s.likelihood_ratio is None else s.likelihood_ratio.text()}",
                f"examiner: {s.conclusion_text}",
            ),
        )
    print_table(listing)


@records_app.command("show")
def records_show(
    ident: Annotated[
        str, typer.Argument(metavar="ID", help="A stored record's id (or its first 8 characters or more), or a match-record file.")
    ],
    json_out: JsonOpt = False,
    db_url: DbUrlOpt = None,
) -> None:
    """Show one match record (schema version 1 or 2): the algorithm's decision, the likelihood ratio, the examiner's conclusion."""
    from ballistics.records import describe_record, load_record

    path = Path(ident)
    found = load_record(path) if path.suffix.lower() == ".json" or path.exists() else open_store(db_url).find_record(ident)
    if json_out:
        emit_json(found)
        return
    scans = [(f"sha256 {side}", str(found["scans"][side]["sha256"])) for side in ("reference", "questioned")]
    print_rows(f"match record {found['record_id']}", describe_record(found), whole=scans)


def register(app: typer.Typer) -> None:
    app.add_typer(records_app, name="records")
