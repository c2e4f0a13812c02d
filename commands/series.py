"""``series``: the firearms revealed by confirmed links across cases and labs (ballistics/series.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands.common import DbUrlOpt, JsonOpt, add_row, emit_json, note, open_store, print_rows, print_table, table

series_app = typer.Typer(
    help="Firearm series: cases joined by identifications an examiner confirmed, across labs and countries.", no_args_is_help=True
)


@series_app.command("list")
def series_list(json_out: JsonOpt = False, db_url: DbUrlOpt = None) -> None:
    """List the firearm series, oldest first: cases, labs, countries (cross-border or not), dates.

    A confirmed link is a stored match record, the lab's own or a partner's, whose examiner
    concluded identification (AFTE); the algorithm's decision alone is not one.
    """
    from ballistics.series import collection_series

    found = collection_series(open_store(db_url))
    if json_out:
        emit_json({"series": [s.to_dict() for s in found]})
        return
    listing = table(
        f"{len(found)} firearm series",
        ("series", "cases", "countries", "cross-border", "first, last", "labs"),
        keep=("series", "cases", "countries", "cross-border", "first, last"),
        fold=("labs",),
    )
    for s in found:
        add_row(
            listing,
            s.id,
            str(len(s.cases)),
            ", ".join(s.countries),
            "yes" if s.cross_border else "no",
            (s.first[:10], s.last[:10]),
            tuple(lab.id for lab in s.labs),
        )
    print_table(listing)


@series_app.command("show")
def series_show(
    ident: Annotated[str, typer.Argument(metavar="ID", help="A series id, as series list shows it (S-...).")],
    json_out: JsonOpt = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the link graph (cases, confirmed links with their LR) to this PNG file.")
    ] = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Show one firearm series: its cases with their exhibits, labs and countries, and each confirmed link with its LR."""
    from ballistics.series import collection_series, find_series

    series = find_series(collection_series(open_store(db_url)), ident)
    drawn = None
    if plot is not None:
        from ballistics.series_plot import draw_series

        drawn = draw_series(series, plot)
    if json_out:
        emit_json({**series.to_dict(), "plot": None if drawn is None else str(drawn.path)})
        return
    print_rows(
        f"firearm series {series.id}",
        [
            ("cross-border", "yes" if series.cross_border else "no"),
            ("countries", ", ".join(series.countries)),
            ("labs", "; ".join(f"{lab.id} ({lab.name}, {lab.country})" for lab in series.labs)),
            ("dates", ", ".join(series.dates)),
        ],
    )
    cases = table(f"{len(series.cases)} cases", ("lab", "country", "case", "exhibits"), keep=("lab", "country", "case"), fold=("exhibits",))
    for case in series.cases:
        add_row(cases, case.lab.id, case.lab.country, case.ref.case, ", ".join(case.exhibits))
    print_table(cases)
    links = table(
        f"{len(series.links)} confirmed links", ("record, date", "cases joined", "findings"), keep=("record, date",), fold=("findings",)
    )
    for link in series.links:
        add_row(
            links,
            (link.record_id[:8], link.created[:10]),
            (f"{link.ends[0].key}/{link.exhibits[0]}", f"{link.ends[1].key}/{link.exhibits[1]}"),
            (
                f"algorithm: {link.decision} (CMC {link.cmc})",
                f"LR: {'none stated' if link.likelihood_ratio is None else link.likelihood_ratio.text()}",
                f"confirmed by: {link.examiner} ({link.recorded_by.id})",
            ),
        )
    print_table(links)
    if drawn is not None:
        note(f"wrote {drawn.path} ({drawn.width_px} x {drawn.height_px} px)")
        if drawn.overlapping_labels:
            note(f"warning: {drawn.overlapping_labels} pairs of labels still overlap in {drawn.path}; series show --json lists every link")


def register(app: typer.Typer) -> None:
    app.add_typer(series_app, name="series")
