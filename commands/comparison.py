"""``compare`` and ``validate``: the comparison engine (ballistics/compare.py, cmc.py, validate.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ballistics.method import CmcParams, DecisionParams, Mode, PreprocessParams, method_description
from commands.collection import NO_IDENTITY_NOTE, SCAN_SUFFIXES, collection_lab
from commands.common import (
    DbUrlOpt,
    JsonOpt,
    PixelOpt,
    WorkersOpt,
    add_row,
    audit,
    check_figures,
    emit_json,
    note,
    open_store,
    out,
    print_rows,
    print_table,
    progress,
    state,
    table,
    worker_count,
)
from commands.scans import load_file
from exchange import audit_events as events

if TYPE_CHECKING:
    from ballistics.calibration import Calibration
    from ballistics.compare import Comparison
    from ballistics.likelihood_ratio import LikelihoodRatio
    from ballistics.records import ExaminerConclusion
    from ballistics.scan import Scan

METHOD_PANEL = "Method (defaults: cmcR / Song 2018)"
_CMC = CmcParams()
_DECISION = DecisionParams()


class Rule(StrEnum):
    original = "original"
    high = "high"


class Afte(StrEnum):
    identification = "identification"
    inconclusive_a = "inconclusive-a"
    inconclusive_b = "inconclusive-b"
    inconclusive_c = "inconclusive-c"
    elimination = "elimination"
    unsuitable = "unsuitable"


class VerbalOpinion(StrEnum):
    """A verbal LR category of the ENFSI 2015 scale and the proposition it supports."""

    neutral = "neutral"
    weak_same = "weak-same-source"
    moderate_same = "moderate-same-source"
    moderately_strong_same = "moderately-strong-same-source"
    strong_same = "strong-same-source"
    very_strong_same = "very-strong-same-source"
    extremely_strong_same = "extremely-strong-same-source"
    weak_different = "weak-different-sources"
    moderate_different = "moderate-different-sources"
    moderately_strong_different = "moderately-strong-different-sources"
    strong_different = "strong-different-sources"
    very_strong_different = "very-strong-different-sources"
    extremely_strong_different = "extremely-strong-different-sources"


RECORD_PANEL = "The record (with --record)"


CellsOpt = Annotated[
    int,
    typer.Option(
        min=2, max=32, help="The reference is cut into a grid of N x N cells, each registered on its own.", rich_help_panel=METHOD_PANEL
    ),
]
TranslationOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Tx = Ty: how far (µm) a cell's best position may lie from the consensus of all cells and still count as congruent.",
        rich_help_panel=METHOD_PANEL,
    ),
]
RotationOpt = Annotated[
    float,
    typer.Option(
        "--rotation-threshold-deg",
        min=0.0,
        help="Ttheta: how far (degrees) a cell's best rotation may lie from the consensus and still count as congruent.",
        rich_help_panel=METHOD_PANEL,
    ),
]
CcfOpt = Annotated[
    float,
    typer.Option(
        "--ccf-threshold",
        min=-1.0,
        max=1.0,
        help="Tccf: the least correlation (-1..1) between a cell and the questioned surface at its best position for the cell to count.",
        rich_help_panel=METHOD_PANEL,
    ),
]
IdOpt = Annotated[
    int, typer.Option(min=1, help="Identification when the deciding CMC count is at least this.", rich_help_panel=METHOD_PANEL)
]
ElimOpt = Annotated[int, typer.Option(min=0, help="Elimination when the deciding CMC count is at most this.", rich_help_panel=METHOD_PANEL)]
RuleOpt = Annotated[
    Rule,
    typer.Option(
        help=(
            "Which count decides. original (Song 2013): each cell at its own best rotation must agree with the others. "
            "high (High CMC, Tong 2015): cells are counted at the rotations where most cells agree, "
            "which gives higher counts to same-source and to some different-source pairs."
        ),
        rich_help_panel=METHOD_PANEL,
    ),
]
WindowOpt = Annotated[
    bool,
    typer.Option(
        "--cmcr-window", help="Search only -30..30 degrees, as cmcR does, instead of the full circle.", rich_help_panel=METHOD_PANEL
    ),
]
ModeOpt = Annotated[
    bool | None,
    typer.Option(
        "--preprocessed/--raw",
        help="Take the scans as already processed (cropped, levelled, filtered), or as raw [default: decided per scan].",
        show_default=False,
    ),
]
ScanArg = Annotated[
    str, typer.Argument(help="A scan file (x3p or image), or a stored exhibit: CASE/EXHIBIT, its number, or a SHA-256 prefix.")
]


def method_params(
    cells: int,
    translation_um: float,
    rotation_deg: float,
    ccf: float,
    identification_cmc: int,
    elimination_cmc: int,
    cmcr_window: bool,
    rule: Rule,
) -> tuple[CmcParams, DecisionParams]:
    cmc = CmcParams(
        cells=(cells, cells), translation_um=translation_um, rotation_deg=rotation_deg, ccf_threshold=ccf, full_circle=not cmcr_window
    )
    return cmc, DecisionParams(identification_cmc=identification_cmc, elimination_cmc=elimination_cmc, rule=rule.value)


def resolve_scan(argument: str, pixel_um: float | None, db_url: str | None) -> tuple[Scan, Path, str]:
    """A scan named by its file, or by a stored exhibit (CASE/EXHIBIT, number, SHA-256 prefix).

    Returns the scan, its file and how to name it to the examiner (the file's name, or the
    exhibit's CASE/EXHIBIT).
    """
    from ballistics.errors import InvalidInputError
    from ballistics.store import StoreError

    path = Path(argument)
    if path.exists() or path.suffix.lower() in SCAN_SUFFIXES:
        return load_file(path, pixel_um), path, path.name
    try:
        exhibit = open_store(db_url).exhibit(argument)
    except StoreError as exc:
        raise InvalidInputError(argument, f"neither a scan file nor a stored exhibit: {exc.reason}") from None
    return load_file(exhibit.path, pixel_um), exhibit.path, f"{exhibit.case}/{exhibit.exhibit}"


def compare(
    reference: ScanArg,
    questioned: ScanArg,
    json_out: JsonOpt = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write the figure here (PNG at 300 dpi; SVG when the name ends in .svg): both scans with the primer edge, crop and "
            "firing-pin zone drawn over them, the registered surfaces in shaded relief with their congruent cells, the per-cell "
            "registrations and the counts against the thresholds, titled with the case and exhibits."
        ),
    ] = None,
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
    record: Annotated[
        Path | None, typer.Option("--record", help="Write the match record (JSON, schema-validated) here and store it in the collection.")
    ] = None,
    case: Annotated[
        str | None, typer.Option("--case", help="Case id of the record [default: the case of a stored exhibit compared].")
    ] = None,
    examiner: Annotated[str | None, typer.Option("--examiner", help="Examiner named in the record [default: the login name].")] = None,
    lab: Annotated[str | None, typer.Option("--lab", help="Lab of the record [default: this home's identity].")] = None,
    conclusion: Annotated[
        Afte | None,
        typer.Option(
            metavar="AFTE",
            help="The examiner's conclusion on the AFTE range, recorded apart from the algorithm's decision: identification, "
            "inconclusive-a, inconclusive-b, inconclusive-c, elimination or unsuitable.",
            rich_help_panel=RECORD_PANEL,
        ),
    ] = None,
    verbal_conclusion: Annotated[
        VerbalOpinion | None,
        typer.Option(
            metavar="CATEGORY",
            help="The examiner's conclusion as a verbal LR category of the ENFSI 2015 scale and the proposition it supports: "
            "neutral, or weak, moderate, moderately-strong, strong, very-strong or extremely-strong followed by -same-source "
            "or -different-sources (e.g. strong-same-source).",
            rich_help_panel=RECORD_PANEL,
        ),
    ] = None,
    reviewer: Annotated[str | None, typer.Option(help="Who made the technical review.", rich_help_panel=RECORD_PANEL)] = None,
    remarks: Annotated[str | None, typer.Option(help="The examiner's remarks.", rich_help_panel=RECORD_PANEL)] = None,
    reference_exhibit: Annotated[
        str | None,
        typer.Option(
            help="Exhibit id of the reference [default: its collection exhibit, else the file name].", rich_help_panel=RECORD_PANEL
        ),
    ] = None,
    questioned_exhibit: Annotated[
        str | None,
        typer.Option(
            help="Exhibit id of the questioned case [default: its collection exhibit, else the file name].", rich_help_panel=RECORD_PANEL
        ),
    ] = None,
    db_url: DbUrlOpt = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="Calibration (JSON, `ballistics calibrate`) that turns the score into a likelihood ratio "
            "[default: HOME/calibration.json, else the packaged Fadul + Weller calibration].",
        ),
    ] = None,
) -> None:
    """Compare two cartridge cases by Congruent Matching Cells (CMC), searching every rotation, and state the likelihood ratio.

    A CMC is a cell of the reference breech face that finds a well-correlated place on the
    questioned one at the same rotation and shift as the other cells; the count of such cells
    decides identification, inconclusive or elimination. A calibration turns the count into a
    likelihood ratio for same source against different sources, stated with its propositions,
    relevant population, bounds and interval.
    """
    from ballistics.calibration import default_calibration, load_calibration
    from ballistics.compare import compare as run_compare
    from ballistics.errors import UsageError

    record_only = {"--conclusion": conclusion, "--verbal-conclusion": verbal_conclusion, "--reviewer": reviewer, "--remarks": remarks,
                   "--reference-exhibit": reference_exhibit, "--questioned-exhibit": questioned_exhibit}  # fmt: skip
    if record is None and (given := [name for name, value in record_only.items() if value is not None]):
        raise UsageError(None, f"{', '.join(given)} describe the record: give --record too")

    check_figures(plot)
    cmc, decision = method_params(
        cells, translation_um, rotation_threshold_deg, ccf_threshold, identification_cmc, elimination_cmc, cmcr_window, rule
    )
    mode: Mode = "auto" if preprocessed is None else ("preprocessed" if preprocessed else "raw")
    (ref, ref_path, ref_label), (qst, qst_path, qst_label) = (resolve_scan(arg, pixel_um, db_url) for arg in (reference, questioned))
    calibrated = load_calibration(calibration) if calibration is not None else default_calibration(state.home)
    with progress("preparing and comparing (every rotation, both directions)", quiet=json_out):
        result = run_compare(ref, qst, cmc=cmc, decision=decision, mode=mode)
    with progress("likelihood ratio (bootstrap over the reference firearms)", quiet=json_out):
        statement, document = evaluate(calibrated, result)
    audit(
        comparison_event(result, rule, statement),
        examiner=examiner,
    )
    if plot is not None:
        from ballistics.identifiers import Identifiers
        from ballistics.plots import comparison_figure

        names = Identifiers(reference_exhibit or ref_label, questioned_exhibit or qst_label, case)
        comparison_figure(result, plot, scans=((ref, names.reference), (qst, names.questioned)), identifiers=names)
    if record is not None:
        from ballistics.labs import DEFAULT_LAB
        from ballistics.recording import record_comparison

        recorded = record_comparison(
            open_store(db_url),
            result,
            (ref_path, qst_path),
            record,
            lab=collection_lab(lab),
            case=case,
            examiner=examiner,
            store_faces=mode == "auto",
            likelihood_ratio=statement,
            conclusion=examiner_conclusion(conclusion, verbal_conclusion, remarks),
            reviewer=reviewer,
            exhibits=(reference_exhibit, questioned_exhibit),
        )
        audit(
            (
                events.RECORD_ADD,
                {
                    "record_id": recorded["record_id"],
                    "case_id": recorded["case_id"],
                    "lab": recorded["lab"]["id"],
                    "path": str(record),
                    "scans": [recorded["scans"][side]["sha256"] for side in ("reference", "questioned")],
                },
            ),
            examiner=examiner,
        )
        note(f"wrote {record} (record {recorded['record_id']}) and stored it in the collection")
        if recorded["lab"]["id"] == DEFAULT_LAB:
            note(NO_IDENTITY_NOTE)
    if json_out:
        emit_json(document)
        return
    rows = [
        ("decision", result.decision),
        (f"CMC ({rule.value} rule, deciding)", f"{result.cmc}  (forward {result.cmc_forward}, backward {result.cmc_backward})"),
        (
            "CMC original rule / High CMC",
            f"{result.cmc_original} / {result.cmc_high} "
            f"({'High CMC passed' if result.high_cmc_passed else 'High CMC fell back to the original rule'})",
        ),
        ("cells compared", str(result.cells_compared)),
        *(
            (f"{side} scan", f"{doc['kind']}, {doc['spacing_um'][0]:g} x {doc['spacing_um'][1]:g} µm per pixel")
            for side, doc in (("reference", result.reference), ("questioned", result.questioned))
        ),
        ("rotation (degrees)", f"{result.rotation_deg:.1f}"),
        ("translation (µm)", f"{result.translation_um[0]:.1f}, {result.translation_um[1]:.1f}"),
        ("correlation of registered surfaces", "n/a" if result.ccf is None else f"{result.ccf:.3f}"),
        (
            "firing-pin score",
            "not available" if result.firing_pin is None else f"{result.firing_pin:.3f} (-1..1; not used in the decision)",
        ),
        (
            "method",
            f"{result.method['name']}; Tx {translation_um:g} µm, Ttheta {rotation_threshold_deg:g} degrees, "
            f"Tccf {ccf_threshold:g}, {cells} x {cells} cells",
        ),
        ("software", f"{result.software['name']} {result.software['version']}"),
        ("elapsed (s)", f"{result.elapsed_s:.2f}"),
    ]
    hashes = [("sha256 reference", str(result.reference["sha256"])), ("sha256 questioned", str(result.questioned["sha256"]))]
    print_rows(f"{ref_label}  vs  {qst_label}", rows, whole=hashes)
    if statement is not None:
        out().print("\n".join(statement.statement()), markup=False, highlight=False)
    for warning in document["warnings"]:
        note(f"warning: {warning}")
    if plot is not None:
        note(f"wrote {plot}")


def examiner_conclusion(afte: Afte | None, verbal: VerbalOpinion | None, remarks: str | None) -> ExaminerConclusion | None:
    """The examiner's opinion from the options, or None when none was given."""
    from ballistics.records import ExaminerConclusion

    if afte is None and verbal is None and remarks is None:
        return None
    pair = None
    if verbal is not None:
        for suffix, supports in (("-same-source", "same source"), ("-different-sources", "different sources")):
            if verbal.value.endswith(suffix):
                pair = (verbal.value.removesuffix(suffix).replace("-", " "), supports)
        pair = pair or ("neutral", "neither")
    return ExaminerConclusion(afte_category=None if afte is None else afte.value, verbal=pair, remarks=remarks)  # type: ignore[arg-type]


def comparison_event(result: Comparison, rule: Rule, statement: LikelihoodRatio | None = None) -> tuple[str, dict[str, Any]]:
    """The audit log's ``comparison`` event: both scans, the algorithm's result and the LR when one was evaluated."""
    return (
        events.COMPARISON,
        {
            "reference": {key: result.reference[key] for key in ("path", "sha256")},
            "questioned": {key: result.questioned[key] for key in ("path", "sha256")},
            "decision": result.decision,
            "cmc": result.cmc,
            "cmc_original": result.cmc_original,
            "cmc_high": result.cmc_high,
            "rule": rule.value,
            "log10_lr": None if statement is None else f"{statement.log10_lr:.3f}",  # the log holds no floats
            "calibration_sha256": None if statement is None else statement.calibration_sha256,
        },
    )


def evaluate(calibration: Calibration, result: Comparison) -> tuple[LikelihoodRatio | None, dict[str, Any]]:
    """The comparison's LR under ``calibration`` and its JSON document with ``likelihood_ratio`` (null, with a warning, when none applies)."""
    from ballistics.errors import CalibrationError
    from ballistics.likelihood_ratio import likelihood_ratio

    document = result.to_dict()
    try:
        statement: LikelihoodRatio | None = likelihood_ratio(calibration, document)
    except CalibrationError as exc:
        statement = None
        document["warnings"].append(exc.reason)
    document["likelihood_ratio"] = None if statement is None else statement.to_dict()
    if statement is not None:
        document["warnings"].extend(statement.warnings)
    return statement, document


def validate(
    folder: Annotated[Path, typer.Argument(help="Folder of labelled scans.")],
    truth: Annotated[
        Path | None, typer.Option(help="CSV with columns file, firearm [default: derived from Fadul / Weller file names].")
    ] = None,
    json_out: JsonOpt = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write the histogram of CMC counts with the thresholds here (PNG at 300 dpi; SVG when the name ends in .svg)."),
    ] = None,
    pairs_csv: Annotated[Path | None, typer.Option(help="Write every pair's result to this CSV.")] = None,
    workers: WorkersOpt = None,
    cells: CellsOpt = _CMC.cells[0],
    translation_um: TranslationOpt = _CMC.translation_um,
    rotation_threshold_deg: RotationOpt = _CMC.rotation_deg,
    ccf_threshold: CcfOpt = _CMC.ccf_threshold,
    identification_cmc: IdOpt = _DECISION.identification_cmc,
    elimination_cmc: ElimOpt = _DECISION.elimination_cmc,
    cmcr_window: WindowOpt = not _CMC.full_circle,
    rule: RuleOpt = Rule(_DECISION.rule),
    lr: Annotated[
        bool,
        typer.Option(
            "--lr",
            help="Also validate likelihood ratios leaving firearms out: Cllr, Cllr-min, Cllr-cal, misleading evidence, extreme LRs.",
        ),
    ] = False,
    tippett: Annotated[Path | None, typer.Option("--tippett", help="With --lr: write the Tippett plot here (PNG; SVG for .svg).")] = None,
    ece: Annotated[
        Path | None, typer.Option("--ece", help="With --lr: write the empirical cross-entropy plot here (PNG; SVG for .svg).")
    ] = None,
) -> None:
    """Compare all pairs of a labelled set: CMC distributions, AUC, false and missed identifications; with --lr, LR performance.

    With ``--lr`` every pair's likelihood ratio comes from a calibration fitted without any pair of
    either of its firearms (the same validation ``ballistics calibrate`` reports).
    """
    from ballistics import validate as v
    from ballistics.errors import UsageError

    if (tippett or ece) and not lr:
        raise UsageError(tippett or ece, "--tippett and --ece plot the likelihood ratios of --lr")
    check_figures(plot, tippett, ece)

    cmc, decision = method_params(
        cells, translation_um, rotation_threshold_deg, ccf_threshold, identification_cmc, elimination_cmc, cmcr_window, rule
    )
    labels = v.load_truth(truth) if truth is not None else {p.name: f for p in folder.glob("*") if (f := v.firearm_from_name(p))}
    scans = v.labelled_scans(folder, labels)
    if lr and len({labels[p.name] for p in scans}) < 4:
        raise UsageError(folder, "--lr leaves out both firearms of each different-source pair: it needs scans of at least four firearms")
    total = len(scans) * (len(scans) - 1) // 2
    with progress(f"comparing {len(scans)} scans pairwise", quiet=json_out, total=total) as update:
        result = v.validate(scans, labels, cmc=cmc, decision=decision, workers=worker_count(workers), progress=update)
    if pairs_csv is not None:
        v.write_pairs(result, pairs_csv)
    if plot is not None:
        from ballistics.plots import validation_figure

        validation_figure(result, plot, title=folder.name)
    summary = result.to_dict()
    summary["method"] = method_description(PreprocessParams(), cmc, decision)
    calibration = None
    if lr:
        from ballistics.calibration import build_calibration, reference_pairs, scoring_method
        from commands.calibration import DEFAULT_POPULATION, calibration_summary, lr_plots

        pairs, scans_info = reference_pairs(result.pairs)
        with progress("validating likelihood ratios, leaving firearms out", quiet=json_out):
            calibration = build_calibration(
                pairs, scans_info, method=scoring_method(cmc, decision), description=str(folder), relevant_population=DEFAULT_POPULATION
            )
        lr_plots(calibration, tippett, ece, title=folder.name)
        summary["likelihood_ratio"] = calibration_summary(calibration)
    if json_out:
        emit_json(summary)
        return
    result_table = table(f"validation on {folder} ({summary['pairs']} pairs)", ("", "n", "min", "mean", "max"), keep=("",))
    for key, label in (("original_rule", "original rule"), ("high_cmc_rule", "High CMC")):
        for kind in ("known_match", "known_non_match"):
            d = summary[key][kind]  # type: ignore[index]
            add_row(
                result_table,
                f"{kind.replace('_', ' ')}, {label}",
                str(d["n"]),
                str(d.get("min", "")),
                str(d.get("mean", "")),
                str(d.get("max", "")),
            )
    print_table(result_table)
    out().print(
        f"deciding rule {rule.value}: AUC {summary['auc']} (original {summary['original_rule']['auc']}, "  # type: ignore[index]
        f"High CMC {summary['high_cmc_rule']['auc']}); at CMC >= {identification_cmc}: "  # type: ignore[index]
        f"{summary['false_identifications']} false identifications, {summary['missed_identifications']} missed identifications",
        markup=False,
    )
    if calibration is not None:
        from commands.calibration import show_calibration

        show_calibration(calibration, "likelihood ratios, leaving firearms out")


def register(app: typer.Typer) -> None:
    app.command()(compare)
    app.command()(validate)
