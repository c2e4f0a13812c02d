"""``calibrate``: a score-to-likelihood-ratio calibration from labelled scans or pairs (ballistics/calibration.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commands.common import JsonOpt, WorkersOpt, check_figures, emit_json, note, print_rows, progress, state, worker_count
from commands.comparison import (
    _CMC,
    _DECISION,
    CcfOpt,
    CellsOpt,
    ElimOpt,
    IdOpt,
    RotationOpt,
    Rule,
    RuleOpt,
    TranslationOpt,
    WindowOpt,
    method_params,
)

if TYPE_CHECKING:
    from ballistics.calibration import Calibration

DEFAULT_POPULATION = (
    "cartridge cases fired from firearms of the make, model and calibre of the reference set's firearms, "
    "scanned and processed as its scans were"
)


class ScoreChoice(StrEnum):
    cmc = "cmc"
    cmc_ccf = "cmc+ccf"


class CalibratorChoice(StrEnum):
    kde = "kde"
    logistic = "logistic"
    isotonic = "isotonic"


TippettOpt = Annotated[
    Path | None,
    typer.Option("--tippett", help="Write the Tippett plot of the held-out LRs here (PNG at 300 dpi; SVG when the name ends in .svg)."),
]
EceOpt = Annotated[
    Path | None,
    typer.Option("--ece", help="Write the empirical cross-entropy plot of the held-out LRs here (PNG; SVG when the name ends in .svg)."),
]


def calibrate(
    folders: Annotated[
        list[Path] | None, typer.Argument(help="Folders of labelled scans; every pair within each folder is compared.", show_default=False)
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Write the calibration (JSON) here.")] = Path("calibration.json"),
    truth: Annotated[
        Path | None,
        typer.Option(
            help="CSV with columns file, firearm and, where known, make, model, calibre [default: firearms from Fadul / Weller file names]."
        ),
    ] = None,
    pairs_csv: Annotated[
        list[Path] | None,
        typer.Option(
            "--pairs-csv",
            help="Take the scored pairs from this CSV of `validate --pairs-csv` instead of comparing (repeatable; the method options must be those of the validate run).",
            show_default=False,
        ),
    ] = None,
    install: Annotated[bool, typer.Option("--install", help="Also make it this lab home's calibration (HOME/calibration.json).")] = False,
    score: Annotated[
        ScoreChoice | None,
        typer.Option(help="The score to calibrate [default: the one of lowest held-out Cllr; CMC + correlation only if it lowers it]."),
    ] = None,
    calibrator: Annotated[CalibratorChoice | None, typer.Option(help="The calibrator [default: the one of lowest held-out Cllr].")] = None,
    description: Annotated[str | None, typer.Option(help="What the reference set is, in words.")] = None,
    population: Annotated[str, typer.Option(help="The relevant population the LRs speak of, in words.")] = DEFAULT_POPULATION,
    provenance: Annotated[str | None, typer.Option(help="Where the reference scans come from.")] = None,
    licence: Annotated[str | None, typer.Option(help="Licence of the reference scans.")] = None,
    tippett: TippettOpt = None,
    ece: EceOpt = None,
    json_out: JsonOpt = False,
    workers: WorkersOpt = None,
    cells: CellsOpt = _CMC.cells[0],
    translation_um: TranslationOpt = _CMC.translation_um,
    rotation_threshold_deg: RotationOpt = _CMC.rotation_deg,
    ccf_threshold: CcfOpt = _CMC.ccf_threshold,
    identification_cmc: IdOpt = _DECISION.identification_cmc,
    elimination_cmc: ElimOpt = _DECISION.elimination_cmc,
    cmcr_window: WindowOpt = not _CMC.full_circle,
    rule: RuleOpt = Rule(_DECISION.rule),
) -> None:
    """Build a likelihood-ratio calibration from labelled scans (or their scored pairs), validated leaving firearms out.

    The calibration states the score, the calibrator and its parameters, the empirical bounds
    (ELUB), the reference set (firearms, pairs, SHA-256 of every scan), its held-out Cllr and
    rates of misleading evidence, and the software; its SHA-256 identifies it wherever an LR is quoted.
    """
    from ballistics import validate as v
    from ballistics.calibration import HOME_FILE, build_calibration, reference_pairs, scoring_method, with_details, write_calibration
    from ballistics.errors import UsageError

    if bool(folders) == bool(pairs_csv):
        raise UsageError(None, "give either folders of labelled scans or --pairs-csv files")
    check_figures(tippett, ece)
    cmc, decision = method_params(
        cells, translation_um, rotation_threshold_deg, ccf_threshold, identification_cmc, elimination_cmc, cmcr_window, rule
    )
    labels = v.load_truth(truth) if truth is not None else None
    results: list[v.PairResult] = []
    if pairs_csv:
        for path in pairs_csv:
            results += v.read_pairs(path, labels)
        sources = ", ".join(p.name for p in pairs_csv)
    else:
        for folder in folders or []:
            folder_labels = labels or {p.name: f for p in folder.glob("*") if (f := v.firearm_from_name(p))}
            scans = v.labelled_scans(folder, folder_labels)
            total = len(scans) * (len(scans) - 1) // 2
            with progress(f"comparing {len(scans)} scans of {folder.name} pairwise", quiet=json_out, total=total) as update:
                results += v.validate(
                    scans, folder_labels, cmc=cmc, decision=decision, workers=worker_count(workers), progress=update
                ).pairs
        sources = ", ".join(str(f) for f in folders or [])
    pairs, scans_info = reference_pairs(results)
    if truth is not None:
        scans_info = with_details(scans_info, truth)
    with progress("validating calibrators, leaving firearms out", quiet=json_out):
        calibration = build_calibration(
            pairs,
            scans_info,
            method=scoring_method(cmc, decision),
            description=description or f"{len(scans_info)} scans of {len(pairs.firearms)} firearms ({sources})",
            relevant_population=population,
            score=None if score is None else score.value,
            calibrator=None if calibrator is None else calibrator.value,
            provenance=provenance,
            licence=licence,
        )
    write_calibration(calibration, output)
    if install:
        state.home.mkdir(parents=True, exist_ok=True)
        write_calibration(calibration, state.home / HOME_FILE)
    lr_plots(calibration, tippett, ece, title=output.stem)
    if json_out:
        emit_json({"path": str(output), "sha256": calibration.sha256, **calibration_summary(calibration)})
        return
    show_calibration(calibration, f"calibration {output}")
    note(f"wrote {output}" + (f" and {state.home / HOME_FILE}" if install else ""))


def lr_plots(calibration: Calibration, tippett: Path | None, ece: Path | None, title: str) -> None:
    """The Tippett and ECE plots of a calibration's held-out LRs, where asked for."""
    if tippett is None and ece is None:
        return
    from ballistics.plots import ece_figure, tippett_figure

    labels = calibration.pairs.labels
    if tippett is not None:
        tippett_figure(calibration.held_out_log10_lr, labels, calibration.bounds_log10, tippett, title=title)
        note(f"wrote {tippett}")
    if ece is not None:
        ece_figure(calibration.held_out_log10_lr, labels, ece, title=title)
        note(f"wrote {ece}")


def calibration_summary(calibration: Calibration) -> dict[str, Any]:
    """What ``calibrate --json`` and ``validate --lr --json`` report of a calibration."""
    return {
        "calibration_id": calibration.calibration_id,
        "score": calibration.score,
        "calibrator": calibration.calibrator,
        "parameters": calibration.parameters,
        "bounds_log10": list(calibration.bounds_log10),
        "firearms": calibration.reference.firearms,
        "scans": len(calibration.reference.scans),
        "validation": "leave firearms out (each pair scored without any pair of either of its firearms)",
        "metrics": calibration.metrics.to_dict(),
        "candidates_cllr": calibration.candidates,
    }


def show_calibration(calibration: Calibration, title: str) -> None:
    m = calibration.metrics
    rows = [
        ("score, calibrator", f"{calibration.score}, {calibration.calibrator}"),
        ("reference set", f"{calibration.reference.firearms} firearms, {len(calibration.reference.scans)} scans"),
        ("pairs", f"{m.same_source_pairs} same source, {m.different_source_pairs} different sources"),
        ("bounds (log10 LR, ELUB)", f"{calibration.bounds_log10[0]:+.2f} .. {calibration.bounds_log10[1]:+.2f}"),
        ("held out, leaving firearms out", "each pair scored by a system fitted without any pair of either of its firearms"),
        ("Cllr / Cllr-min / Cllr-cal (bits)", f"{m.cllr:.4f} / {m.cllr_min:.4f} / {m.cllr_cal:.4f}"),
        (
            "misleading evidence",
            f"same source with LR < 1: {m.misleading_same_source} ({m.misleading_same_source_rate:.2%}); "
            f"different sources with LR > 1: {m.misleading_different_source} ({m.misleading_different_source_rate:.2%})",
        ),
        ("largest different-source log10 LR", f"{m.largest_different_source_llr:+.2f}"),
        ("smallest same-source log10 LR", f"{m.smallest_same_source_llr:+.2f}"),
        ("candidates (held-out Cllr)", ", ".join(f"{k} {v:.4f}" for k, v in calibration.candidates.items())),
    ]
    print_rows(title, rows, whole=[("sha256", calibration.sha256)])


def register(app: typer.Typer) -> None:
    app.command()(calibrate)
