"""``sample`` and ``demo``: simulated cases with known truth (ballistics/synth.py), and the UK-France story."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from commands.common import PASSPHRASE_ENV, note, out, progress

sample_app = typer.Typer(help="Simulated firearms and cartridge cases with known ground truth.", no_args_is_help=True)


def write_samples(out_dir: Path, firearms: int, shots: int, seed: int, whole_head_um: float | None = None) -> list[Path]:
    """Generate a sample set with a progress bar on stderr; whole-head scans at ``whole_head_um`` when given."""
    from ballistics import synth

    guns = synth.generate_firearms(firearms, seed)
    head = None if whole_head_um is None else synth.WholeHead(spacing_um=whole_head_um)
    with progress("firing and scanning", total=firearms * shots) as update:
        return synth.write_sample_set(out_dir, guns, shots, seed, progress=update, whole_head=head)


@sample_app.command("generate")
def sample_generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the x3p files, images and truth.csv.")],
    firearms: Annotated[int, typer.Option(min=1, help="Number of simulated firearms.")] = 4,
    shots: Annotated[int, typer.Option(min=1, help="Cases fired from each firearm.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed: the same seed gives byte-identical files.")] = 2026,
    whole_head: Annotated[
        bool,
        typer.Option(
            "--whole-head",
            help="Scan the whole case head (primer, seam groove, headstamp, rim) with a measured firing-pin crater, "
            "as several commercial instruments export it, instead of the primer alone at 6.25 µm; the firearms' marks "
            "are of generation 2 (docs/sample-data.md).",
        ),
    ] = False,
    spacing_um: Annotated[
        float,
        typer.Option(
            "--spacing-um", min=6.25, max=50.0, help="Pixel spacing of the whole-head scans, µm (not finer than the model's 6.25 µm)."
        ),
    ] = 9.5,
) -> None:
    """Simulate firearms, fire and scan cases: x3p + PNG per case and truth.csv."""
    paths = write_samples(out_dir, firearms, shots, seed, spacing_um if whole_head else None)
    note(f"wrote {len(paths)} cases and truth.csv to {out_dir}")


def demo() -> None:
    """The UK-France story on simulated cases: identities, trust, a match, receipts, a correlation request searched on import, a lead confirmed, the hit notified back."""
    import secrets
    import tempfile

    saved = {name: os.environ.get(name) for name in (PASSPHRASE_ENV, "BALLISTICS_HOME")}
    # Each lab's private keys are protected by a passphrase that lives only in this process.
    os.environ[PASSPHRASE_ENV] = secrets.token_urlsafe(24)
    try:
        with tempfile.TemporaryDirectory(prefix="ballistics-demo-") as tmp:
            story(Path(tmp))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(label: str, home: Path, *args: str) -> int:
    """Run one command as the lab would type it, showing the command line first."""
    from cli import main

    shown = " ".join(a if not a.startswith("/") else Path(a).name for a in args)
    out().print(f"[dim]{label}$[/dim] [bold]ballistics {shown}[/bold]")
    return main(["--home", str(home), *args])


def quietly(home: Path, *args: str) -> int:
    """Run one command without showing it (the story's bookkeeping)."""
    from cli import main

    return main(["--home", str(home), *args])


def story(root: Path) -> None:
    from rich.markup import escape

    from ballistics.store import Store
    from exchange.card import format_fingerprint
    from exchange.files import write_atomic
    from exchange.keys import load_card

    uk, fr, cases, inbox = root / "uk-lab", root / "fr-lab", root / "cases", root / "fr-inbox"
    out().rule("1. Two laboratories create their identities")
    run("UK", uk, "keys", "init", "--lab", "UK-FSL", "--name", "UK Forensic Science Laboratory", "--country", "GB")
    run("FR", fr, "keys", "init", "--lab", "FR-IRCGN", "--name", "Institut de recherche criminelle de la Gendarmerie", "--country", "FR")

    out().rule("2. They swap key cards and check the fingerprints over the phone")
    for label, home, partner, card in (("UK", uk, fr, root / "fr.card"), ("FR", fr, uk, root / "uk.card")):
        write_atomic(card, load_card(partner).to_bytes(), mode=0o644)
        spoken = format_fingerprint(load_card(partner).fingerprint)
        out().print(f"{label} hears the partner read out: {spoken}")
        run(label, home, "keys", "trust", str(card), "--fingerprint", spoken)

    out().rule("3. Simulated firearms: F01 is the crime gun, fired in both countries")
    paths = {p.stem: p for p in write_samples(cases, firearms=4, shots=3, seed=2026)}
    out().print("12 cartridge cases from 4 simulated firearms (ground truth in truth.csv)")

    out().rule("4. The French lab files its reference exhibits")
    for index, stem in enumerate(("F01-03", "F02-01", "F02-02", "F03-01", "F03-02", "F04-01"), 1):
        quietly(fr, "db", "add", str(paths[stem]), "--case", f"FR-2025-{400 + index}", "--exhibit", "E1", "--calibre", "9mm Luger")
    run("FR", fr, "db", "list")

    out().rule("5. The UK lab compares a crime-scene case with its own collection and records the match")
    for stem, case, exhibit in (
        ("F01-02", "UK-2026-0099", "TF1"),
        ("F02-03", "UK-2025-0311", "K1"),
        ("F03-03", "UK-2025-0420", "K1"),
        ("F01-01", "UK-2026-0117", "CS1"),
    ):
        quietly(uk, "db", "add", str(paths[stem]), "--case", case, "--exhibit", exhibit, "--calibre", "9mm Luger")
    run("UK", uk, "search", str(paths["F01-01"]), "--shortlist", "2", "--top", "3")
    run(
        "UK",
        uk,
        "compare",
        str(paths["F01-02"]),
        str(paths["F01-01"]),
        "--record",
        str(root / "uk-match.json"),
        "--case",
        "UK-2026-0117",
        "--examiner",
        "Dr J. Hale",
        "--conclusion",
        "identification",
    )

    out().rule("6. Earlier deliveries: bundle 1 never arrived (an interceptor kept it), bundle 2 did, and was receipted")
    run("UK", uk, "bundle", "export", "--to", "FR-IRCGN", "--scan", str(paths["F04-03"]), "-o", str(root / "intercepted.bfx"))
    run("UK", uk, "bundle", "export", "--to", "FR-IRCGN", "--scan", str(paths["F04-03"]), "-o", str(root / "delivery-2.bfx"))
    run("FR", fr, "bundle", "import", str(root / "delivery-2.bfx"), "--outbox", str(root / "fr-outbox"))
    run("UK", uk, "bundle", "import", str(root / "fr-outbox"))
    for entry in Store.open(uk).ledger():
        receipt = entry.details.to_dict()["receipt"]
        out().print(
            f"UK holds {entry.sender_lab}'s signed receipt: bundle {receipt['bundle_id'][:8]} received with the SHA-256 of its {len(receipt['files'])} file(s)"
        )

    out().rule("7. The UK lab sends France a correlation request for its crime-scene case")
    inbox.mkdir()
    request = inbox / "uk-request-UK-2026-0117.bfx"
    run(
        "UK",
        uk,
        "request",
        "export",
        "--to",
        "FR-IRCGN",
        "--scan",
        str(paths["F01-01"]),
        "--case",
        "UK-2026-0117",
        "--exhibit",
        "CS1",
        "--calibre",
        "9mm Luger",
        "-o",
        str(request),
    )
    forged = bytearray(request.read_bytes())
    forged[len(forged) // 2] ^= 0x20
    (inbox / "uk-request-copy.bfx").write_bytes(bytes(forged))
    shutil.copyfile(root / "intercepted.bfx", inbox / "uk-delivery-old.bfx")
    out().print("the French inbox also holds a copy of the request with one byte changed, and the intercepted bundle 1, replayed")

    out().rule("8. The French lab imports its inbox in one batch: the request is searched automatically")
    code = run("FR", fr, "bundle", "import", str(inbox), "--outbox", str(root / "fr-outbox"))
    out().print(f"exit code {code} (security refusal); the batch went on, and each refused bundle sits in quarantine beside its reason:")
    for sidecar in sorted((fr / "quarantine").glob("*.reason.json")):
        reason = json.loads(sidecar.read_text())
        out().print(f"  {Path(reason['path']).name}: {reason['error']} (exit {reason['exit_code']}): {reason['reason']}", markup=False)
    run("FR", fr, "leads", "list")
    out().print("(the scan of delivery 2, imported in step 6, was searched on import too, and found its own match)")
    leads = [lead for lead in Store.open(fr).leads("new") if lead.request_id is not None]
    for lead in leads:
        out().print(
            f"[bold green]cross-border link found:[/] UK case {escape(lead.partner_case)} exhibit {escape(lead.partner_exhibit)} and French case "
            f"{escape(lead.our_case)} exhibit {escape(lead.our_exhibit)} (CMC {lead.cmc}, log10 LR {lead.log10_lr or 0:+.2f}), "
            "a lead for a French examiner to confirm"
        )
    if not leads:
        out().print("[bold red]no cross-border link found[/]")
        return

    out().rule("9. The French examiner confirms the lead: a match record, and a hit notification for the UK")
    run("FR", fr, "leads", "show", str(leads[0].id))
    run(
        "FR",
        fr,
        "leads",
        "confirm",
        str(leads[0].id),
        "--examiner",
        "Capitaine L. Moreau",
        "--reviewer",
        "Dr A. Besson",
        "--outbox",
        str(root / "fr-outbox"),
    )

    out().rule("10. The UK lab imports the French answers: the correlation response and the hit notification")
    run("UK", uk, "bundle", "import", str(root / "fr-outbox"))
    run("UK", uk, "request", "list")
    for hit in Store.open(uk).received_hits():
        out().print(
            f"UK holds {escape(hit.partner_lab)}'s confirmed hit: its crime-scene scan {hit.scan_sha256[:12]} matches French case "
            f"{escape(hit.partner_case)} exhibit {escape(hit.partner_exhibit)} (log10 LR {hit.log10_lr or 'not computed'}), "
            f"examined by {escape(hit.examiner)}; match record {hit.record_id} stored"
        )

    out().rule("11. The firearm series: one gun, cases on both sides of the Channel")
    from ballistics.series import collection_series

    for label, home in (("UK", uk), ("FR", fr)):
        run(label, home, "series", "list")
        for found in collection_series(Store.open(home)):
            if found.cross_border:
                members = ", ".join(case.ref.key for case in found.cases)
                out().print(
                    f"[bold green]{label} sees one firearm across the Channel:[/] series {found.id}, {len(found.cases)} cases ({escape(members)}), "
                    f"countries {', '.join(found.countries)}"
                )

    out().rule("12. Both labs check their audit logs")
    for label, home in (("FR", fr), ("UK", uk)):
        code = run(label, home, "audit", "verify")
        out().print(f"{label} audit log {'intact' if code == 0 else 'BROKEN'}")


def register(app: typer.Typer) -> None:
    app.add_typer(sample_app, name="sample")
    app.command()(demo)
