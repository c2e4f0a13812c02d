"""Several examiners at once on one PostgreSQL database and one shared scan store.

Four processes, each a workstation with its own home whose ``settings.toml`` names the same
database and scan store, start together on a new database (so they migrate it at the same
moment), then add exhibits (each scan by two of them), record comparisons, search and import
partner bundles (each bundle by two of them). Afterwards: one migration, one exhibit per scan,
every record stored, every bundle imported exactly once and whole.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from conftest import REPO, SAMPLE_DATA, Backend
from exchange_support import introduce, make_lab
from test_importer import a_record, findings

from ballistics.scan import sha256_file
from ballistics.schema import HEAD

WORKERS = 4
#: Filed as exhibits by the workstations (two each, so each scan by two of them), searched for, compared.
EXHIBITS = ["F01-01", "F01-02", "F02-01", "F02-02"]
#: Sent by partners: two bundles with two scans each, two with a record only.
BUNDLE_SCANS = [("F01-03", "F02-03"), ("F03-02", "F03-03"), (), ()]


def sample(name: str) -> Path:
    return SAMPLE_DATA / f"{name}.x3p"


def test_four_examiners_at_once_lose_nothing_and_duplicate_nothing(tmp_path: Path, postgres: Backend) -> None:
    url = postgres.url(tmp_path / "lab-database")
    scan_store = tmp_path / "shared-scans"
    scan_store.mkdir()
    labs = tmp_path / "labs"
    fr = make_lab(labs, "FR-IRCGN", "FR")
    inbox = tmp_path / "inbox"
    bundles: list[tuple[Path, tuple[str, ...], str]] = []  # bundle, its scans' SHA-256, its record's case
    for index, (sender_id, names) in enumerate(zip(("UK-FSL", "DE-BKA", "BE-NICC", "NL-NFI"), BUNDLE_SCANS, strict=True)):
        sender = make_lab(labs, sender_id)  # one sender per bundle: sequence 1 each, in whatever order they land
        introduce(sender, fr)
        scans = tuple(sample(n) for n in names)
        case = f"{sender_id}-CASE"
        record = a_record(sender, *(scans or (None, None)), case=case)
        bundles.append((findings(sender, inbox / f"b{index}.bfx", scans=scans, record=record), tuple(map(sha256_file, scans)), case))

    start = tmp_path / "start"
    procs = []
    for worker in range(WORKERS):
        home = tmp_path / f"workstation-{worker}"
        shutil.copytree(fr.home, home)  # the lab's keys and trust, as on each of its workstations
        (home / "settings.toml").write_text(f'database_url = "{url}"\nscan_store = "{scan_store}"\n')
        mine = [EXHIBITS[(worker + k) % len(EXHIBITS)] for k in range(2)]
        plan = {
            "home": str(home),
            "start": str(start),
            "name": f"examiner {worker}",
            "lab": fr.identity.card.lab.to_dict(),
            "exhibits": [[str(sample(n)), f"FR-{n[:3]}", n] for n in mine],
            "comparisons": [[str(sample(mine[0])), str(sample(mine[1])), f"FR-{mine[0][:3]}"]] * 2,
            "search": str(sample("F03-01")),  # not in the collection: prepared, then ranked against it
            "bundles": [str(bundles[worker][0]), str(bundles[(worker + 1) % WORKERS][0])],
            "order": ["exhibits", "imports", "comparisons", "search"] if worker % 2 else ["exhibits", "comparisons", "search", "imports"],
        }
        (tmp_path / f"plan-{worker}.json").write_text(json.dumps(plan))
        env = {**os.environ, "PYTHONPATH": str(REPO), "BALLISTICS_HOME": str(home)}
        env.pop("BALLISTICS_DB_URL", None)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "examiner_worker.py"), str(tmp_path / f"plan-{worker}.json")],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    start.touch()
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr.decode()
        done.append(json.loads(stdout))

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]  # migrated once
        exhibits = conn.execute(sa.text("SELECT scan_sha256 FROM exhibits")).scalars().all()
        files = dict(conn.execute(sa.text("SELECT sha256, file FROM scans")).all())
        records = dict(conn.execute(sa.text("SELECT record_id, case_id FROM match_records")).all())
        cited = conn.execute(sa.text("SELECT count(*) FROM match_records WHERE comparison_id IS NOT NULL")).scalar()
        comparisons = conn.execute(sa.text("SELECT count(*) FROM comparisons")).scalar()
        ledger = conn.execute(sa.text("SELECT path FROM bundle_ledger")).scalars().all()
    engine.dispose()

    # no duplicate exhibit: each scan filed once, by exactly one of the workstations that tried
    lab_scans = {sha256_file(sample(n)) for n in EXHIBITS}
    partner_scans = {sha for _, shas, _ in bundles for sha in shas}
    assert sorted(exhibits) == sorted(lab_scans | partner_scans)
    for sha in lab_scans:
        tries = [e for d in done for e in d["exhibits"] if e["sha256"] == sha]
        assert sorted(e["added"] for e in tries) == [False, True] and not any(e["conflict"] for e in tries)
    # no lost record: the eight comparisons recorded, each with its record
    recorded = [r for d in done for r in d["records"]]
    assert len(recorded) == len(set(recorded)) == 2 * WORKERS and set(recorded) <= set(records)
    assert comparisons == cited == 2 * WORKERS
    # every bundle imported by exactly one workstation (the other: a duplicate) and whole
    for bundle, shas, case in bundles:
        outcomes = sorted(o["status"] for d in done for o in d["imports"] if o["path"] == str(bundle))
        assert outcomes == ["duplicate", "imported"], [o for d in done for o in d["imports"]]
        assert set(shas) <= set(files) and case in records.values()
    assert sorted(ledger) == sorted(str(b) for b, _, _ in bundles)
    # every search answered from the collection; every row's file is in the shared scan store, and no file without a row
    assert all(d["search"] and set(d["search"]) <= set(exhibits) for d in done)
    assert {str(scan_store / f) for f in files.values()} == {str(p) for p in (scan_store / "scans").rglob("*") if p.is_file()}
