"""``view``: a comparison opened in the browser (ballistics/view.py), without a record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ballistics.method import Mode
from commands.common import DbUrlOpt, PixelOpt, audit, note, progress
from commands.comparison import (
    _CMC,
    _DECISION,
    CcfOpt,
    CellsOpt,
    ElimOpt,
    IdOpt,
    ModeOpt,
    RotationOpt,
    Rule,
    RuleOpt,
    ScanArg,
    TranslationOpt,
    WindowOpt,
    comparison_event,
    method_params,
    resolve_scan,
)


def view(
    reference: ScanArg,
    questioned: ScanArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write (self-contained: opens offline).")],
    case: Annotated[str | None, typer.Option(help="Case id to name in the view.")] = None,
    reference_exhibit: Annotated[
        str | None, typer.Option(help="Exhibit id of the reference [default: CASE/EXHIBIT, else the file name].")
    ] = None,
    questioned_exhibit: Annotated[str | None, typer.Option(help="Exhibit id of the questioned case [default: as the reference].")] = None,
    pixel_um: PixelOpt = None,
    preprocessed: ModeOpt = None,
    cells: CellsOpt = _CMC.cells[0],
    translation_um: TranslationOpt = _CMC.translation_um,
    rotation_threshold_deg: RotationOpt = _CMC.rotation_deg,
    ccf_threshold: CcfOpt = _CMC.ccf_threshold,
    identification_cmc: IdOpt = _DECISION.identification_cmc,
    elimination_cmc: ElimOpt = _DECISION.elimination_cmc,
    cmcr_window: WindowOpt = not _CMC.full_circle,
    rule: RuleOpt = Rule(_DECISION.rule),
    db_url: DbUrlOpt = None,
) -> None:
    """Compare two cartridge cases and write the comparison as a page to open in a browser, offline.

    The page shows both breech faces registered, side by side or overlaid with a split line to
    drag, in shaded relief under a light whose direction you turn, the congruent cells on and
    off, and zoom with a scale bar that stays true. Everything is inside the file: no network.
    """
    from ballistics.compare import compare as run_compare
    from ballistics.files import write_atomic
    from ballistics.identifiers import Identifiers
    from ballistics.view import view_page

    cmc, decision = method_params(
        cells, translation_um, rotation_threshold_deg, ccf_threshold, identification_cmc, elimination_cmc, cmcr_window, rule
    )
    (ref, _, ref_label), (qst, _, qst_label) = (resolve_scan(arg, pixel_um, db_url) for arg in (reference, questioned))
    mode: Mode = "auto" if preprocessed is None else ("preprocessed" if preprocessed else "raw")
    with progress("preparing and comparing (every rotation, both directions)"):
        result = run_compare(ref, qst, cmc=cmc, decision=decision, mode=mode)
    labels = Identifiers(reference_exhibit or ref_label, questioned_exhibit or qst_label, case)
    write_atomic(output, view_page(result, labels).encode("utf-8"))
    audit(comparison_event(result, rule))
    note(f"{labels.title()}: CMC {result.cmc}, {result.decision}")
    note(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command()(view)
