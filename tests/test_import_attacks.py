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
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import x3pio
from exchange_support import PASSPHRASE, LabHome, file_entry, signed_bundle
from test_importer import World, a_record, copy_lab, findings, run
from test_importer import world as world  # the labs fixture, shared

import cli
from ballistics.clock import now_utc
from ballistics.records import record_bytes
from ballistics.scan import load_scan
from ballistics.schema import create_engine, current_version, migrate
from ballistics.store import Store
from exchange.audit import AuditLog
from exchange.canonical import canonical_json
from exchange.errors import TamperedError
from exchange.header import derive_keys, read_header, unwrap_file_key
from exchange.importer import ImportReport
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


def test_a_version_3_ledger_is_rebuilt_with_its_rows_under_the_new_key(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ballistics.db'}")
    migrate(engine, target=3)
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
        assert current_version(conn) == 4
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
