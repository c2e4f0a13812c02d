"""The ``ballistics`` command: parse options, call the packages, print tables or JSON.

Nothing here does science or cryptography. Every expected failure arrives as a
:class:`ballistics.errors.BallisticsError`; :func:`main` prints it as one line
``error: <path>: <reason>`` on stderr and exits with its code (0 ok, 1 unexpected, 2 usage,
3 invalid input, 4 security refusal). ``--debug`` adds the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import platformdirs
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from ballistics import SOFTWARE_NAME, __version__, synth
from ballistics.errors import EXIT_UNEXPECTED, BallisticsError
from ballistics.labs import Lab
from ballistics.scan import Scan, load_scan, save_x3p, sniff_format
from exchange.bundle import ExportOptions, export_bundle
from exchange.card import KeyCard, Revocation, format_fingerprint, parse_fingerprint, read_document
from exchange.errors import MissingIdentityError
from exchange.files import write_atomic
from exchange.keys import IdentityParameters, init_identity, load_card, load_identity, revoke_identity, rotate_identity
from exchange.reader import inspect_bundle, open_bundle
from exchange.trust import TrustStore, load_trust_document

app = typer.Typer(
    name="ballistics",
    help="Compare fired cartridge cases and exchange ballistic intelligence between laboratories.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    """Global options, set by the callback and read by the commands."""

    home: Path = Path(platformdirs.user_data_dir(SOFTWARE_NAME))
    debug: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        print(f"{SOFTWARE_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    home: Annotated[
        Path | None,
        typer.Option(envvar="BALLISTICS_HOME", help="Where the lab's database, keys, logs and quarantine live."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    state.home = home if home is not None else Path(platformdirs.user_data_dir(SOFTWARE_NAME))
    state.debug = debug


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def scan_summary(scan: Scan) -> dict[str, Any]:
    finite = scan.heights[np.isfinite(scan.heights)]
    return {
        "path": str(scan.source) if scan.source else None,
        "format": scan.format,
        "kind": scan.kind,
        "shape": list(scan.shape),
        "spacing_um": [scan.spacing_x * 1e6, scan.spacing_y * 1e6],
        "valid_fraction": round(scan.valid_fraction, 4),
        "height_range_um": [float(finite.min()) * 1e6, float(finite.max()) * 1e6],
        "metadata": dict(scan.metadata),
        "sha256": scan.sha256,
    }


@app.command()
def info(
    scans: Annotated[list[Path], typer.Argument(help="x3p files or images.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    pixel_um: Annotated[float | None, typer.Option(help="Pixel size of 2-D images, in micrometres.")] = None,
) -> None:
    """Describe scans: format, kind, shape, spacing, valid fraction, heights, metadata, SHA-256."""
    summaries = []
    for path in scans:
        summaries.append(scan_summary(_load(path, pixel_um)))
    if json_out:
        emit_json({"scans": summaries})
        return
    for s in summaries:
        table = Table(title=s["path"], show_header=False, title_justify="left")
        table.add_row("format / kind", f"{s['format']} / {s['kind']}")
        table.add_row("shape (rows x cols)", f"{s['shape'][0]} x {s['shape'][1]}")
        table.add_row("spacing (um)", f"{s['spacing_um'][0]:.4g} x {s['spacing_um'][1]:.4g}")
        table.add_row("valid fraction", f"{s['valid_fraction']:.3f}")
        unit = "um" if s["kind"] == "topography" else "um (grey level x pixel)"
        table.add_row(f"height range ({unit})", f"{s['height_range_um'][0]:.3f} .. {s['height_range_um'][1]:.3f}")
        for key, value in s["metadata"].items():
            table.add_row(key, str(value))
        table.add_row("sha256", s["sha256"] or "")
        out.print(table)


def _load(path: Path, pixel_um: float | None) -> Scan:
    """``--pixel-um`` applies to the images in a mixed list and is ignored for x3p files."""
    return load_scan(path, pixel_um=None if sniff_format(path) == "x3p" else pixel_um)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="x3p file or image.")],
    target: Annotated[Path, typer.Argument(help="Output .x3p file.")],
    pixel_um: Annotated[float | None, typer.Option(help="Pixel size of a 2-D image, in micrometres.")] = None,
) -> None:
    """Convert a scan (x3p or image) to an ISO 25178-72 x3p file."""
    scan = load_scan(source, pixel_um=pixel_um)
    save_x3p(scan, target)
    err.print(f"wrote {target}")


# --- compare and validate: the comparison engine (ballistics/compare.py, cmc.py, validate.py) ----

CMC_OPTIONS = "Method (defaults: cmcR / Song 2018)"


def _method_params(
    cells: int,
    translation_um: float,
    rotation_deg: float,
    ccf: float,
    identification_cmc: int,
    elimination_cmc: int,
    cmcr_window: bool,
    rule: str,
) -> tuple[Any, Any]:
    from ballistics.cmc import CmcParams
    from ballistics.compare import DecisionParams

    cmc = CmcParams(
        cells=(cells, cells), translation_um=translation_um, rotation_deg=rotation_deg, ccf_threshold=ccf, full_circle=not cmcr_window
    )
    return cmc, DecisionParams(identification_cmc=identification_cmc, elimination_cmc=elimination_cmc, rule=rule)  # type: ignore[arg-type]


CellsOpt = Annotated[int, typer.Option(min=2, max=32, help="Grid of N x N cells on the reference.", rich_help_panel=CMC_OPTIONS)]
TranslationOpt = Annotated[float, typer.Option(min=0.0, help="Translation threshold Tx = Ty, micrometres.", rich_help_panel=CMC_OPTIONS)]
RotationOpt = Annotated[
    float, typer.Option("--rotation-threshold-deg", min=0.0, help="Rotation threshold, degrees.", rich_help_panel=CMC_OPTIONS)
]
CcfOpt = Annotated[
    float, typer.Option("--ccf-threshold", min=-1.0, max=1.0, help="Cell correlation threshold.", rich_help_panel=CMC_OPTIONS)
]
IdOpt = Annotated[int, typer.Option(min=1, help="Identification at CMC >= this.", rich_help_panel=CMC_OPTIONS)]
ElimOpt = Annotated[int, typer.Option(min=0, help="Elimination at CMC <= this.", rich_help_panel=CMC_OPTIONS)]


class Rule(str, Enum):
    original = "original"
    high = "high"


RuleOpt = Annotated[
    Rule, typer.Option(help="Count that decides: original (Song 2013) or high (High CMC, Tong 2015).", rich_help_panel=CMC_OPTIONS)
]
WindowOpt = Annotated[
    bool,
    typer.Option(
        "--cmcr-window", help="Search only -30..30 degrees, as cmcR does, instead of the full circle.", rich_help_panel=CMC_OPTIONS
    ),
]
ModeOpt = Annotated[
    bool | None,
    typer.Option(
        "--preprocessed/--raw",
        help="Force the scans to be taken as already processed, or as raw (default: decided per scan).",
        show_default=False,
    ),
]


@app.command()
def compare(
    reference: Annotated[Path, typer.Argument(help="Reference scan (x3p or image).")],
    questioned: Annotated[Path, typer.Argument(help="Questioned scan (x3p or image).")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the diagnostic figure (PNG) here.")] = None,
    pixel_um: Annotated[float | None, typer.Option(help="Pixel size of 2-D images, micrometres.")] = None,
    preprocessed: ModeOpt = None,
    cells: CellsOpt = 8,
    translation_um: TranslationOpt = 125.0,
    rotation_threshold_deg: RotationOpt = 6.0,
    ccf_threshold: CcfOpt = 0.5,
    identification_cmc: IdOpt = 6,
    elimination_cmc: ElimOpt = 2,
    cmcr_window: WindowOpt = False,
    rule: RuleOpt = Rule.original,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="Write the match record (JSON, schema-validated) here and store it in the collection."),
    ] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case id of the record (default: the reference exhibit's case).")] = None,
    examiner: Annotated[str | None, typer.Option("--examiner", help="Examiner named in the record (default: the login name).")] = None,
    lab: Annotated[str | None, typer.Option("--lab", help="Lab of the record (default: this home's identity, else 'local').")] = None,
) -> None:
    """Compare two cartridge cases by Congruent Matching Cells, searching every rotation."""
    from ballistics.compare import compare as run_compare

    cmc, decision = _method_params(
        cells, translation_um, rotation_threshold_deg, ccf_threshold, identification_cmc, elimination_cmc, cmcr_window, rule.value
    )
    mode = "auto" if preprocessed is None else ("preprocessed" if preprocessed else "raw")
    ref, qst = (_load(path, pixel_um) for path in (reference, questioned))
    with err.status("comparing", spinner="dots"):
        result = run_compare(ref, qst, cmc=cmc, decision=decision, mode=mode)
    _audit(
        (
            "comparison",
            {
                "reference": result.reference,
                "questioned": result.questioned,
                "decision": result.decision,
                "cmc": result.cmc,
                "cmc_original": result.cmc_original,
                "cmc_high": result.cmc_high,
                "rule": rule.value,
            },
        ),
        examiner=examiner,
    )
    if plot is not None:
        from ballistics.plots import comparison_figure

        comparison_figure(result, plot)
    if record is not None:
        _record_comparison(result, (reference, questioned), record, case, examiner, lab, mode)
    if json_out:
        emit_json(result.to_dict())
        return
    table = Table(title=f"{reference.name}  vs  {questioned.name}", show_header=False, title_justify="left")
    table.add_row("decision", f"[bold]{result.decision}[/bold]")
    table.add_row(f"CMC ({rule.value} rule, deciding)", f"{result.cmc}  (forward {result.cmc_forward}, backward {result.cmc_backward})")
    table.add_row(
        "CMC original rule / High CMC",
        f"{result.cmc_original} / {result.cmc_high} ({'High CMC passed' if result.high_cmc_passed else 'High CMC fell back to the original rule'})",
    )
    table.add_row("cells compared", str(result.cells_compared))
    table.add_row("rotation (deg)", f"{result.rotation_deg:.1f}")
    table.add_row("translation (um)", f"{result.translation_um[0]:.1f}, {result.translation_um[1]:.1f}")
    table.add_row("correlation of registered surfaces", "n/a" if result.ccf is None else f"{result.ccf:.3f}")
    table.add_row("firing-pin score", "not available" if result.firing_pin is None else f"{result.firing_pin:.3f}")
    table.add_row(
        "method",
        f"{result.method['name']}; Tx {translation_um:g} um, Ttheta {rotation_threshold_deg:g} deg, Tccf {ccf_threshold:g}, {cells}x{cells} cells",
    )
    table.add_row("software", f"{result.software['name']} {result.software['version']}")
    table.add_row("sha256 reference", str(result.reference["sha256"]))
    table.add_row("sha256 questioned", str(result.questioned["sha256"]))
    table.add_row("elapsed (s)", f"{result.elapsed_s:.2f}")
    out.print(table)
    if plot is not None:
        err.print(f"wrote {plot}")


@app.command()
def validate(
    folder: Annotated[Path, typer.Argument(help="Folder of labelled scans.")],
    truth: Annotated[
        Path | None, typer.Option(help="CSV with columns file, firearm. Default: derived from Fadul / Weller file names.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the histogram (PNG) here.")] = None,
    pairs_csv: Annotated[Path | None, typer.Option(help="Write every pair's result to this CSV.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes (default: all cores).")] = max(1, os.cpu_count() or 1),
    cells: CellsOpt = 8,
    translation_um: TranslationOpt = 125.0,
    rotation_threshold_deg: RotationOpt = 6.0,
    ccf_threshold: CcfOpt = 0.5,
    identification_cmc: IdOpt = 6,
    elimination_cmc: ElimOpt = 2,
    cmcr_window: WindowOpt = False,
    rule: RuleOpt = Rule.original,
) -> None:
    """Compare all pairs of a labelled set: CMC distributions, AUC, false and missed identifications."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ballistics import validate as v

    cmc, decision = _method_params(
        cells, translation_um, rotation_threshold_deg, ccf_threshold, identification_cmc, elimination_cmc, cmcr_window, rule.value
    )
    labels = v.load_truth(truth) if truth is not None else {p.name: f for p in folder.glob("*") if (f := v.firearm_from_name(p))}
    scans = v.labelled_scans(folder, labels)
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task(f"comparing {len(scans)} scans pairwise", total=len(scans) * (len(scans) - 1) // 2)
        result = v.validate(
            scans, labels, cmc=cmc, decision=decision, workers=workers, progress=lambda done, total: bar.update(task, completed=done)
        )
    if pairs_csv is not None:
        v.write_pairs(result, pairs_csv)
    if plot is not None:
        from ballistics.plots import validation_figure

        validation_figure(result, plot, title=folder.name)
    summary = result.summary()
    summary["method"] = {"cmc": cmc.as_dict(), "decision": asdict(decision)}
    if json_out:
        emit_json(summary)
        return
    table = Table(title=f"validation on {folder} ({summary['pairs']} pairs)", title_justify="left")
    for column in ("", "n", "min", "mean", "max"):
        table.add_column(column)
    for key, label in (("original_rule", "original rule"), ("high_cmc_rule", "High CMC")):
        for kind in ("known_match", "known_non_match"):
            d = summary[key][kind]
            table.add_row(
                f"{kind.replace('_', ' ')}, {label}", str(d["n"]), str(d.get("min", "")), str(d.get("mean", "")), str(d.get("max", ""))
            )
    out.print(table)
    out.print(
        f"deciding rule {rule.value}: AUC {summary['auc']} (original {summary['original_rule']['auc']}, High CMC {summary['high_cmc_rule']['auc']}); at CMC >= {identification_cmc}: {summary['false_identifications']} false identifications, {summary['missed_identifications']} missed identifications"
    )


# --- sample: simulated cases with known truth (ballistics/synth.py), and the demo --------------

sample_app = typer.Typer(help="Simulated firearms and cartridge cases with known ground truth.", no_args_is_help=True)
app.add_typer(sample_app, name="sample")


def _write_samples(out_dir: Path, firearms: int, shots: int, seed: int) -> list[Path]:
    """Generate a sample set with a progress bar on stderr."""
    from rich.progress import Progress

    guns = synth.generate_firearms(firearms, seed)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("firing and scanning", total=firearms * shots)
        return synth.write_sample_set(out_dir, guns, shots, seed, progress=lambda done, total: progress.update(task, completed=done))


@sample_app.command("generate")
def sample_generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the x3p files, images and truth.csv.")],
    firearms: Annotated[int, typer.Option(min=1, help="Number of simulated firearms.")] = 4,
    shots: Annotated[int, typer.Option(min=1, help="Cases fired from each firearm.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed: the same seed gives byte-identical files.")] = 2026,
) -> None:
    """Simulate firearms, fire and scan cases: x3p + PNG per case and truth.csv."""
    paths = _write_samples(out_dir, firearms, shots, seed)
    err.print(f"wrote {len(paths)} cases and truth.csv to {out_dir}")


@app.command()
def demo() -> None:
    """The UK-France story on simulated cases: identities, trust, a match, a bundle, a batch import, the cross-border link."""
    import secrets
    import tempfile

    saved = {name: os.environ.get(name) for name in (PASSPHRASE_ENV, "BALLISTICS_HOME")}
    # Each lab's private keys are protected by a passphrase that lives only in this process.
    os.environ[PASSPHRASE_ENV] = secrets.token_urlsafe(24)
    try:
        with tempfile.TemporaryDirectory(prefix="ballistics-demo-") as tmp:
            _demo_story(Path(tmp))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _demo_run(label: str, home: Path, *args: str) -> int:
    """Run one command as the lab would type it, showing the command line first."""
    shown = " ".join(a if not a.startswith("/") else Path(a).name for a in args)
    out.print(f"[dim]{label}$[/dim] [bold]ballistics {shown}[/bold]")
    return main(["--home", str(home), *args])


def _demo_story(root: Path) -> None:
    from ballistics.search import LocalExecutor, SearchParams
    from ballistics.search import search as run_search
    from ballistics.store import Store

    uk, fr, cases, inbox = root / "uk-lab", root / "fr-lab", root / "cases", root / "fr-inbox"
    out.rule("1. Two laboratories create their identities")
    _demo_run("UK", uk, "keys", "init", "--lab", "UK-FSL", "--name", "UK Forensic Science Laboratory", "--country", "GB")
    _demo_run(
        "FR", fr, "keys", "init", "--lab", "FR-IRCGN", "--name", "Institut de recherche criminelle de la Gendarmerie", "--country", "FR"
    )

    out.rule("2. They swap key cards and check the fingerprints over the phone")
    for label, home, partner, card in (("UK", uk, fr, root / "fr.card"), ("FR", fr, uk, root / "uk.card")):
        write_atomic(card, load_card(partner).to_bytes(), mode=0o644)
        spoken = format_fingerprint(load_card(partner).fingerprint)
        out.print(f"{label} hears the partner read out: {spoken}")
        _demo_run(label, home, "keys", "trust", str(card), "--fingerprint", spoken)

    out.rule("3. Simulated firearms: F01 is the crime gun, fired in both countries")
    paths = {p.stem: p for p in _write_samples(cases, firearms=4, shots=3, seed=2026)}
    out.print("12 cartridge cases from 4 simulated firearms (ground truth in truth.csv)")

    out.rule("4. The French lab files its reference exhibits")
    for index, stem in enumerate(("F01-03", "F02-01", "F02-02", "F03-01", "F03-02", "F04-01"), 1):
        main(
            [
                "--home",
                str(fr),
                "db",
                "add",
                str(paths[stem]),
                "--case",
                f"FR-2025-{400 + index}",
                "--exhibit",
                "E1",
                "--calibre",
                "9mm Luger",
            ]
        )
    _demo_run("FR", fr, "db", "list")

    out.rule("5. The UK lab compares a crime-scene case with its own collection and records the match")
    for stem, case, exhibit in (
        ("F01-02", "UK-2026-0099", "TF1"),
        ("F02-03", "UK-2025-0311", "K1"),
        ("F03-03", "UK-2025-0420", "K1"),
        ("F01-01", "UK-2026-0117", "CS1"),
    ):
        main(["--home", str(uk), "db", "add", str(paths[stem]), "--case", case, "--exhibit", exhibit, "--calibre", "9mm Luger"])
    _demo_run("UK", uk, "search", str(paths["F01-01"]), "--shortlist", "2", "--top", "3")
    _demo_run(
        "UK", uk, "compare", str(paths["F01-02"]), str(paths["F01-01"]), "--record", str(root / "uk-match.json"), "--case", "UK-2026-0117"
    )

    out.rule("6. Earlier deliveries: bundle 1 never arrived (an interceptor kept it), bundle 2 did, and was receipted")
    _demo_run("UK", uk, "bundle", "export", "--to", "FR-IRCGN", "--scan", str(paths["F04-03"]), "-o", str(root / "intercepted.bfx"))
    _demo_run("UK", uk, "bundle", "export", "--to", "FR-IRCGN", "--scan", str(paths["F04-03"]), "-o", str(root / "delivery-2.bfx"))
    _demo_run("FR", fr, "bundle", "import", str(root / "delivery-2.bfx"), "--receipt-dir", str(root / "fr-outbox"))
    _demo_run("UK", uk, "bundle", "import", str(root / "fr-outbox"))
    for entry in Store.open(uk).ledger():
        receipt = entry.details.to_dict()["receipt"]
        out.print(
            f"UK holds {entry.sender_lab}'s signed receipt: bundle {receipt['bundle_id'][:8]} received with the SHA-256 of its {len(receipt['files'])} file(s)"
        )

    out.rule("7. The UK lab sends the case to France: the record and both scans")
    inbox.mkdir()
    _demo_run(
        "UK",
        uk,
        "bundle",
        "export",
        "--to",
        "FR-IRCGN",
        "--record",
        str(root / "uk-match.json"),
        "--scan",
        str(paths["F01-02"]),
        "--scan",
        str(paths["F01-01"]),
        "-o",
        str(inbox / "uk-case-UK-2026-0117.bfx"),
    )
    forged = bytearray((inbox / "uk-case-UK-2026-0117.bfx").read_bytes())
    forged[len(forged) // 2] ^= 0x20
    (inbox / "uk-case-copy.bfx").write_bytes(bytes(forged))
    shutil_copy(root / "intercepted.bfx", inbox / "uk-delivery-old.bfx")
    out.print("the French inbox also holds a copy of the case bundle with one byte changed, and the intercepted bundle 1, replayed")

    out.rule("8. The French lab imports its inbox in one batch")
    code = _demo_run("FR", fr, "bundle", "import", str(inbox), "--receipt-dir", str(root / "fr-outbox"))
    out.print(f"exit code {code} (security refusal); the batch went on, and each refused bundle sits in quarantine beside its reason:")
    for sidecar in sorted((fr / "quarantine").glob("*.reason.json")):
        reason = json.loads(sidecar.read_text())
        out.print(f"  {Path(reason['path']).name}: {reason['error']} (exit {reason['exit_code']}): {reason['reason']}")

    out.rule("9. The French lab searches the imported UK crime-scene scan against its own collection")
    store = Store.open(fr)
    query = next(e for e in store.exhibits(lab="UK-FSL") if e.exhibit == "CS1")
    out.print(
        f"[dim]FR$[/dim] [bold]ballistics search {query.path.name}[/bold]   (UK exhibit {query.case}/{query.exhibit}, received from a partner)"
    )
    result = run_search(store, load_scan(query.path), SearchParams(top=4, shortlist=3), LocalExecutor(max(1, os.cpu_count() or 1)))
    table = Table("rank", "lab", "case", "exhibit", "CMC", "decision", title_justify="left")
    for hit in result.candidates:
        e = hit.exhibit
        table.add_row(str(hit.rank), e.lab + (" (partner)" if e.partner else ""), e.case, e.exhibit, str(hit.cmc), hit.decision)
    out.print(table)
    links = [h for h in result.candidates if not h.exhibit.partner and h.decision == "identification"]
    for hit in links:
        out.print(
            f"[bold green]cross-border link found:[/] UK case {query.case} exhibit {query.exhibit} and French case {hit.exhibit.case} "
            f"exhibit {hit.exhibit.exhibit} were fired by the same firearm (CMC {hit.cmc})"
        )
    if not links:
        out.print("[bold red]no cross-border link found[/]")

    out.rule("10. Both labs check their audit logs")
    for label, home in (("FR", fr), ("UK", uk)):
        code = _demo_run(label, home, "audit", "verify")
        out.print(f"{label} audit log {'intact' if code == 0 else 'BROKEN'}")


def shutil_copy(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes())


# --- keys: the lab's identity and its partners (exchange/keys.py, exchange/trust.py) --------------

keys_app = typer.Typer(help="The lab's identity (signing and encryption keys) and its trusted partners.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

PASSPHRASE_ENV = "BALLISTICS_PASSPHRASE"


def _passphrase(confirm: bool = False) -> bytes:
    """From BALLISTICS_PASSPHRASE for automation, else a hidden prompt; never an argument."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        value = typer.prompt("Passphrase for the lab's private keys", hide_input=True, confirmation_prompt=confirm, err=True)
    return value.encode("utf-8")


def _card_rows(card: Any) -> list[tuple[str, str]]:
    lab = card.lab
    return [
        ("lab", f"{lab.id} ({lab.name}, {lab.country})"),
        ("fingerprint", format_fingerprint(card.fingerprint)),
        ("valid", f"{card.body['not_before']} .. {card.body['not_after']}"),
        ("predecessor", card.predecessor or "-"),
    ]


def _print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


@keys_app.command("init")
def keys_init(
    lab: Annotated[str, typer.Option("--lab", help="Lab id, e.g. UK-FSL.")],
    name: Annotated[str, typer.Option("--name", help="Lab name.")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-2 country code, e.g. GB.")],
    validity_days: Annotated[int, typer.Option(help="Card validity in days.")] = 730,
) -> None:
    """Create the lab's identity: Ed25519 + ML-DSA-65 signing keys, ML-KEM-768 + X25519 encryption keys."""
    identity = init_identity(
        state.home,
        Lab(lab, name, country),
        _passphrase(confirm=True),
        parameters=IdentityParameters(validity=timedelta(days=validity_days)),
    )
    _audit(("key_init", {"lab": lab, "key_id": identity.card.key_id}), identity=identity)
    _print_rows("new identity", _card_rows(identity.card))


@keys_app.command("export")
def keys_export(output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the public key card.")]) -> None:
    """Write the lab's public key card, to send to partners (they check its fingerprint with you)."""
    card = load_card(state.home)
    write_atomic(output, card.to_bytes(), mode=0o644)
    err.print(f"wrote {output}")
    _print_rows("exported card", _card_rows(card))


@keys_app.command("fingerprint")
def keys_fingerprint(card_file: Annotated[Path | None, typer.Argument(help="A key card (default: this lab's).")] = None) -> None:
    """Print a card's SHA-256 fingerprint in groups of four, for reading over the phone."""
    card = load_card(state.home) if card_file is None else KeyCard.from_dict(read_document(card_file), where=str(card_file))
    print(format_fingerprint(card.fingerprint))


@keys_app.command("trust")
def keys_trust(
    document: Annotated[Path, typer.Argument(help="A partner's key card, successor card or revocation.")],
    fingerprint: Annotated[str | None, typer.Option(help="The card's fingerprint as read out by the partner.")] = None,
) -> None:
    """Trust a partner's card (needs --fingerprint unless it is a countersigned successor) or import a revocation."""
    item = load_trust_document(document)
    store = TrustStore.open(state.home)
    if isinstance(item, Revocation):
        with _audit_refusal("trust_refused", {"document": str(document), "key_id": item.key_id}):
            entry = store.revoke(item, where=str(document))
        _audit(
            (
                "trust_revoked",
                {
                    "lab": entry.card.lab.id,
                    "key_id": entry.card.key_id,
                    "revoked_at": item.body["revoked_at"],
                    "reason": item.body["reason"],
                },
            )
        )
        err.print(f"recorded revocation of key {entry.card.key_id[:16]} of lab {entry.card.lab.id}")
        return
    with _audit_refusal("trust_refused", {"document": str(document), "lab": item.lab.id, "key_id": item.key_id}):
        expected = parse_fingerprint(fingerprint, where=str(document)) if fingerprint is not None else None
        entry = store.trust(item, expected, where=str(document))
    _audit(
        ("trust_added", {"lab": entry.card.lab.id, "key_id": entry.card.key_id, "via": entry.via, "predecessor": entry.card.predecessor})
    )
    err.print(f"trusted lab {entry.card.lab.id} ({entry.via})")
    _print_rows("trusted card", _card_rows(entry.card))


@keys_app.command("list")
def keys_list(json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False) -> None:
    """Show this lab's identity and every partner key with its status."""
    try:
        card = load_card(state.home)
        own = {
            "lab": card.lab.id,
            "name": card.lab.name,
            "country": card.lab.country,
            "key_id": card.key_id,
            "fingerprint": format_fingerprint(card.fingerprint),
            "not_after": card.body["not_after"],
            "revoked": (state.home / "keys" / "revocation.json").exists(),
        }
    except MissingIdentityError:
        own = None
    partners = [entry.to_dict() for entry in TrustStore.open(state.home).entries()]
    if json_out:
        emit_json({"identity": own, "partners": partners})
        return
    if own:
        _print_rows("this lab", [(k, str(v)) for k, v in own.items()])
    table = Table(title="partners", title_justify="left")
    for column in ("lab", "country", "status", "via", "fingerprint", "not_after"):
        table.add_column(column)
    for p in partners:
        table.add_row(p["lab"], p["country"], p["status"], p["via"], p["fingerprint"], p["not_after"])
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the new card here.")] = None,
) -> None:
    """Replace the keys: the new card is countersigned by the old keys, so partners accept it as successor."""
    identity = rotate_identity(state.home, _passphrase())
    _audit(
        ("key_rotate", {"lab": identity.card.lab.id, "key_id": identity.card.key_id, "predecessor": identity.card.predecessor}),
        identity=identity,
    )
    if output is not None:
        write_atomic(output, identity.card.to_bytes(), mode=0o644)
        err.print(f"wrote {output}; partners import it with: ballistics keys trust {output.name}")
    _print_rows("new identity", _card_rows(identity.card))


@keys_app.command("revoke")
def keys_revoke(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the signed revocation.")],
    reason: Annotated[str, typer.Option(help="Why the key is revoked (one line).")] = "key withdrawn",
) -> None:
    """Revoke the current key; partners import the file with keys trust and refuse its later bundles."""
    revocation = revoke_identity(state.home, _passphrase(), reason)
    _audit(
        ("key_revoke", {"lab": revocation.lab_id, "key_id": revocation.key_id, "reason": reason}),
        retire=f"identity key {revocation.key_id[:16]} revoked",
    )
    write_atomic(output, revocation.to_bytes(), mode=0o644)
    err.print(f"wrote {output}: key {revocation.key_id[:16]} revoked; partners import it with: ballistics keys trust {output.name}")


# --- bundle: signed, encrypted exchange with partner labs (exchange/bundle.py, exchange/reader.py) --

bundle_app = typer.Typer(help="Signed, encrypted bundles of match records and scans for partner labs.", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")


def _byte_progress(label: str):
    """A rich progress bar on stderr, driven by the core's (done, total) callback."""
    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True
    )
    task = bar.add_task(label, total=None)
    return bar, lambda done, total: bar.update(task, completed=done, total=total)


@bundle_app.command("export")
def bundle_export(
    to: Annotated[list[str], typer.Option("--to", help="Recipient lab id (trusted, unrevoked); repeat for several.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle to write (.bfx).")],
    record: Annotated[list[Path] | None, typer.Option("--record", help="Match record (JSON); repeat.")] = None,
    scan: Annotated[list[Path] | None, typer.Option("--scan", help="Scan (x3p); repeat.")] = None,
    lifetime_days: Annotated[int, typer.Option(help="Days before the bundle expires.")] = 30,
) -> None:
    """Sign and encrypt records and scans to one or more partner labs."""
    identity = load_identity(state.home, _passphrase())
    bar, progress = _byte_progress("encrypting")
    with bar:
        result = export_bundle(
            state.home,
            identity,
            TrustStore.open(state.home),
            output,
            recipients=to,
            records=record or [],
            scans=scan or [],
            options=ExportOptions(lifetime=timedelta(days=lifetime_days)),
            progress=progress,
        )
    doc = result.manifest.to_dict()
    _audit(
        (
            "bundle_export",
            {
                "bundle_id": doc["bundle_id"],
                "path": str(result.path),
                "recipients": doc["recipients"],
                "sequence": doc["sequence"],
                "header_hash": result.header_hash,
                "files": [f.to_dict() for f in result.manifest.files],
            },
        ),
        identity=identity,
    )
    err.print(
        f"wrote {result.path}: {len(result.manifest.files)} files, {result.size} bytes, sequence {result.manifest.sequence}, to {', '.join(to)}"
    )


@bundle_app.command("inspect")
def bundle_inspect(
    bundle: Annotated[Path, typer.Argument(help="A bundle (.bfx).")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Show what the header reveals, without any private key."""
    try:
        own = load_card(state.home)
    except MissingIdentityError:
        own = None
    info_doc = inspect_bundle(bundle, TrustStore.open(state.home), own)
    if json_out:
        emit_json(info_doc)
        return
    rows = [(k, str(v)) for k, v in info_doc.items() if k not in ("sender", "recipients")]
    rows.append(("sender", f"{info_doc['sender']['lab'] or '?'} {info_doc['sender']['key_id'][:16]}"))
    rows += [("recipient", f"{r['lab'] or '?'} {r['key_id'][:16]}") for r in info_doc["recipients"]]
    _print_rows(str(bundle), rows)


@bundle_app.command("verify")
def bundle_verify(
    bundle: Annotated[Path, typer.Argument(help="A bundle (.bfx).")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Decrypt and check everything (signature, every chunk, every file hash, records), writing nothing."""
    identity = load_identity(state.home, _passphrase())
    bar, progress = _byte_progress("verifying")
    with bar, _audit_refusal("bundle_rejected", {"path": str(bundle)}):
        verified = open_bundle(bundle, identity, TrustStore.open(state.home), ledger=_open_store(), progress=progress)
    summary = verified.to_dict()
    if json_out:
        emit_json(summary)
        return
    rows = [
        ("status", "verified"),
        ("sender", f"{summary['sender']['lab']} {summary['sender']['key_id'][:16]}"),
        ("recipients", ", ".join(r["lab"] for r in summary["recipients"])),
        ("sequence", str(summary["sequence"])),
        ("created / expires", f"{summary['created']} / {summary['expires']}"),
    ]
    rows += [(f["name"], f"{f['size']} bytes  sha256 {f['sha256'][:16]}") for f in summary["files"]]
    _print_rows(str(bundle), rows)


@bundle_app.command("import")
def bundle_import(
    paths: Annotated[list[Path], typer.Argument(help="Bundles (.bfx) and folders (every *.bfx inside).")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    receipt_dir: Annotated[
        Path | None, typer.Option("--receipt-dir", help="Write a signed delivery receipt per imported bundle here, for its sender.")
    ] = None,
) -> None:
    """Import partner bundles: verify, refuse replays, store records and scans; quarantine the bad ones."""
    from rich.progress import MofNCompleteColumn

    from exchange.audit import Actor, audit_session
    from exchange.importer import import_bundles

    identity = load_identity(state.home, _passphrase())
    store = _open_store()
    with audit_session(state.home, Actor.current(state.home, os.environ.get(EXAMINER_ENV))) as log:
        log.certify_key(identity)
        with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), console=err, transient=True) as bar:
            task = bar.add_task("verifying and importing", total=None)
            report = import_bundles(
                state.home,
                store,
                identity,
                TrustStore.open(state.home),
                paths,
                receipt_dir=receipt_dir,
                audit=log,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    if json_out:
        emit_json(report.to_dict())
    else:
        _print_import_report(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _print_import_report(report: Any) -> None:
    styles = {"imported": "green", "duplicate": "yellow", "rejected": "bold red"}
    table = Table(
        title=f"{len(report.of('imported'))} imported, {len(report.of('duplicate'))} duplicates, {len(report.of('rejected'))} rejected",
        title_justify="left",
    )
    for column in ("bundle", "outcome", "sender #seq", "id", "exit"):
        table.add_column(column, no_wrap=True)
    table.add_column("what happened", ratio=1)
    for o in report.outcomes:
        outcome = "receipt" if o.kind == "receipt" and o.status == "imported" else o.status
        sender = f"{o.sender or '?'} #{o.sequence if o.sequence is not None else '?'}"
        detail = (
            o.reason
            + (f"; receipt {Path(o.receipt).name}" if o.receipt else "")
            + (f"; quarantined as {Path(o.quarantine).name}" if o.quarantine else "")
        )
        table.add_row(
            o.path.name,
            f"[{styles[o.status]}]{outcome}[/]",
            sender,
            (o.bundle_id or "-")[:8],
            str(o.exit_code) if o.status == "rejected" else "",
            detail,
        )
    out.print(table)


# --- db: the lab's reference collection (ballistics/store.py) ------------------------------------

db_app = typer.Typer(help="The lab's reference collection: exhibits, their scans, comparisons and match records.", no_args_is_help=True)
app.add_typer(db_app, name="db")

DbUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--db-url", envvar="BALLISTICS_DB_URL", help="SQLAlchemy URL of the collection (default: SQLite in the home).", show_default=False
    ),
]


class FiringPinShape(str, Enum):
    hemispherical = "hemispherical"
    elliptical = "elliptical"
    rectangular = "rectangular"
    circular = "circular"
    other = "other"
    unknown = "unknown"


def _open_store(db_url: str | None = None) -> Any:
    from ballistics.store import Store

    return Store.open(state.home, db_url)


def _collection_lab(lab_id: str | None) -> Any:
    """The lab of the home's identity (keys init), else ``--lab``, else ``local``."""
    from ballistics.labs import DEFAULT_LAB

    try:
        card_lab = load_card(state.home).lab
    except MissingIdentityError:
        card_lab = None
    if card_lab is not None and lab_id in (None, card_lab.id):
        return card_lab
    return Lab(lab_id or DEFAULT_LAB, lab_id or DEFAULT_LAB)


def _exhibit_rows(exhibit: Any) -> list[tuple[str, str]]:
    return [(key, "" if value is None else str(value)) for key, value in exhibit.as_dict().items()]


@db_app.command("add")
def db_add(
    scans: Annotated[list[Path], typer.Argument(help="x3p files; several files become exhibits E, E-2, E-3, ...")],
    case: Annotated[str, typer.Option("--case", help="Case id.")],
    exhibit: Annotated[str, typer.Option("--exhibit", help="Exhibit id (of the first file; the next get -2, -3, ...).")],
    calibre: Annotated[str | None, typer.Option(help="Calibre, e.g. 9mm Luger.")] = None,
    lab: Annotated[str | None, typer.Option("--lab", help="Owning lab (default: this home's identity, else 'local').")] = None,
    firing_pin_shape: Annotated[FiringPinShape | None, typer.Option(help="Firing-pin shape (class characteristic).")] = None,
    ejector: Annotated[str | None, typer.Option("--ejector", help="Ejector position, e.g. '3 o'clock'.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    db_url: DbUrlOpt = None,
) -> None:
    """Add scans to the collection as exhibits of a case; a file already there changes nothing."""
    from rich.progress import MofNCompleteColumn

    from ballistics.store import ClassCharacteristics

    store = _open_store(db_url)
    owner = _collection_lab(lab)
    traits = ClassCharacteristics(calibre, firing_pin_shape.value if firing_pin_shape else None, ejector)
    results = []
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), console=err, transient=True, disable=len(scans) < 3) as bar:
        task = bar.add_task("adding scans", total=len(scans))
        for index, path in enumerate(scans):
            exhibit_id = exhibit if index == 0 else f"{exhibit}-{index + 1}"
            result = store.add_exhibit_scan(path, case_id=case, exhibit_id=exhibit_id, lab=owner, characteristics=traits)
            results.append({"file": str(path), "added": result.added, "message": result.message, "exhibit": result.exhibit.as_dict()})
            if not json_out:
                err.print(f"{path}: {result.message}")
            bar.advance(task)
    if json_out:
        emit_json({"results": results})


@db_app.command("list")
def db_list(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    calibre: Annotated[str | None, typer.Option(help="Only this calibre.")] = None,
    firing_pin_shape: Annotated[FiringPinShape | None, typer.Option(help="Only this firing-pin shape.")] = None,
    lab: Annotated[str | None, typer.Option("--lab", help="Only exhibits of this lab.")] = None,
    db_url: DbUrlOpt = None,
) -> None:
    """List the exhibits of the collection."""
    found = _open_store(db_url).exhibits(calibre=calibre, firing_pin_shape=firing_pin_shape.value if firing_pin_shape else None, lab=lab)
    if json_out:
        emit_json({"exhibits": [e.as_dict() for e in found]})
        return
    table = Table(title=f"{len(found)} exhibits", title_justify="left")
    for column in ("id", "lab", "case", "exhibit", "calibre", "firing pin", "ejector", "sha256", "file"):
        table.add_column(column)
    for e in found:
        t = e.characteristics
        table.add_row(
            str(e.id),
            e.lab + (" (partner)" if e.partner else ""),
            e.case,
            e.exhibit,
            t.calibre or "",
            t.firing_pin_shape or "",
            t.ejector_position or "",
            e.sha256[:12],
            e.original_name,
        )
    out.print(table)


@db_app.command("show")
def db_show(
    ident: Annotated[str, typer.Argument(metavar="ID", help="Exhibit number (db list) or SHA-256 prefix.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    db_url: DbUrlOpt = None,
) -> None:
    """Show one exhibit."""
    found = _open_store(db_url).exhibit(ident)
    if json_out:
        emit_json(found.as_dict())
        return
    _print_rows(f"exhibit {found.id}", _exhibit_rows(found))


@db_app.command("remove")
def db_remove(
    ident: Annotated[str, typer.Argument(metavar="ID", help="Exhibit number (db list) or SHA-256 prefix.")],
    db_url: DbUrlOpt = None,
) -> None:
    """Remove an exhibit (its scan file too, unless a stored comparison cites it)."""
    gone = _open_store(db_url).remove_exhibit(ident)
    err.print(f"removed exhibit {gone.exhibit} of case {gone.case} (#{gone.id}, sha256 {gone.sha256[:12]})")


def _record_comparison(
    result: Any, paths: tuple[Path, Path], target: Path, case: str | None, examiner: str | None, lab: str | None, mode: str
) -> None:
    """Write the match record of ``compare --record`` and store it with the comparison, in one transaction."""
    import getpass

    from ballistics.errors import UsageError
    from ballistics.records import build_record, write_record

    store = _open_store()
    known = [store.by_sha256(str(side["sha256"])) for side in (result.reference, result.questioned)]
    case_id = case or next((e.case for e in known if e is not None), None)
    if case_id is None:
        raise UsageError(target, "give --case: neither scan is an exhibit of the collection")
    exhibits = tuple(e.exhibit if e is not None else p.stem for e, p in zip(known, paths))
    traits: dict[str, str] = {}
    for e in reversed(known):
        traits.update(e.characteristics.as_dict() if e is not None else {})
    try:
        who = examiner or getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    document = result.to_dict()
    record = build_record(
        document,
        lab=_collection_lab(lab),
        case_id=case_id,
        exhibits=exhibits,
        examiner={"name": who},
        class_characteristics=traits or None,
    )
    with store.transaction() as conn:
        comparison_id = store.add_comparison(document, paths[0], paths[1], faces=result.surfaces if mode == "auto" else None, conn=conn)
        store.add_record(record, comparison_id=comparison_id, conn=conn)
        write_record(record, target)
    err.print(f"wrote {target} (record {record['record_id']}) and stored it in the collection")


# --- audit: the lab's tamper-evident log (exchange/audit.py, exchange/audit_verify.py) ----------

audit_app = typer.Typer(
    help="The lab's hash-chained, signed log of comparisons, exchanges, key events and trust changes.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")

EXAMINER_ENV = "BALLISTICS_EXAMINER"


def _audit(*events: tuple[str, dict[str, Any]], identity: Any = None, examiner: str | None = None, retire: str | None = None) -> None:
    """Append this command's events to the audit log and sign its head (docs/audit.md).

    With the unlocked ``identity`` at hand, also make sure the audit key is certified by its
    current card; with ``retire``, withdraw the audit key after a revocation.
    """
    from exchange.audit import Actor, audit_session

    actor = Actor.current(state.home, examiner or os.environ.get(EXAMINER_ENV))
    with audit_session(state.home, actor) as log:
        for event_type, details in events:
            log.append(event_type, details)
        if identity is not None:
            log.certify_key(identity)
    if retire is not None:
        log.retire_key(retire)


@contextmanager
def _audit_refusal(event_type: str, details: dict[str, Any]) -> Iterator[None]:
    """Record a refusal (with its reason and exit class) in the audit log, then let it propagate."""
    try:
        yield
    except BallisticsError as exc:
        _audit((event_type, {**details, "error": type(exc).__name__, "reason": exc.reason, "exit_code": exc.exit_code}))
        raise


@audit_app.command("verify")
def audit_verify(json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False) -> None:
    """Check the whole chain (links, sequence numbers, key certificates, head signatures); exit 4 where it breaks."""
    from exchange.audit_verify import verify_log

    report = verify_log(state.home)
    if json_out:
        emit_json(report.to_dict())
    else:
        doc = report.to_dict()
        _print_rows(
            doc["path"],
            [(k, str(doc[k])) for k in ("status", "lines", "events", "heads", "signed_through_line", "unsigned_tail", "last_sha256")],
        )
        if report.problems:
            table = Table(title="problems", title_justify="left")
            for column in ("line", "kind", "what is wrong"):
                table.add_column(column)
            for problem in report.problems:
                table.add_row(str(problem.line), problem.kind, problem.message)
            out.print(table)
    if report.unsigned_tail and report.intact:
        err.print(f"note: the last {report.unsigned_tail} lines are chained but not covered by a head signature")
    report.raise_if_broken()


@audit_app.command("show")
def audit_show(
    since: Annotated[
        str | None, typer.Option(help="Only events at or after this UTC date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """List the logged events (signatures and certificates abbreviated to their key ids)."""
    from exchange.audit import AuditLog, parse_since

    cutoff = parse_since(since) if since is not None else None
    entries = [e for e in AuditLog(state.home).entries() if cutoff is None or e.time >= cutoff]
    if json_out:
        emit_json({"events": [e.to_dict() for e in entries]})
        return
    table = Table(title=f"audit log of {state.home}", title_justify="left")
    for column in ("line", "time", "type", "lab / user", "details"):
        table.add_column(column)
    for entry in entries:
        actor = entry.record["actor"]
        details = json.dumps(entry.to_dict()["details"], separators=(",", ":"))
        table.add_row(
            str(entry.line),
            entry.record["time"],
            entry.type,
            f"{actor.get('lab') or '-'} / {actor.get('examiner') or actor.get('user')}",
            details if len(details) <= 120 else details[:119] + "…",
        )
    out.print(table)


# --- search: ranked correlation list against the collection (ballistics/search.py) -------------


@app.command()
def search(
    questioned: Annotated[Path, typer.Argument(help="Questioned scan (x3p).")],
    top: Annotated[int, typer.Option(min=1, help="Candidates listed.")] = 10,
    shortlist: Annotated[int, typer.Option(min=1, help="Candidates kept by the signature prefilter for the full comparison.")] = 20,
    calibre: Annotated[str | None, typer.Option(help="Only exhibits of this calibre.")] = None,
    firing_pin_shape: Annotated[FiringPinShape | None, typer.Option(help="Only exhibits of this firing-pin shape.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Local processes for the full comparisons (default: all cores).")] = max(
        1, os.cpu_count() or 1
    ),
    dask: Annotated[
        str | None, typer.Option("--dask", help="Run the full comparisons on this Dask scheduler, e.g. tcp://host:8786.")
    ] = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Rank the collection against a questioned scan: signature shortlist, then full CMC comparison."""
    from rich.progress import MofNCompleteColumn, TimeRemainingColumn

    from ballistics.search import DaskExecutor, LocalExecutor, SearchParams
    from ballistics.search import search as run_search

    store = _open_store(db_url)
    scan = load_scan(questioned)
    params = SearchParams(
        top=top, shortlist=shortlist, calibre=calibre, firing_pin_shape=firing_pin_shape.value if firing_pin_shape else None
    )
    executor = DaskExecutor(dask) if dask else LocalExecutor(workers)
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("comparing the shortlist", total=None)
        result = run_search(store, scan, params, executor, progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        emit_json(result.to_dict())
        return
    table = Table(
        title=f"{questioned.name}: {result.searched} searched, {result.shortlisted} shortlisted, {result.elapsed_s:.1f} s",
        title_justify="left",
    )
    for column in ("rank", "lab", "case", "exhibit", "CMC", "decision", "score", "prefilter", "sha256"):
        table.add_column(column)
    for hit in result.candidates:
        row = hit.as_dict()
        table.add_row(
            str(row["rank"]),
            row["lab"] + (" (partner)" if row["partner"] else ""),
            row["case"],
            row["exhibit"],
            str(row["cmc"]),
            row["decision"],
            "" if row["score"] is None else f"{row['score']:.3f}",
            f"{row['prefilter']:.3f}",
            row["sha256"][:12],
        )
    out.print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit code, mapping errors to one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    state.debug = "--debug" in args
    try:
        # Typer handles --help, usage errors (exit 2) and normal exits itself, by SystemExit.
        app(args=args, prog_name="ballistics")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_UNEXPECTED)
    except BallisticsError as exc:
        if state.debug:
            traceback.print_exc()
        print(f"error: {exc.path}: {exc.reason}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: -: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if state.debug:
            traceback.print_exc()
        print(f"error: -: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNEXPECTED
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
