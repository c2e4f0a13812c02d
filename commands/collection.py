"""``db`` and ``search``: the lab's reference collection (ballistics/store.py, ballistics/search.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ballistics.characteristics import FiringPinShape
from ballistics.errors import EXIT_USAGE, UsageError
from commands.common import (
    DbUrlOpt,
    JsonOpt,
    PixelOpt,
    WorkersOpt,
    add_row,
    audit,
    emit_json,
    note,
    open_store,
    print_rows,
    print_table,
    progress,
    state,
    table,
    worker_count,
)
from commands.scans import image_pixel_um
from exchange import audit_events as events

if TYPE_CHECKING:
    from ballistics.labs import Lab
    from ballistics.store import Exhibit

db_app = typer.Typer(help="The lab's reference collection: exhibits, their scans, comparisons and match records.", no_args_is_help=True)

#: Scan files ``db add FOLDER`` takes from a folder (by suffix, case-insensitive).
SCAN_SUFFIXES = (".x3p", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


ExhibitArg = Annotated[
    str, typer.Argument(metavar="EXHIBIT", help="CASE/EXHIBIT (e.g. UK-2026-0117/CS1), the exhibit's number, or a SHA-256 prefix.")
]
SHAPES = ", ".join(shape.value for shape in FiringPinShape)
ShapeOpt = Annotated[FiringPinShape | None, typer.Option(metavar="SHAPE", help=f"Firing-pin shape (class characteristic): {SHAPES}.")]
ShapeFilterOpt = Annotated[FiringPinShape | None, typer.Option(metavar="SHAPE", help=f"Only exhibits of this firing-pin shape: {SHAPES}.")]


NO_IDENTITY_NOTE = (
    "note: this home has no lab identity yet (keys init), so this is filed under lab 'local'; "
    "after keys init, 'ballistics db reattribute' files it under the lab's own id (bundle export refuses 'local')"
)


def collection_lab(lab_id: str | None) -> Lab:
    """The lab things are filed under: this home's identity (keys init), else ``--lab``, else ``local``.

    ``local`` is what a home without an identity files under; ``db reattribute`` moves it to the
    lab's own id once ``keys init`` has run, and bundle export refuses it until then.
    """
    from ballistics.labs import DEFAULT_LAB, Lab
    from exchange.errors import MissingIdentityError
    from exchange.keys import load_card

    try:
        card_lab = load_card(state.home).lab
    except MissingIdentityError:
        card_lab = None
    if card_lab is not None and lab_id in (None, card_lab.id):
        return card_lab
    return Lab(lab_id or DEFAULT_LAB, lab_id or DEFAULT_LAB)


def scan_files(paths: list[Path]) -> list[Path]:
    """The files named, with each folder replaced by the scans directly inside it (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SCAN_SUFFIXES)
        else:
            found.append(path)
    return found


def exhibit_label(exhibit: Exhibit) -> str:
    return f"{exhibit.case}/{exhibit.exhibit}"


@db_app.command("add")
def db_add(
    scans: Annotated[list[Path], typer.Argument(help="Scan files or folders (the scans inside); several become exhibits E, E-2, E-3, ...")],
    case: Annotated[str, typer.Option("--case", help="Case id.")],
    exhibit: Annotated[str, typer.Option("--exhibit", help="Exhibit id of the first scan (the next get -2, -3, ...).")],
    calibre: Annotated[str | None, typer.Option(help="Calibre, e.g. 9mm Luger.")] = None,
    lab: Annotated[str | None, typer.Option("--lab", help="Owning lab [default: this home's identity].")] = None,
    firing_pin_shape: ShapeOpt = None,
    ejector: Annotated[str | None, typer.Option("--ejector", help="Ejector position, e.g. '3 o'clock'.")] = None,
    pixel_um: PixelOpt = None,
    json_out: JsonOpt = False,
    db_url: DbUrlOpt = None,
) -> None:
    """Add scans to the collection as exhibits of a case; a file already filed there changes nothing."""
    from ballistics.characteristics import ClassCharacteristics
    from ballistics.labs import DEFAULT_LAB

    files = scan_files(scans)
    if not files:
        raise UsageError(scans[0], "no scan files (x3p or images) in this folder")
    store = open_store(db_url)
    owner = collection_lab(lab)
    traits = ClassCharacteristics(calibre, firing_pin_shape, ejector)
    results: list[dict[str, Any]] = []
    with progress("adding scans", quiet=json_out or len(files) < 2, total=len(files)) as update:
        for index, path in enumerate(files):
            exhibit_id = exhibit if index == 0 else f"{exhibit}-{index + 1}"
            result = store.add_exhibit_scan(
                path, case_id=case, exhibit_id=exhibit_id, lab=owner, characteristics=traits, pixel_um=image_pixel_um(path, pixel_um)
            )
            results.append(
                {
                    "file": str(path),
                    "added": result.added,
                    "conflict": result.conflict,
                    "message": result.message,
                    "exhibit": result.exhibit.to_dict(),
                }
            )
            if not json_out:
                note(f"{path}: {result.message}")
            update(index + 1, len(files))
    added = [r for r in results if r["added"]]
    if added and owner.id == DEFAULT_LAB and lab is None:
        note(NO_IDENTITY_NOTE)
    if added:
        audit(
            (
                events.DB_ADD,
                {"lab": owner.id, "case": case, "exhibits": [{k: r["exhibit"][k] for k in ("id", "exhibit", "sha256")} for r in added]},
            )
        )
    if json_out:
        emit_json({"results": results})
    if any(r["conflict"] for r in results):
        raise typer.Exit(EXIT_USAGE)


@db_app.command("list")
def db_list(
    json_out: JsonOpt = False,
    calibre: Annotated[str | None, typer.Option(help="Only this calibre.")] = None,
    firing_pin_shape: ShapeFilterOpt = None,
    lab: Annotated[str | None, typer.Option("--lab", help="Only exhibits of this lab.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Only exhibits of this case.")] = None,
    db_url: DbUrlOpt = None,
) -> None:
    """List the exhibits of the collection."""
    shape = firing_pin_shape.value if firing_pin_shape else None
    found = open_store(db_url).exhibits(calibre=calibre, firing_pin_shape=shape, lab=lab, case=case)
    if json_out:
        emit_json({"exhibits": [e.to_dict() for e in found]})
        return
    listing = table(
        f"{len(found)} exhibits",
        ("#", "case/exhibit", "lab", "calibre", "firing pin", "sha256", "file"),
        keep=("#", "case/exhibit", "lab", "sha256"),
        fold=("file",),
    )
    for e in found:
        t = e.characteristics
        add_row(
            listing,
            str(e.id),
            exhibit_label(e),
            e.lab + (" (partner)" if e.partner else ""),
            t.calibre or "",
            t.firing_pin_shape or "",
            e.sha256[:12],
            e.original_name,
        )
    print_table(listing)


@db_app.command("show")
def db_show(ident: ExhibitArg, json_out: JsonOpt = False, db_url: DbUrlOpt = None) -> None:
    """Show one exhibit, with the full SHA-256 of its scan."""
    found = open_store(db_url).exhibit(ident)
    if json_out:
        emit_json(found.to_dict())
        return
    fields = found.to_dict()
    whole = [(key, str(fields.pop(key))) for key in ("sha256", "path")]
    print_rows(f"exhibit #{found.id}: {exhibit_label(found)}", [(k, "" if v is None else str(v)) for k, v in fields.items()], whole=whole)


@db_app.command("remove")
def db_remove(ident: ExhibitArg, json_out: JsonOpt = False, db_url: DbUrlOpt = None) -> None:
    """Remove an exhibit (its scan file too, unless a stored comparison cites it)."""
    gone = open_store(db_url).remove_exhibit(ident)
    audit((events.DB_REMOVE, {"id": gone.id, "lab": gone.lab, "case": gone.case, "exhibit": gone.exhibit, "sha256": gone.sha256}))
    if json_out:
        emit_json({"removed": gone.to_dict()})
        return
    note(f"removed exhibit #{gone.id} {exhibit_label(gone)} (sha256 {gone.sha256})")


@db_app.command("reindex")
def db_reindex(json_out: JsonOpt = False, db_url: DbUrlOpt = None) -> None:
    """Build the search's vector index again from the signatures in the database.

    For an index lost or damaged (a search brings a merely stale one up to date by itself).
    """
    import time

    started = time.perf_counter()
    index = open_store(db_url).reindex()
    summary, meta = index.summary(), index.meta
    done = {
        "indexed": summary.count,
        "builds": meta.builds,
        "directory": str(index.directory),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    if json_out:
        emit_json(done)
        return
    note(f"indexed {summary.count} exhibits in {index.directory} ({done['elapsed_s']} s)")


@db_app.command("reattribute")
def db_reattribute(
    record_files: Annotated[
        list[Path] | None, typer.Argument(help="Match-record files written before keys init, to rewrite in the lab's name too.")
    ] = None,
    from_lab: Annotated[str, typer.Option("--from", help="The lab id things were filed under.")] = "local",
    json_out: JsonOpt = False,
    db_url: DbUrlOpt = None,
) -> None:
    """File the cases, exhibits and match records made before keys init under this lab's identity.

    Records, exhibits and cases made in a home without an identity belong to lab 'local',
    which partners refuse; this gives them to the lab explicitly, in one transaction, and
    rewrites the record files named (atomically) so that bundle export accepts them.
    """
    from ballistics.records import load_record, reattribute_record, write_record
    from exchange.keys import load_card

    lab = load_card(state.home).lab
    rewritten = list(record_files or [])
    documents = [load_record(path) for path in rewritten]  # all read and checked before anything changes
    moved = open_store(db_url).reattribute(from_lab, lab)
    for path, document in zip(rewritten, documents, strict=True):
        if document["lab"]["id"] == from_lab:
            write_record(reattribute_record(document, lab), path)
    audit((events.RECORDS_REATTRIBUTED, {**moved.to_dict(), "files": [str(p) for p in rewritten]}))
    if json_out:
        emit_json({**moved.to_dict(), "files": [str(p) for p in rewritten]})
        return
    note(
        f"filed under lab {lab.id}: {moved.exhibits} exhibits of {moved.cases} cases and {len(moved.records)} stored records from lab {from_lab}"
    )
    for path in rewritten:
        note(f"rewrote {path} in the name of lab {lab.id}")


def search(
    questioned: Annotated[
        str, typer.Argument(help="Questioned scan file (x3p or image), or a stored exhibit: CASE/EXHIBIT or its number.")
    ],
    top: Annotated[int, typer.Option(min=1, help="Candidates listed.")] = 10,
    shortlist: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Candidates kept for the full CMC comparison: the best by the correlation of the breech faces' polar "
            "signatures at every rotation (0..1, higher is more alike). Default 20, or 40 when more than 10,000 "
            "exhibits are searched.",
            show_default=False,
        ),
    ] = None,
    nearest: Annotated[
        int,
        typer.Option(
            min=1,
            help="Exhibits taken from the vector index (nearest rotation-invariant embeddings) for the signature "
            "correlation that makes the shortlist.",
        ),
    ] = 2000,
    calibre: Annotated[str | None, typer.Option(help="Only exhibits of this calibre.")] = None,
    firing_pin_shape: ShapeFilterOpt = None,
    pixel_um: PixelOpt = None,
    json_out: JsonOpt = False,
    workers: WorkersOpt = None,
    dask: Annotated[
        str | None, typer.Option("--dask", help="Run the full comparisons on this Dask scheduler, e.g. tcp://host:8786.")
    ] = None,
    db_url: DbUrlOpt = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write the list as a page to open in a browser, offline: a thumbnail of each candidate registered onto "
            "the questioned case, each opening its comparison view.",
        ),
    ] = None,
) -> None:
    """Rank the collection against a questioned scan: vector index, signature shortlist, then the full CMC comparison.

    Candidates are ranked by their CMC count, then by their score: the correlation (-1..1) of
    the questioned breech face with the candidate's, registered at the rotation and shift found.
    """
    from ballistics.search import DaskExecutor, LocalExecutor, SearchParams
    from ballistics.search import search as run_search
    from commands.comparison import resolve_scan

    store = open_store(db_url)
    scan, _, label = resolve_scan(questioned, pixel_um, db_url)
    params = SearchParams(
        top=top,
        shortlist=shortlist,
        nearest=nearest,
        calibre=calibre,
        firing_pin_shape=firing_pin_shape.value if firing_pin_shape else None,
    )
    executor = DaskExecutor(dask) if dask else LocalExecutor(worker_count(workers))
    with progress("comparing the shortlist", quiet=json_out) as update:
        result = run_search(store, scan, params, executor, progress=update)
    audit(
        (
            events.SEARCH,
            {
                "query": {key: result.query[key] for key in ("path", "sha256")},
                "searched": result.searched,
                "shortlisted": result.shortlisted,
                "candidates": [{"sha256": h.exhibit.sha256, "cmc": h.cmc, "decision": h.decision} for h in result.candidates],
            },
        )
    )
    if report is not None:
        from ballistics.files import write_atomic
        from ballistics.search import hit_comparisons
        from ballistics.search_report import search_report

        with progress("the candidates' comparison views", quiet=json_out, total=len(result.candidates)) as update:
            comparisons = hit_comparisons(store, scan, result, params, progress=update)
        write_atomic(report, search_report(result, comparisons, label).encode("utf-8"))
    if json_out:
        emit_json(result.to_dict())
        return
    ranking = table(
        f"{label}: {result.searched} searched, {result.shortlisted} shortlisted, {result.elapsed_s:.1f} s",
        ("rank", "case/exhibit", "lab", "CMC", "decision", "score", "prefilter"),
        keep=("rank", "case/exhibit", "CMC", "decision", "score", "prefilter"),
        fold=("lab",),
    )
    for hit in result.candidates:
        row = hit.to_dict()
        add_row(
            ranking,
            str(row["rank"]),
            exhibit_label(hit.exhibit),
            row["lab"] + (" (partner)" if row["partner"] else ""),
            str(row["cmc"]),
            row["decision"],
            "" if row["score"] is None else f"{row['score']:.3f}",
            f"{row['prefilter']:.3f}",
        )
    print_table(ranking)
    if report is not None:
        note(f"wrote {report}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command()(search)
