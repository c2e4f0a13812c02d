"""What a trusted partner, turned hostile, can put in a validly signed bundle, and what an inbox can hold.

Each test reproduces one attack on parsing or on the import paths (docs/security.md, "Parsing
and import") with a bundle signed by a trusted lab (``exchange_support.signed_bundle``) or a
real file on disk, then checks that the bundle is refused alone, with exit class 3 or 4, and
that the batch goes on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
import x3pio
from conftest import SAMPLE_DATA, Backend
from exchange_support import PASSPHRASE, LabHome, file_entry, signed_bundle
from PIL import Image
from rich.console import Console
from test_importer import World, a_record, copy_lab, findings, run
from test_importer import world as world  # the labs fixture, shared

import cli
from ballistics.clock import now_utc
from ballistics.errors import TooLargeError
from ballistics.records import record_bytes
from ballistics.scan import load_scan
from ballistics.schema import HEAD, create_engine, current_revision, migrate
from ballistics.store import Store
from commands import common
from exchange.audit import AuditLog
from exchange.canonical import canonical_json
from exchange.errors import TamperedError
from exchange.header import derive_keys, read_header, unwrap_file_key
from exchange.importer import ImportReport, recover
from exchange.manifest import DOMAIN_MANIFEST, SIGNATURE_BYTES
from exchange.reader import inspect_bundle, open_bundle
from exchange.stream import StreamWriter, decrypt_chunks


def signed(path: Path, sender: LabHome, recipients: list[LabHome], files: list, **kwargs: Any) -> Path:
    """A bundle validly signed by ``sender`` now, whatever its manifest says."""
    return signed_bundle(path, sender, recipients, files, now=now_utc().replace(microsecond=0), **kwargs)


def record_file(document: bytes, name: str = "records/CASE-1.json") -> tuple[dict[str, object], bytes]:
    return file_entry(name, "record", document)


def record_with(world: World, text: str) -> bytes:
    """A valid record of UK-FSL whose ``remarks`` are replaced by the raw JSON ``text``."""
    document = a_record(world.uk, None, None)
    document["conclusion"]["remarks"] = "@@"
    return record_bytes(document).replace(b'"@@"', text.encode())


def only_rejection(report: ImportReport) -> Any:
    [rejected] = report.of("rejected")
    return rejected


# --- 7. bounded JSON: depth and numbers ---------------------------------------------------------


DEEP = 100_000


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * DEEP + "]" * DEEP, "nested deeper than 32 levels"),
        ("[" * 40 + "]" * 40, "nested deeper than 32 levels"),
        ("1" * 5000, "longer than 32 characters"),
        ("NaN", "NaN is not JSON"),
        ("1e400", "not finite"),
        (str(2**63), "beyond"),
    ],
    ids=["100000-deep", "40-deep", "5000-digits", "NaN", "1e400", "2^63"],
)
def test_a_record_out_of_bounds_is_one_clean_rejection_and_the_batch_goes_on(world: World, tmp_path: Path, text: str, words: str) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    (tmp_path / "inbox").mkdir()
    bad = signed(tmp_path / "inbox" / "a-bad.bfx", world.uk, [fr], [record_file(record_with(world, text))])
    good = findings(world.uk, tmp_path / "inbox" / "b-good.bfx")
    report = run(fr, tmp_path / "inbox")
    rejected = only_rejection(report)
    assert (rejected.path, rejected.error, rejected.exit_code) == (bad, "RecordError", 3) and words in rejected.reason
    assert [o.path for o in report.of("imported")] == [good]
    assert run(fr, tmp_path / "inbox").exit_code == 0  # the rerun is not blocked: the bad bundle is in quarantine


def test_bundle_verify_refuses_a_deep_record_with_exit_3(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = signed(tmp_path / "deep.bfx", world.uk, [world.fr], [record_file(record_with(world, "[" * DEEP + "]" * DEEP))])
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    assert cli.main(["--home", str(world.fr.home), "bundle", "verify", str(path), "--json"]) == 3
    assert "nested deeper than 32 levels" in json.loads(capsys.readouterr().out)["error"]["reason"]


@pytest.mark.parametrize(("sequence", "error"), [(2**63, "MalformedBundleError"), (2**63 - 1, "MalformedBundleError")])
def test_a_sequence_beyond_2_to_the_53_is_malformed_and_the_batch_goes_on(world: World, tmp_path: Path, sequence: int, error: str) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")

    def edit(doc: dict[str, Any]) -> None:
        doc["sequence"] = sequence

    (tmp_path / "inbox").mkdir()
    bad = signed(tmp_path / "inbox" / "a-bad.bfx", world.uk, [fr], [], edit=edit)
    good = findings(world.uk, tmp_path / "inbox" / "b-good.bfx")
    report = run(fr, tmp_path / "inbox")
    rejected = only_rejection(report)
    assert (rejected.path, rejected.error, rejected.exit_code) == (bad, error, 3)
    assert [o.path for o in report.of("imported")] == [good]


def test_one_bundle_cannot_lock_its_sender_out(world: World, tmp_path: Path) -> None:
    """A sequence of 2^53 - 1 (the largest allowed) would make every later bundle of the lab stale."""
    fr = copy_lab(world.fr, tmp_path / "fr")
    uk = copy_lab(world.uk, tmp_path / "uk")
    run(fr, findings(uk, tmp_path / "first.bfx"))
    last = Store.open(fr.home).last_sequence("UK-FSL")

    def jump(step: int):
        def edit(doc: dict[str, Any]) -> None:
            doc["sequence"] = last + step

        return edit

    far = signed(tmp_path / "far.bfx", uk, [fr], [], edit=jump(2**53 - 1 - last))
    rejected = only_rejection(run(fr, far))
    assert (rejected.error, rejected.exit_code) == ("StaleBundleError", 4) and "more than 2^32 ahead" in rejected.reason
    assert Store.open(fr.home).last_sequence("UK-FSL") == last
    assert run(fr, findings(uk, tmp_path / "next.bfx")).exit_code == 0
    within = signed(tmp_path / "within.bfx", uk, [fr], [], edit=jump(2**32))
    assert [o.status for o in run(fr, within).outcomes] == ["imported"]


# --- 8. the replay ledger is keyed by (sender lab, bundle id) --------------------------------------


def test_another_lab_reusing_a_bundle_id_does_not_make_the_real_bundle_a_replay(world: World, tmp_path: Path) -> None:
    """DE reads the id of UK's bundle in its clear header and gets a bundle of its own, with that id, in first."""
    fr = copy_lab(world.fr, tmp_path / "fr")
    fr.trust.trust(world.de.identity.card, world.de.identity.card.fingerprint, where="test")
    real = findings(world.uk, tmp_path / "uk.bfx")
    bundle_id = bytes.fromhex(inspect_bundle(real)["bundle_id"])
    squatter = signed(tmp_path / "de.bfx", world.de, [fr], [], bundle_id=bundle_id)
    assert [o.status for o in run(fr, squatter).outcomes] == ["imported"]
    report = run(fr, real)
    assert [(o.status, o.sender, o.bundle_id) for o in report.outcomes] == [("imported", "UK-FSL", bundle_id.hex())]
    store = Store.open(fr.home)
    assert {(e.sender_lab, e.bundle_id) for e in store.ledger()} == {("DE-BKA", bundle_id.hex()), ("UK-FSL", bundle_id.hex())}
    assert store.ledger_entry("UK-FSL", bundle_id.hex()).header_hash == inspect_bundle(real)["header_hash"]
    assert [o.status for o in run(fr, real).outcomes] == ["duplicate"]


def test_the_same_sender_reusing_an_id_for_other_bytes_is_still_a_replay(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    first = findings(world.uk, tmp_path / "first.bfx")
    other = signed(tmp_path / "other.bfx", world.uk, [fr], [], bundle_id=bytes.fromhex(inspect_bundle(first)["bundle_id"]))
    run(fr, first)
    rejected = only_rejection(run(fr, other))
    assert (rejected.error, rejected.exit_code) == ("ReplayedBundleError", 4)


def test_a_revision_3_ledger_is_rebuilt_with_its_rows_under_the_new_key(tmp_path: Path, backend: Backend) -> None:
    engine = create_engine(backend.url(tmp_path))
    migrate(engine, target="0003")
    row = {
        "bundle_id": "ab" * 16,
        "sender_lab": "UK-FSL",
        "sender_key_id": "cd" * 32,
        "sequence": 7,
        "header_hash": "ef" * 32,
        "kind": "findings",
        "path": "/inbox/uk.bfx",
        "details": json.dumps({"files": [], "records": [], "exhibits": 0}),
        "imported": "2026-01-15T09:30:00Z",
        "receipt_sha256": None,
    }
    with engine.begin() as conn:
        assert sa.inspect(conn).get_pk_constraint("bundle_ledger")["constrained_columns"] == ["bundle_id"]
        conn.execute(sa.text(f"INSERT INTO bundle_ledger ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row)
    engine.dispose()
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD
        assert sa.inspect(conn).get_pk_constraint("bundle_ledger")["constrained_columns"] == ["sender_lab", "bundle_id"]
        assert [i["name"] for i in sa.inspect(conn).get_indexes("bundle_ledger")] == ["ix_bundle_ledger_sender"]
    entry = store.ledger_entry("UK-FSL", "ab" * 16)
    assert entry is not None and (entry.sequence, entry.header_hash) == (7, "ef" * 32)
    assert store.ledger_entry("DE-BKA", "ab" * 16) is None and store.last_sequence("UK-FSL") == 7


# --- 10. extraction binds to the manifest that was verified -----------------------------------------


def twin(original: Path, out: Path, sender: LabHome, reader: LabHome, files: list[tuple[dict[str, object], bytes]]) -> Path:
    """Another payload, signed by ``sender``, under ``original``'s very header (same id, stanzas, MAC).

    The sender holds the file key; here the reader unwraps it, which is the same key.
    """
    raw = original.read_bytes()
    header = read_header(io.BytesIO(raw), "x")
    stanza = next(s for s in header.stanzas if reader.identity.decryption_key(s.recipient.hex()))
    file_key = unwrap_file_key(header, stanza, reader.identity.decryption_key(stanza.recipient.hex()), "x")
    payload_key, _ = derive_keys(file_key, header.bundle_id)
    plaintext = b"".join(decrypt_chunks(io.BytesIO(raw[header.length :]), payload_key, header.hash, "x"))
    (length,) = struct.unpack_from(">I", plaintext, 0)
    doc = json.loads(plaintext[4 : 4 + length])
    doc["files"] = [entry for entry, _ in files]
    manifest = canonical_json(doc)
    signature = sender.identity.signing.sign(DOMAIN_MANIFEST, manifest)
    body = struct.pack(">I", len(manifest)) + manifest + struct.pack(">H", SIGNATURE_BYTES) + signature.to_bytes()
    body += b"".join(data for _, data in files)
    assert len(body) == len(plaintext), "the twin must have the same payload length, or the header would differ"
    sink = io.BytesIO()
    writer = StreamWriter(sink, payload_key, header.hash, len(body))
    writer.write(body)
    writer.close()
    out.write_bytes(header.raw + sink.getvalue())
    return out


def x3p_twins() -> tuple[bytes, bytes]:
    """Two valid x3p files of one size and different surfaces (members stored, checksums right)."""
    buffer = io.BytesIO()
    x3pio.write(buffer, np.random.default_rng(7).normal(size=(120, 140)) * 1e-6, x_scale=6.25e-6, y_scale=6.25e-6)
    with zipfile.ZipFile(buffer) as archive:
        xml, data = archive.read("main.xml"), archive.read("bindata/data.bin")

    def stored(heights: bytes) -> bytes:
        doc = xml.replace(hashlib.md5(data).hexdigest().encode(), hashlib.md5(heights).hexdigest().encode())
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for name, body in (
                ("main.xml", doc),
                ("md5checksum.hex", f"{hashlib.md5(doc).hexdigest()} *main.xml\n".encode()),
                ("bindata/data.bin", heights),
            ):
                archive.writestr(zipfile.ZipInfo(name, (2026, 1, 15, 9, 30, 0)), body)
        return out.getvalue()

    return stored(data), stored(np.frombuffer(data, "<f8")[::-1].tobytes())


SCAN_A, SCAN_B = x3p_twins()


def test_a_second_manifest_for_the_same_header_swapped_in_after_verification_is_refused(world: World, tmp_path: Path) -> None:
    first = signed(tmp_path / "a.bfx", world.uk, [world.fr], [file_entry("scans/K1.x3p", "scan", SCAN_A)])
    second = twin(first, tmp_path / "b.bfx", world.uk, world.fr, [file_entry("scans/K1.x3p", "scan", SCAN_B)])
    assert len(SCAN_A) == len(SCAN_B) and SCAN_A != SCAN_B
    verified = open_bundle(first, world.fr.identity, world.fr.trust)
    assert open_bundle(second, world.fr.identity, world.fr.trust).header.raw == verified.header.raw  # both verify alone
    second.replace(first)
    with pytest.raises(TamperedError, match="manifest"):
        verified.extract_to(tmp_path / "out")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a.bfx"]


def test_an_import_whose_bundle_is_swapped_for_a_twin_stores_nothing_of_either(world: World, tmp_path: Path) -> None:
    """The ledger and the audit log would hold hash A while the store held content B."""
    fr = copy_lab(world.fr, tmp_path / "fr")
    (tmp_path / "inbox").mkdir()
    first = signed(tmp_path / "inbox" / "a.bfx", world.uk, [fr], [file_entry("scans/K1.x3p", "scan", SCAN_A)])
    second = twin(first, tmp_path / "b.bfx", world.uk, fr, [file_entry("scans/K1.x3p", "scan", SCAN_B)])

    def swap(done: int, total: int) -> None:
        if done == 1:  # every bundle is verified; none is extracted yet
            second.replace(first)

    report = run(fr, first, progress=swap)
    rejected = only_rejection(report)
    assert (rejected.error, rejected.exit_code) == ("TamperedError", 4)
    store = Store.open(fr.home)
    assert store.ledger() == [] and store.exhibits() == []
    assert not [e for e in AuditLog(fr.home).entries() if e.type == "bundle_import"]


def test_the_twin_scans_are_real_scans(tmp_path: Path) -> None:
    for name, data in (("a.x3p", SCAN_A), ("b.x3p", SCAN_B)):
        (tmp_path / name).write_bytes(data)
    a, b = load_scan(tmp_path / "a.x3p"), load_scan(tmp_path / "b.x3p")
    assert a.heights.shape == b.heights.shape == (120, 140) and not np.array_equal(a.heights, b.heights)


# --- 12. import paths: regular files only, other labs' bundles left alone, unwritable inboxes -----


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened for reading waits for a writer)."""

    def expired(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """``folder`` made read-only for this process: its mode, and for root (whom modes do not stop) the immutable flag."""
    os.chmod(folder, 0o555)
    immutable = False
    try:
        if _writable(folder):
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if _writable(folder):
            pytest.skip("cannot make a folder read-only for this user (root without chattr)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        os.chmod(folder, 0o755)


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def test_a_fifo_named_like_a_bundle_does_not_hang_the_batch_and_stays_where_it_is(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    good = findings(world.uk, tmp_path / "inbox" / "good.bfx")
    fifo = tmp_path / "inbox" / "pipe.bfx"
    os.mkfifo(fifo)
    with deadline(60):
        report = run(fr, fifo, good)
    rejected = only_rejection(report)
    assert (rejected.path, rejected.error, rejected.exit_code) == (fifo, "MalformedBundleError", 3)
    assert "not a regular file" in rejected.reason and rejected.quarantine is None and "left where it is" in rejected.not_moved
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and [o.path for o in report.of("imported")] == [good]
    with deadline(60):
        assert run(fr, tmp_path / "inbox").exit_code == 0  # a folder scan passes it over


def test_a_device_node_is_neither_read_nor_copied_nor_deleted(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    device = inbox / "zero.bfx"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    link = inbox / "link.bfx"
    link.symlink_to("/dev/zero")
    with deadline(60):
        report = run(fr, device, link)
    for outcome in report.outcomes:
        assert (outcome.status, outcome.exit_code, outcome.quarantine) == ("rejected", 3, None)
        assert "not a regular file" in outcome.reason
    assert stat.S_ISCHR(device.lstat().st_mode) and link.is_symlink()
    assert not (fr.home / "quarantine").exists() or list((fr.home / "quarantine").iterdir()) == []


def test_bundles_for_other_labs_in_a_shared_folder_are_left_where_they_are(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    shared = tmp_path / "exchange"
    for_de = findings(world.uk, shared / "for-de.bfx", to=("DE-BKA",))
    for_fr = findings(world.uk, shared / "for-fr.bfx")
    report = run(fr, shared)
    assert [(o.path, o.status) for o in report.outcomes] == [(for_de, "not_for_us"), (for_fr, "imported")]
    [other] = report.of("not_for_us")
    assert "not to this lab" in other.reason and other.bundle_id == inspect_bundle(for_de)["bundle_id"]
    assert report.exit_code == 0 and for_de.exists() and not (fr.home / "quarantine").exists()
    assert report.to_dict()["not_for_us"][0]["path"] == str(for_de)


def test_a_read_only_inbox_with_junk_does_not_abort_the_batch(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    inbox = tmp_path / "inbox"
    good = findings(world.uk, inbox / "good.bfx")
    junk = inbox / "junk.bfx"
    junk.write_bytes(b"not a bundle")
    with unwritable(inbox):
        report = run(fr, inbox)
    rejected = only_rejection(report)
    assert (rejected.path, rejected.exit_code, rejected.quarantine) == (junk, 3, None)
    assert "cannot move it" in rejected.not_moved and junk.exists()
    assert [o.path for o in report.of("imported")] == [good] and report.exit_code == 3
    assert list((fr.home / "quarantine").iterdir()) == []  # no sidecar without its bundle


def _other_file_system(tmp_path: Path) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) to put the inbox on")
    return Path(tempfile.mkdtemp(prefix="inbox-", dir=shm))


def test_across_file_systems_a_regular_file_is_copied_then_removed_and_nothing_else(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    inbox = _other_file_system(tmp_path)
    try:
        junk = inbox / "junk.bfx"
        junk.write_bytes(b"not a bundle")
        fifo = inbox / "pipe.bfx"
        os.mkfifo(fifo)
        with deadline(60):
            report = run(fr, junk, fifo)
        moved, left = report.outcomes
        assert not junk.exists() and Path(moved.quarantine).read_bytes() == b"not a bundle"
        assert left.quarantine is None and stat.S_ISFIFO(fifo.lstat().st_mode)
        again = inbox / "again.bfx"
        again.write_bytes(b"not a bundle either")
        with unwritable(inbox):
            rejected = only_rejection(run(fr, again))
        assert rejected.quarantine is None and "cannot remove it" in rejected.not_moved and again.exists()
        assert sorted(p.name for p in (fr.home / "quarantine").iterdir()) == sorted(
            [Path(moved.quarantine).name, Path(moved.quarantine).name + ".reason.json"]
        )
    finally:
        shutil.rmtree(inbox)


# --- 13. recovery deletes only the store's own files -------------------------------------------


def _dead_work(home: Path, journal: bytes) -> Path:
    work = home / "import" / "work-1-dead"
    work.mkdir(parents=True)
    (work / "lock").touch()
    (work / f"{'cd' * 16}.journal.json").write_bytes(journal)
    return work


def test_a_planted_journal_cannot_make_an_import_delete_a_file_it_names(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    victims = [tmp_path / "elsewhere.txt", fr.home / "keys" / "identity.json"]
    victims[0].write_text("precious")
    sha = "ab" * 32
    _dead_work(fr.home, json.dumps({"files": [{"sha256": sha, "scan": str(victims[0]), "cache": str(victims[1])}]}).encode())
    store = Store.open(fr.home)
    orphan = store.scan_file(sha, "x3p")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"PK\x03\x04 left by a killed import")
    try:
        removed = recover(fr.home, store)
    finally:
        store.close()
    assert all(v.exists() for v in victims) and removed == [orphan] and not orphan.exists()


@pytest.mark.parametrize(
    "journal",
    [b"", b"\xff\xfe", b"[" * 100_000, b'{"files": 1}', b'{"files": [{"sha256": "../../keys/identity"}]}', b'{"files": [[1]]}', b"1e400"],
    ids=["empty", "not-utf8", "deep", "files-not-a-list", "path-as-hash", "item-not-an-object", "not-finite"],
)
def test_a_journal_that_is_not_one_names_nothing_and_breaks_nothing(world: World, tmp_path: Path, journal: bytes) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    work = _dead_work(fr.home, journal)
    report = run(fr, findings(world.uk, tmp_path / "good.bfx"))
    assert [o.status for o in report.outcomes] == ["imported"] and not work.exists()
    assert (fr.home / "keys" / "identity.json").exists()


def test_a_journal_that_is_a_fifo_does_not_hang_recovery(world: World, tmp_path: Path) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    work = _dead_work(fr.home, b"")
    journal = next(work.glob("*.journal.json"))
    journal.unlink()
    os.mkfifo(journal)
    with deadline(60):
        assert run(fr, findings(world.uk, tmp_path / "good.bfx")).exit_code == 0


# --- 9. decompression bombs and scans that are not what their name says -----------------------------


def x3p_with(*, pad_xml: int = 0, mask: bytes | None = None) -> bytes:
    """A valid x3p (checksums right), ``main.xml`` padded with a comment of ``pad_xml`` bytes, with ``mask`` as its mask."""
    buffer = io.BytesIO()
    x3pio.write(buffer, np.random.default_rng(3).normal(size=(60, 80)) * 1e-6, x_scale=6.25e-6, y_scale=6.25e-6)
    with zipfile.ZipFile(buffer) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    if pad_xml:
        head, _, rest = members["main.xml"].partition(b"?>")
        members["main.xml"] = head + b"?><!--" + b" " * pad_xml + b"-->" + rest
        members["md5checksum.hex"] = f"{hashlib.md5(members['main.xml']).hexdigest()} *main.xml\n".encode()
    if mask is not None:
        members["bindata/mask.png"] = mask
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, holding one row of them."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + b"\xcd\x7f\x32" * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row, 9))
        + chunk(b"IEND", b"")
    )


BOMBS = {
    "main.xml of 5 MiB": (lambda: x3p_with(pad_xml=5 * 1024 * 1024), "'main.xml' declares 5,24"),
    "mask of 20000 x 20000": (lambda: x3p_with(mask=png_declaring(20_000, 20_000)), "declares too many pixels"),
    "mask of 4 x the surface": (lambda: x3p_with(mask=png_declaring(1600, 60)), "bindata/mask.png declares 1600 x 60 pixels"),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_a_bomb_inside_an_x3p_is_refused_before_it_is_inflated_or_decoded(world: World, tmp_path: Path, case: str) -> None:
    make, words = BOMBS[case]
    data = make()
    assert len(data) < 200_000  # small on the wire
    (tmp_path / "bomb.x3p").write_bytes(data)
    with pytest.raises(TooLargeError, match=words):
        load_scan(tmp_path / "bomb.x3p")
    fr = copy_lab(world.fr, tmp_path / "fr")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bad = signed(inbox / "a-bomb.bfx", world.uk, [fr], [file_entry("scans/K1.x3p", "scan", data)])
    good = findings(world.uk, inbox / "b-good.bfx")
    report = run(fr, inbox)
    rejected = only_rejection(report)
    assert (rejected.path, rejected.error, rejected.exit_code) == (bad, "MalformedBundleError", 3) and words in rejected.reason
    assert [o.path for o in report.of("imported")] == [good] and Store.open(fr.home).exhibits() == []


def test_an_x3p_with_a_mask_of_its_own_size_still_loads(tmp_path: Path) -> None:
    ok, mask = cv2.imencode(".png", np.full((60, 80, 3), (0x32, 0x7F, 0xCD), np.uint8))  # all background (#cd7f32): kept
    (tmp_path / "masked.x3p").write_bytes(x3p_with(mask=mask.tobytes()))
    scan = load_scan(tmp_path / "masked.x3p")
    assert ok and scan.heights.shape == (60, 80) and not np.isnan(scan.heights).any()


@pytest.mark.parametrize("kind", ["png", "tiff"])
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"wide.{kind}"
    if kind == "png":
        path.write_bytes(png_declaring(20_001, 20_001))
    else:
        Image.new("L", (20_001, 8)).save(path, compression="tiff_deflate")
    with pytest.raises(TooLargeError, match=r"20001|declares too many pixels"):
        load_scan(path, pixel_um=6.25)
    small = tmp_path / f"small.{kind}"
    Image.new("L", (40, 30), 128).save(small)
    assert load_scan(small, pixel_um=6.25).heights.shape == (30, 40)


def test_a_tiff_named_x3p_is_refused_and_not_stored(world: World, tmp_path: Path) -> None:
    tiff = io.BytesIO()
    Image.new("L", (40, 30), 128).save(tiff, format="TIFF")
    fr = copy_lab(world.fr, tmp_path / "fr")
    bad = signed(tmp_path / "tiff.bfx", world.uk, [fr], [file_entry("scans/K1.x3p", "scan", tiff.getvalue())])
    rejected = only_rejection(run(fr, bad))
    assert (rejected.error, rejected.exit_code) == ("MalformedBundleError", 3) and "must be an x3p file" in rejected.reason
    assert Store.open(fr.home).exhibits() == []


# --- 6. partner strings are data on screen: no markup, no terminal control ----------------------------


def test_partner_case_and_exhibit_ids_cannot_break_or_spoof_db_list_search_and_import(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fr = copy_lab(world.fr, tmp_path / "fr")
    k1, q1 = SAMPLE_DATA / "F01-01.x3p", SAMPLE_DATA / "F01-02.x3p"
    record = a_record(world.uk, k1, q1, case="[/]UK-[bold red]2026")
    record["exhibits"]["questioned"] = "Q1\u202eexe.1gp\x9b2J[/]"  # a bidi override and a C1 CSI: no C0 control passes the schema
    findings(world.uk, tmp_path / "inbox" / "uk.bfx", scans=(k1, q1), record=record)
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    monkeypatch.setattr(common, "out", lambda: Console(width=400, soft_wrap=True))  # wide enough that no cell is folded
    home = ["--home", str(fr.home)]
    assert cli.main([*home, "bundle", "import", str(tmp_path / "inbox")]) == 0
    capsys.readouterr()
    for command in (["db", "list"], ["search", str(k1), "--shortlist", "2", "--workers", "1"]):
        assert cli.main([*home, *command]) == 0
        screen = capsys.readouterr().out
        assert "[/]UK-[bold red]2026/Q1\\u202eexe.1gp\\x9b2J[/]" in screen  # the one other exhibit: the query is K1
        assert "\u202e" not in screen and "\x9b" not in screen
    assert cli.main([*home, "db", "show", "[/]UK-[bold red]2026/K1"]) == 0
    assert "[/]UK-[bold red]2026" in capsys.readouterr().out
    assert cli.main([*home, "db", "show", "[/]UK-[bold red]2026/Q1\u202e"]) == 3
    assert "Q1\\u202e" in capsys.readouterr().err
