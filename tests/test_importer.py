"""Batch import: outcomes and refusals with real bundles on disk, quarantine, replay ledger,
idempotence, receipts, SIGKILL at random moments, two importers at once, CLI JSON and exit codes."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO, SAMPLE_DATA, Backend
from exchange_support import PASSPHRASE, LabHome, file_entry, introduce, make_lab, signed_bundle
from test_files import kill_writer_mid_write
from test_records import a_v1_record, comparison_dict

import cli
from ballistics.calibration import default_calibration
from ballistics.clock import now_utc
from ballistics.errors import BallisticsError
from ballistics.files import temporaries_of
from ballistics.ledger import FindingsDetails, ReceiptDetails
from ballistics.likelihood_ratio import likelihood_ratio
from ballistics.method import CmcParams, DecisionParams
from ballistics.records import ExaminerConclusion, build_record, record_bytes
from ballistics.scan import sha256_file
from ballistics.schema import HEAD, create_engine, current_revision, migrate
from ballistics.store import Store
from exchange.audit import AuditLog
from exchange.bundle import export_bundle
from exchange.importer import ImportReport, import_bundles, recover
from exchange.keys import revoke_identity
from exchange.reader import open_bundle

pytestmark = pytest.mark.usefixtures("backend")


@dataclass
class World:
    root: Path
    uk: LabHome
    fr: LabHome
    de: LabHome
    stranger: LabHome  # trusts FR, but FR does not trust it


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("import-labs")
    uk, fr, de, stranger = (
        make_lab(root, lab, country) for lab, country in (("UK-FSL", "GB"), ("FR-IRCGN", "FR"), ("DE-BKA", "DE"), ("XX-LAB", "GB"))
    )
    introduce(uk, fr)
    introduce(uk, de)
    stranger.trust.trust(fr.identity.card, fr.identity.card.fingerprint, where="test")
    return World(root, uk, fr, de, stranger)


def scan(name: str) -> Path:
    path = SAMPLE_DATA / f"{name}.x3p"
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


def copy_lab(lab: LabHome, target: Path) -> LabHome:
    """A private copy of a session lab's home (keys, trust, sequence, sent bundles), so each test starts clean.

    The identity is loaded from the copy, so that it finds the copy's records (what it sent).
    """
    shutil.copytree(lab.home, target)
    copied = LabHome(target, lab.identity)
    copied.reload()
    return copied


def a_record(lab: LabHome, reference: Path | None, questioned: Path | None, case: str = "UK-2026-0117") -> dict:
    comparison = comparison_dict()
    for side, path in (("reference", reference), ("questioned", questioned)):
        if path is not None:
            comparison[side] = {"path": str(path), "sha256": sha256_file(path)}
    return build_record(
        comparison,
        lab=lab.identity.card.lab,
        case_id=case,
        exhibits=("K1", "Q1"),
        examiner={"name": "A. Examiner"},
        class_characteristics={"calibre": "9mm Luger", "firing_pin_shape": "rectangular"},
    )


def findings(
    sender: LabHome, out: Path, *, scans: tuple[Path, ...] = (), to: tuple[str, ...] = ("FR-IRCGN",), record: dict | None = None, **kw
) -> Path:
    """A bundle of one record (citing the first two scans) and the scans, written by ``sender``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    record = record or a_record(sender, scans[0] if scans else None, scans[1] if len(scans) > 1 else None)
    record_file = out.parent / f"{out.stem}-record.json"
    record_file.write_bytes(record_bytes(record))  # unvalidated, so that a test can send a broken record
    export_bundle(sender.home, sender.identity, sender.trust, out, recipients=list(to), records=[record_file], scans=list(scans), **kw)
    record_file.unlink()
    return out


def run(lab: LabHome, *paths: Path, **kw) -> ImportReport:
    store = Store.open(lab.home)
    try:
        return import_bundles(lab.home, store, lab.identity, lab.trust, list(paths), audit=AuditLog(lab.home), **kw)
    finally:
        store.close()


def events(home: Path) -> list[str]:
    return [e.type for e in AuditLog(home).entries()]


# --- the store's migration ------------------------------------------------------------------------


def test_a_revision_2_database_gains_the_ledger(tmp_path: Path, backend: Backend) -> None:
    engine = create_engine(backend.url(tmp_path))
    migrate(engine, target="0002")
    engine.dispose()
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD
        assert sa.inspect(conn).has_table("bundle_ledger")
    assert store.ledger() == [] and store.last_sequence("UK-FSL") == 0


# --- imported, duplicate ------------------------------------------------------------------------------


def test_import_stores_records_and_partner_exhibits_then_reports_a_duplicate(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    k1, q1 = scan("F01-01"), scan("F01-02")
    bundle = findings(world.uk, tmp_path / "inbox" / "uk.bfx", scans=(k1, q1))
    report = run(fr, tmp_path / "inbox")
    assert [o.status for o in report.outcomes] == ["imported"] and report.exit_code == 0
    store = Store.open(fr.home)
    exhibits = {e.sha256: e for e in store.exhibits()}
    assert set(exhibits) == {sha256_file(k1), sha256_file(q1)}
    assert {(e.lab, e.partner, e.case, e.exhibit, e.characteristics.calibre) for e in exhibits.values()} == {
        ("UK-FSL", True, "UK-2026-0117", "K1", "9mm Luger"),
        ("UK-FSL", True, "UK-2026-0117", "Q1", "9mm Luger"),
    }
    assert all(e.path.read_bytes() == src.read_bytes() for e, src in ((exhibits[sha256_file(k1)], k1), (exhibits[sha256_file(q1)], q1)))
    assert store.cache_file(sha256_file(k1)).exists() and store.signatures([sha256_file(k1)])  # searchable like our own
    [record] = store.records()
    assert record["lab"]["id"] == "UK-FSL" and report.outcomes[0].records == (record["record_id"],)
    assert bundle.exists()  # the inbox keeps the evidence
    again = run(fr, bundle)
    assert [o.status for o in again.outcomes] == ["duplicate"] and again.exit_code == 0
    assert len(store.exhibits()) == 2 and len(store.records()) == 1 and len(store.ledger()) == 1
    assert events(fr.home).count("bundle_import") == 1 and events(fr.home).count("bundle_duplicate") == 1
    assert not list((fr.home / "import").iterdir())  # work directories removed


def test_scans_with_spaces_and_non_ascii_names_import_under_their_original_names(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    spaced, accented = tmp_path / "Fadul 3-1.x3p", tmp_path / "Épreuve n°2.x3p"
    shutil.copy(scan("F01-01"), spaced)
    shutil.copy(scan("F02-01"), accented)
    bundle = findings(world.uk, tmp_path / "inbox" / "uk.bfx", scans=(spaced, accented), record=a_record(world.uk, None, None))
    report = run(fr, bundle)
    assert [o.status for o in report.outcomes] == ["imported"], report.to_dict()
    store = Store.open(fr.home)
    found = {e.original_name: e for e in store.exhibits()}
    assert set(found) == {"Fadul 3-1.x3p", "Épreuve n°2.x3p"}
    assert {e.exhibit for e in found.values()} == {"Fadul 3-1", "Épreuve n°2"}  # no record cites them: named after the file
    for name, source in (("Fadul 3-1.x3p", spaced), ("Épreuve n°2.x3p", accented)):
        exhibit = found[name]
        assert exhibit.path == store.scan_file(sha256_file(source), "x3p") and exhibit.path.read_bytes() == source.read_bytes()
    details = store.ledger()[0].details
    assert isinstance(details, FindingsDetails)
    assert {f.name for f in details.files} == {f"scans/{sha256_file(p)}.x3p" for p in (spaced, accented)} | {"records/uk-record.json"}


def test_several_bundles_of_one_sender_import_in_sequence_order_whatever_their_names(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    first = findings(world.uk, tmp_path / "inbox" / "b-first.bfx")
    second = findings(world.uk, tmp_path / "inbox" / "a-second.bfx")
    report = run(fr, tmp_path / "inbox")
    assert [(o.path.name, o.status) for o in report.outcomes] == [("a-second.bfx", "imported"), ("b-first.bfx", "imported")]
    assert [e.bundle_id for e in Store.open(fr.home).ledger()] and second.exists() and first.exists()


# --- refusals ----------------------------------------------------------------------------------------


def _untrusted(w: World, tmp: Path, fr: LabHome) -> Path:
    return findings(w.stranger, tmp / "in.bfx")


def _revoked(w: World, tmp: Path, fr: LabHome) -> Path:
    rv = make_lab(tmp, "RV-LAB")
    introduce(rv, fr)
    bundle = findings(rv, tmp / "in.bfx")
    fr.trust.revoke(revoke_identity(rv.home, PASSPHRASE, "laptop stolen"), where="test")
    return bundle


def _tampered(w: World, tmp: Path, fr: LabHome) -> Path:
    bundle = findings(w.uk, tmp / "in.bfx")
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    bundle.write_bytes(bytes(data))
    return bundle


def _truncated(w: World, tmp: Path, fr: LabHome) -> Path:
    bundle = findings(w.uk, tmp / "in.bfx")
    bundle.write_bytes(bundle.read_bytes()[:-100])
    return bundle


def _replayed_id(w: World, tmp: Path, fr: LabHome) -> Path:
    fixed = os.urandom(16)
    rng = lambda n: fixed if n == 16 else os.urandom(n)  # noqa: E731 - the sender reuses a bundle id
    run(fr, findings(w.uk, tmp / "first" / "first.bfx", rng=rng))
    return findings(w.uk, tmp / "in.bfx", rng=rng)


def _stale(w: World, tmp: Path, fr: LabHome) -> Path:
    older = findings(w.uk, tmp / "in.bfx")
    run(fr, findings(w.uk, tmp / "newer" / "newer.bfx"))
    return older


def _bad_record(w: World, tmp: Path, fr: LabHome, monkeypatch: pytest.MonkeyPatch) -> Path:
    record = a_record(w.uk, None, None)
    del record["examiner"]
    monkeypatch.setattr("exchange.bundle.parse_record", lambda data, path: json.loads(data))  # a sender that skips validation
    return findings(w.uk, tmp / "in.bfx", record=record)


def _garbage(w: World, tmp: Path, fr: LabHome) -> Path:
    bundle = tmp / "in.bfx"
    bundle.write_bytes(os.urandom(3000))
    return bundle


def _bad_scan(w: World, tmp: Path, fr: LabHome) -> Path:
    fake = tmp / "Q9.x3p"
    fake.write_bytes(b"PK\x03\x04" + os.urandom(5000))
    return findings(w.uk, tmp / "in.bfx", scans=(fake,))


def _foreign_record(w: World, tmp: Path, fr: LabHome, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("exchange.bundle.check_own_record", lambda record, ours, path: None)  # a sender that skips the check
    return findings(w.uk, tmp / "in.bfx", record=a_record(w.de, None, None))


REFUSALS = {
    "untrusted sender": (_untrusted, "UntrustedSenderError", 4, "not in the trust store"),
    "revoked sender": (_revoked, "RevokedKeyError", 4, "revoked"),
    "tampered byte": (_tampered, "TamperedError", 4, ""),
    "truncated": (_truncated, "TruncatedError", 4, "truncated"),
    "replayed id": (_replayed_id, "ReplayedBundleError", 4, "already imported"),
    "stale sequence": (_stale, "StaleBundleError", 4, "not newer than"),
    "invalid record": (_bad_record, "RecordError", 3, "examiner"),
    "malformed file": (_garbage, "MalformedBundleError", 3, "magic"),
    "malformed scan": (_bad_scan, "MalformedBundleError", 3, "scans/Q9.x3p"),
    "record of another lab": (_foreign_record, "ForeignContentError", 4, "record of lab DE-BKA"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_quarantined_with_its_reason_and_the_batch_goes_on(
    case: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, error, exit_code, words = REFUSALS[case]
    fr = copy_lab(world.fr, tmp_path / "fr")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    args = (world, inbox, fr, monkeypatch) if make in (_bad_record, _foreign_record) else (world, inbox, fr)
    bad = make(*args)
    monkeypatch.undo()
    good = findings(world.uk, inbox / "zz-good.bfx")
    before = len(Store.open(fr.home).ledger())
    report = run(fr, inbox)
    [rejected] = report.of("rejected")
    assert (rejected.path, rejected.error, rejected.exit_code) == (bad, error, exit_code) and words in rejected.reason
    assert [o.path for o in report.of("imported")] == [good] and report.exit_code == exit_code
    assert not bad.exists() and good.exists()
    moved = Path(rejected.quarantine)
    assert moved.parent == fr.home / "quarantine" and moved.exists()
    sidecar = json.loads(moved.with_name(moved.name + ".reason.json").read_text())
    assert (
        sidecar["path"] == str(bad)
        and sidecar["error"] == error
        and sidecar["exit_code"] == exit_code
        and sidecar["reason"] == rejected.reason
    )
    assert "time" in sidecar and "bundle_id" in sidecar
    assert len(Store.open(fr.home).ledger()) == before + 1
    last_rejection = [e for e in AuditLog(fr.home).entries() if e.type == "bundle_rejected"][-1].record["details"]
    assert last_rejection["error"] == error and last_rejection["quarantine"] == str(moved)


# --- receipts ----------------------------------------------------------------------------------------


def test_receipt_round_trip_confirms_delivery_to_the_sender(world: World, tmp_path: Path) -> None:
    fr, uk = copy_lab(world.fr, tmp_path / "fr"), copy_lab(world.uk, tmp_path / "uk")
    bundle = findings(uk, tmp_path / "out" / "uk.bfx")
    sent_id = json.loads(json.dumps(run(fr, bundle, outbox=tmp_path / "receipts").to_dict()))["imported"][0]["bundle_id"]
    [receipt] = list((tmp_path / "receipts").glob("*.bfx"))
    assert Store.open(fr.home).ledger()[0].receipt_sha256 and "receipt_sent" in events(fr.home)
    back = run(uk, receipt)
    [outcome] = back.outcomes
    assert (outcome.status, outcome.kind, outcome.confirms, outcome.sender) == ("imported", "receipt", sent_id, "FR-IRCGN")
    entry = Store.open(uk.home).ledger()[0]
    assert entry.kind == "receipt" and isinstance(entry.details, ReceiptDetails) and entry.details.receipt.bundle_id == sent_id
    assert {f.name for f in entry.details.receipt.files} == {"records/uk-record.json"}
    received = [e for e in AuditLog(uk.home).entries() if e.type == "receipt_received"]
    assert received[0].record["details"]["bundle_id"] == sent_id
    assert [o.status for o in run(uk, receipt).outcomes] == ["duplicate"]
    assert not Store.open(uk.home).records()  # a receipt imports no records


def test_a_receipt_for_another_labs_bundle_is_refused(world: World, tmp_path: Path) -> None:
    fr, uk = copy_lab(world.fr, tmp_path / "fr"), copy_lab(world.uk, tmp_path / "uk")
    run(fr, findings(uk, tmp_path / "out" / "uk.bfx"), outbox=tmp_path / "receipts")
    [receipt] = list((tmp_path / "receipts").glob("*.bfx"))
    de = copy_lab(world.de, tmp_path / "de")  # DE trusts UK only; FR's receipt is to UK
    [outcome] = run(de, receipt).outcomes
    assert outcome.status == "not_for_us" and "not to this lab" in outcome.reason and receipt.exists()


def test_a_verified_bundle_too_large_to_receipt_is_imported_and_says_why_no_receipt_was_sent(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another implementation may send more files than a receipt can list (this writer refuses to)."""
    fr, uk = copy_lab(world.fr, tmp_path / "fr"), copy_lab(world.uk, tmp_path / "uk")
    records = [a_record(uk, None, None) for _ in range(250)]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bundle = signed_bundle(
        inbox / "big.bfx",
        uk,
        [fr],
        [file_entry(f"records/{i:03d}-{'x' * 176}.json", "record", record_bytes(r)) for i, r in enumerate(records)],
        now=now_utc().replace(microsecond=0),
    )
    monkeypatch.setenv("BALLISTICS_HOME", str(fr.home))
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    receipts = tmp_path / "receipts"
    assert cli.main(["bundle", "import", str(inbox), "--receipt-dir", str(receipts), "--json"]) == 0  # not a rejection
    [imported] = json.loads(capsys.readouterr().out)["imported"]
    assert imported["path"] == str(bundle) and len(imported["records"]) == 250 and imported["receipt"] is None
    reason = imported["no_receipt"]
    size = int(re.search(r"would be ([0-9,]+) bytes", reason)[1].replace(",", ""))
    assert size > 65_536 and reason.startswith("no delivery receipt: for 250 files and 250 records") and "UK-FSL" in reason
    assert not receipts.exists() or not list(receipts.iterdir())  # nothing half-written
    store = Store.open(fr.home)
    assert len(store.records()) == 250 and store.ledger()[0].receipt_sha256 is None
    store.close()
    [audited] = [e.record["details"] for e in AuditLog(fr.home).entries() if e.type == "receipt_impossible"]
    assert audited == {"bundle_id": imported["bundle_id"], "partner": "UK-FSL", "size": size, "reason": reason}

    assert cli.main(["bundle", "import", str(inbox), "--receipt-dir", str(receipts)]) == 0  # a rerun says the same, and goes on
    assert "0 imported, 1 duplicates" in capsys.readouterr().out
    assert cli.main(["audit", "verify", "--json"]) == 0
    [again] = run(fr, inbox, outbox=receipts).outcomes
    assert (again.status, again.receipt, again.no_receipt) == ("duplicate", None, reason)
    assert events(fr.home).count("receipt_impossible") == 3 and "receipt_sent" not in events(fr.home)


# --- bundle verify agrees with import ---------------------------------------------------------------


@pytest.mark.parametrize("case", ["stale sequence", "replayed id", "record of another lab"])
def test_verify_against_the_ledger_refuses_what_import_refuses(
    case: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, error, _, words = REFUSALS[case]
    fr = copy_lab(world.fr, tmp_path / "fr")
    args = (world, tmp_path, fr, monkeypatch) if make is _foreign_record else (world, tmp_path, fr)
    bad = make(*args)
    monkeypatch.undo()
    store = Store.open(fr.home)
    try:
        with pytest.raises(BallisticsError, match=words) as caught:
            open_bundle(bad, fr.identity, fr.trust, ledger=store)
    finally:
        store.close()
    assert type(caught.value).__name__ == error
    assert run(fr, bad).of("rejected")[0].error == error  # and the import says the same


def test_cli_verify_reads_the_ledger_and_reports_a_duplicate(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    older, newer = findings(world.uk, tmp_path / "older.bfx"), findings(world.uk, tmp_path / "newer.bfx")
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    assert cli.main(["--home", str(fr.home), "bundle", "verify", str(older), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["already_imported"] is None
    assert [o.path for o in run(fr, newer).of("imported")] == [newer]
    assert cli.main(["--home", str(fr.home), "bundle", "verify", str(newer), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["already_imported"]
    assert cli.main(["--home", str(fr.home), "bundle", "verify", str(older)]) == 4  # said "verified" before; import refuses it
    assert "not newer than" in capsys.readouterr().err
    assert older.exists()  # verify moves nothing


# --- the command: JSON shape and exit codes --------------------------------------------------------


def test_cli_json_lists_every_input_and_exits_with_the_highest_class(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    inbox = tmp_path / "inbox"
    good = findings(world.uk, inbox / "good.bfx")
    (inbox / "junk.bfx").write_bytes(b"not a bundle")
    monkeypatch.setenv("BALLISTICS_HOME", str(fr.home))
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    assert cli.main(["bundle", "import", str(inbox), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"imported", "duplicates", "not_for_us", "rejected", "correlations", "exit_code"} and doc["exit_code"] == 3
    assert [e["path"] for e in doc["imported"]] == [str(good)] and doc["duplicates"] == []
    [rejected] = doc["rejected"]
    assert (
        rejected["path"] == str(inbox / "junk.bfx") and rejected["exit_code"] == 3 and rejected["bundle_id"] is None and rejected["reason"]
    )
    assert {"path", "bundle_id", "reason", "exit_code"} <= set(doc["imported"][0])
    assert cli.main(["bundle", "import", str(inbox)]) == 0
    table = capsys.readouterr().out
    assert "0 imported, 1 duplicates, 0 not for us, 0 rejected" in table and "duplicate" in table
    assert cli.main(["audit", "verify", "--json"]) == 0


# --- crashes and concurrency -----------------------------------------------------------------------


def _subprocess_import(home: Path, inbox: Path, backend: Backend) -> subprocess.Popen:
    env = {**os.environ, "BALLISTICS_HOME": str(home), "BALLISTICS_PASSPHRASE": PASSPHRASE.decode(), **backend.env(home)}
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, cli; sys.exit(cli.main(sys.argv[1:]))", "bundle", "import", str(inbox), "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _batch(world: World, inbox: Path, names: list[tuple[str, str]]) -> dict[Path, set[str]]:
    """Bundles of two scans each (distinct scans), keyed to the SHA-256 of their scans."""
    out = {}
    for index, (a, b) in enumerate(names):
        bundle = findings(
            world.uk,
            inbox / f"b{index}.bfx",
            scans=(scan(a), scan(b)),
            record=a_record(world.uk, scan(a), scan(b), case=f"UK-CASE-{index}"),
        )
        out[bundle] = {sha256_file(scan(a)), sha256_file(scan(b))}
    return out


def _check_consistent(home: Path, bundles: dict[Path, set[str]], backend: Backend) -> int:
    """Integrity, rows -> files, and each bundle wholly imported or not at all; returns how many are in."""
    if backend.name == "sqlite" and not (home / "ballistics.db").exists():
        return 0
    engine = create_engine(backend.url(home))
    with engine.connect() as conn:
        if backend.name == "sqlite":  # PostgreSQL checks foreign keys on every write
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        tables = set(sa.inspect(conn).get_table_names())
        rows = dict(conn.execute(sa.text("SELECT sha256, file FROM scans")).all()) if "scans" in tables else {}
        ledger = set(conn.execute(sa.text("SELECT header_hash FROM bundle_ledger")).scalars()) if "bundle_ledger" in tables else set()
        records = set(conn.execute(sa.text("SELECT case_id FROM match_records")).scalars()) if "match_records" in tables else set()
    engine.dispose()
    assert all((home / file).exists() for file in rows.values())  # no row without its file
    imported = 0
    for index, shas in enumerate(bundles.values()):
        present = shas & set(rows)
        assert present in (set(), shas)  # never half a bundle
        assert (f"UK-CASE-{index}" in records) == bool(present)
        imported += bool(present)
    assert len(ledger) == imported
    return imported


def test_sigkill_at_random_moments_leaves_every_bundle_whole_or_absent(world: World, tmp_path: Path, backend: Backend) -> None:
    """Each round kills a fresh import at a random moment of its run; the first one is then finished."""
    inbox = tmp_path / "inbox"
    bundles = _batch(world, inbox, [("F01-01", "F01-02"), ("F02-01", "F02-02"), ("F03-01", "F03-02"), ("F01-03", "F02-03")])
    rng = random.Random(6)
    homes = []
    for round_ in range(4):
        home = copy_lab(world.fr, tmp_path / f"fr{round_}").home
        proc = _subprocess_import(home, inbox, backend)
        time.sleep(rng.uniform(1.0, 7.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        _check_consistent(home, bundles, backend)
        homes.append(home)
    for home in homes[:1]:
        proc = _subprocess_import(home, inbox, backend)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr.decode()
        assert _check_consistent(home, bundles, backend) == len(bundles)
        engine = create_engine(backend.url(home))
        with engine.connect() as conn:
            referenced = {str(home / file) for file in conn.execute(sa.text("SELECT file FROM scans")).scalars()}
        engine.dispose()
        assert {str(p) for p in (home / "scans").rglob("*") if p.is_file()} == referenced  # orphans of the killed run swept
        assert not list((home / "import").iterdir())
    assert all(b.exists() for b in bundles)


def test_recovery_removes_the_temporary_of_a_copy_killed_mid_write(tmp_path: Path) -> None:
    """A scan copy killed inside ``atomic_output`` leaves its temporary; the next import's recovery sweeps it."""
    home = tmp_path / "fr"
    store = Store.open(home)
    sha = "ab" * 32
    scan_file, cache_file = store.scan_file(sha, "x3p"), store.cache_file(sha)
    scan_file.parent.mkdir(parents=True)
    kill_writer_mid_write(scan_file)
    leftovers = temporaries_of(scan_file)
    assert len(leftovers) == 1 and not scan_file.exists()
    work = home / "import" / "work-1-dead"  # the work directory of the killed import: its lock is free
    work.mkdir(parents=True)
    (work / "lock").touch()
    (work / f"{'cd' * 16}.journal.json").write_text(
        json.dumps({"files": [{"sha256": sha, "scan": str(scan_file), "cache": str(cache_file)}]})
    )
    try:
        removed = recover(home, store)
    finally:
        store.close()
    assert removed == leftovers
    assert not leftovers[0].exists() and not work.exists()
    assert list(scan_file.parent.iterdir()) == []


def test_two_imports_at_once_import_each_bundle_exactly_once(world: World, tmp_path: Path, backend: Backend) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    Store.open(fr.home).close()  # both start from a migrated database
    inbox = tmp_path / "inbox"
    bundles = _batch(world, inbox, [("F01-01", "F02-01"), ("F03-01", "F01-02")])
    procs = [_subprocess_import(fr.home, inbox, backend) for _ in range(2)]
    docs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr.decode()
        docs.append(json.loads(stdout))
    imported = [e["path"] for d in docs for e in d["imported"]]
    duplicates = [e["path"] for d in docs for e in d["duplicates"]]
    assert sorted(imported) == sorted(map(str, bundles)) and sorted(duplicates) == sorted(map(str, bundles))
    assert _check_consistent(fr.home, bundles, backend) == len(bundles)
    assert events(fr.home).count("bundle_import") == len(bundles)


def test_a_record_with_its_likelihood_ratio_reaches_the_partner_intact(world: World, tmp_path: Path) -> None:
    """Version 2 with an LR computed on the packaged calibration, and a version-1 record, through real bundles."""
    fr = copy_lab(world.fr, tmp_path / "fr")
    k1, q1 = scan("F01-01"), scan("F01-02")
    comparison = comparison_dict()
    comparison["method"] = {"name": "congruent-matching-cells", "cmc": CmcParams().to_dict(), "decision": {"rule": DecisionParams().rule}}
    for side, path in (("reference", k1), ("questioned", q1)):
        comparison[side] = {"path": str(path), "sha256": sha256_file(path)}
    calibration = default_calibration()
    statement = likelihood_ratio(calibration, comparison).to_dict()
    record = build_record(
        comparison,
        lab=world.uk.identity.card.lab,
        case_id="UK-2026-0200",
        exhibits=("K1", "Q1"),
        examiner={"name": "A. Examiner"},
        likelihood_ratio=statement,
        examiner_conclusion=ExaminerConclusion(afte_category="identification", verbal=("moderately strong", "same source")),
        reviewer={"name": "B. Reviewer"},
    )
    findings(world.uk, tmp_path / "inbox" / "v2.bfx", scans=(k1, q1), record=record)
    old = a_v1_record()
    old["lab"] = world.uk.identity.card.lab.to_dict()
    for side, path in (("reference", k1), ("questioned", q1)):
        old["scans"][side] = {"sha256": sha256_file(path), "name": path.name}
    findings(world.uk, tmp_path / "inbox" / "v1.bfx", scans=(k1, q1), record=old)
    report = run(fr, tmp_path / "inbox")
    assert [o.status for o in report.outcomes] == ["imported", "imported"] and report.exit_code == 0
    store = Store.open(fr.home)
    try:
        received = store.record(record["record_id"])
        assert received == record
        assert received is not None and received["likelihood_ratio"] == statement
        assert received["likelihood_ratio"]["calibration"]["sha256"] == calibration.sha256
        assert received["examiner_conclusion"]["afte_category"] == "identification" and received["reviewer"] == {"name": "B. Reviewer"}
        assert store.record(old["record_id"]) == old  # version 1 kept as sent
    finally:
        store.close()
