"""Delivery receipts: built from a verified bundle, canonical, parsed strictly, sent as a bundle."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from exchange_support import T0, LabHome, introduce, make_lab
from test_records import a_record

from ballistics.labs import LabKey
from ballistics.ledger import DeliveryReceipt, ReceiptFile
from ballistics.records import write_record
from ballistics.store import Store
from exchange.bundle import export_bundle
from exchange.canonical import canonical_json
from exchange.errors import BundleContentError, MalformedBundleError, NotARecipientError, ReceiptMismatchError
from exchange.importer import import_bundles, send_receipt
from exchange.manifest import MAX_RECEIPT_BYTES
from exchange.reader import open_bundle
from exchange.receipts import encode_receipt, parse_receipt, receipt_for
from exchange.sent import sent_dir


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabHome, LabHome, Path]:
    root = tmp_path_factory.mktemp("receipts")
    uk, fr = make_lab(root, "UK-FSL"), make_lab(root, "FR-IRCGN", "FR")
    introduce(uk, fr)
    record = write_record(a_record(), root / "CASE-42.json")
    bundle = root / "findings.bfx"
    export_bundle(uk.home, uk.identity, uk.trust, bundle, recipients=["FR-IRCGN"], records=[record], now=T0)
    return uk, fr, bundle


def test_a_receipt_names_the_bundle_its_files_and_both_labs(labs: tuple[LabHome, LabHome, Path]) -> None:
    uk, fr, bundle = labs
    verified = open_bundle(bundle, fr.identity, fr.trust, now=T0)
    receipt = receipt_for(verified.manifest, fr.identity.card.lab_key, ["r2", "r1"], T0)
    assert (receipt.bundle_id, receipt.header_hash, receipt.sequence) == (
        verified.manifest.bundle_id,
        verified.manifest.header_hash,
        verified.manifest.sequence,
    )
    assert receipt.sender == LabKey("UK-FSL", uk.identity.card.key_id) and receipt.recipient == LabKey("FR-IRCGN", fr.identity.card.key_id)
    [file] = receipt.files
    assert (file.name, file.sha256) == ("records/CASE-42.json", hashlib.sha256((bundle.parent / "CASE-42.json").read_bytes()).hexdigest())
    assert receipt.records == ("r1", "r2") and receipt.received == "2026-01-15T09:30:00Z"
    data = encode_receipt(receipt)
    assert data == canonical_json(receipt.to_dict()) and json.loads(data)["type"] == "ballistics-delivery-receipt"
    assert parse_receipt(data, "r") == receipt


def test_the_receipt_bundle_goes_back_to_the_sender_who_reads_the_same_receipt(labs: tuple[LabHome, LabHome, Path], tmp_path: Path) -> None:
    uk, fr, bundle = labs
    verified = open_bundle(bundle, fr.identity, fr.trust, now=T0)
    sent = send_receipt(
        fr.home, fr.identity, fr.trust, receipt_for(verified.manifest, fr.identity.card.lab_key, ["r1"], T0), tmp_path / "out", T0
    )
    assert sent.path == tmp_path / "out" / f"receipt-{verified.manifest.bundle_id}-FR-IRCGN-to-UK-FSL.bfx"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [sent.path.name]  # the temporary source is gone
    back = open_bundle(sent.path, uk.identity, uk.trust, now=T0)  # the sender opens it, checked like any bundle
    assert back.receipt == sent.receipt and back.records == ()
    assert [f.kind for f in back.files] == ["receipt"] and back.files[0].sha256 == sent.sha256
    assert sent.sha256 == hashlib.sha256(encode_receipt(sent.receipt)).hexdigest()
    with pytest.raises(NotARecipientError, match="not to this lab"):
        open_bundle(sent.path, fr.identity, fr.trust, now=T0)  # addressed to the sender only


def _receipt_doc() -> dict:
    return DeliveryReceipt(
        bundle_id="01" * 16,
        header_hash="cd" * 32,
        sequence=3,
        sender=LabKey("UK-FSL", "11" * 32),
        recipient=LabKey("FR-IRCGN", "22" * 32),
        files=(),
        records=("r1",),
        received="2026-01-15T09:30:00Z",
    ).to_dict()


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: {**d, "type": "something-else"}, "not a version-1"),
        (lambda d: {**d, "version": 2}, "not a version-1"),
        (lambda d: {**d, "extra": True}, "not a version-1"),
        (lambda d: {**d, "bundle_id": "zz"}, "malformed"),
        (lambda d: {**d, "sequence": 0}, "malformed"),
        (lambda d: {**d, "sender": {"lab": "UK-FSL"}}, "malformed"),
        (lambda d: {**d, "files": [{"name": "x", "sha256": "00", "size": 1}]}, "malformed"),
        (lambda d: {**d, "records": [1]}, "malformed"),
        (lambda d: {**d, "received": "yesterday"}, "invalid time"),
    ],
)
def test_malformed_receipts_are_refused(mutate, words: str) -> None:
    parse_receipt(canonical_json(_receipt_doc()), "r")  # the unmutated one parses
    with pytest.raises(MalformedBundleError, match=words):
        parse_receipt(canonical_json(mutate(_receipt_doc())), "r")


def test_oversized_and_non_json_receipts_are_refused() -> None:
    with pytest.raises(MalformedBundleError, match="larger than"):
        parse_receipt(b" " * (64 * 1024 + 1), "r")
    with pytest.raises(MalformedBundleError, match="not ASCII JSON"):
        parse_receipt('{"type": "é"}'.encode(), "r")


# --- a receipt must match what this lab sent (item 11) ---------------------------------------------


def _receipt_bundle(home: LabHome, to: LabHome, receipt: DeliveryReceipt, out: Path) -> Path:
    """A receipt bundle ``home`` signs and sends to ``to``, saying whatever ``receipt`` says."""
    source = out.parent / f"receipt-{receipt.bundle_id}.json"
    source.write_bytes(encode_receipt(receipt))
    export_bundle(home.home, home.identity, home.trust, out, recipients=[to.identity.card.lab.id], receipts=[source], now=T0)
    return out


def test_receipts_are_matched_against_what_this_lab_sent(labs: tuple[LabHome, LabHome, Path], tmp_path: Path) -> None:
    uk, fr, bundle = labs
    de = make_lab(tmp_path, "DE-BKA", "DE")
    introduce(uk, de)
    verified = open_bundle(bundle, fr.identity, fr.trust, now=T0)
    genuine = receipt_for(verified.manifest, fr.identity.card.lab_key, ["r1"], T0)
    ok = open_bundle(_receipt_bundle(fr, uk, genuine, tmp_path / "ok.bfx"), uk.identity, uk.trust, now=T0)
    assert ok.receipt == genuine  # the one that matches is confirmed
    [sent_file] = genuine.files
    attacks = {
        "never sent": (fr, replace(genuine, bundle_id="5e" * 16), "which this lab never sent"),
        "not a recipient": (de, replace(genuine, recipient=LabKey("DE-BKA", de.identity.card.key_id)), "lab DE-BKA was not a recipient"),
        "header hash": (fr, replace(genuine, header_hash="00" * 32), "header hash 0000000000000000 is not the one sent"),
        "file hash": (
            fr,
            replace(genuine, files=(ReceiptFile(sent_file.name, "11" * 32, sent_file.size),)),
            f"{sent_file.name} is confirmed with SHA-256 1111111111111111",
        ),
        "extra file": (
            fr,
            replace(genuine, files=(*genuine.files, ReceiptFile("scans/never.x3p", "22" * 32, 9))),
            "scans/never.x3p was never sent",
        ),
        "sequence": (fr, replace(genuine, sequence=genuine.sequence + 7), "is not the one sent"),
    }
    for name, (signer, receipt, words) in attacks.items():
        path = _receipt_bundle(signer, uk, receipt, tmp_path / f"{name.replace(' ', '-')}.bfx")
        with pytest.raises(ReceiptMismatchError, match=re.escape(words)):
            open_bundle(path, uk.identity, uk.trust, now=T0)


def test_a_mismatched_receipt_is_rejected_by_the_import_and_a_forged_record_of_sending_is_refused(
    labs: tuple[LabHome, LabHome, Path], tmp_path: Path
) -> None:
    uk, fr, bundle = labs
    verified = open_bundle(bundle, fr.identity, fr.trust, now=T0)
    wrong = replace(receipt_for(verified.manifest, fr.identity.card.lab_key, ["r1"], T0), header_hash="00" * 32)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _receipt_bundle(fr, uk, wrong, inbox / "wrong.bfx")
    store = Store.open(uk.home)
    report = import_bundles(uk.home, store, uk.identity, uk.trust, [inbox], now=T0)
    store.close()
    [outcome] = report.outcomes
    assert (outcome.status, outcome.error, outcome.exit_code) == ("rejected", "ReceiptMismatchError", 4)
    assert "does not match what this lab sent: header hash" in outcome.reason
    # someone with file access rewrites the record of what was sent to agree with the receipt
    record = sent_dir(uk.home) / f"{verified.manifest.bundle_id}.json"
    saved = record.read_bytes()
    doc = json.loads(saved)
    doc["manifest"] = base64.b64encode(
        base64.b64decode(doc["manifest"]).replace(verified.manifest.header_hash.encode(), b"0" * 64)
    ).decode()
    record.write_text(json.dumps(doc))
    with pytest.raises(ReceiptMismatchError, match="was altered"):
        open_bundle(_receipt_bundle(fr, uk, wrong, tmp_path / "again.bfx"), uk.identity, uk.trust, now=T0)
    record.write_bytes(saved)


# --- a bundle must stay receiptable (docs/bundle-format.md, section 6) --------------------------------


def _receipt_size(sender: LabHome, recipient: LabHome, files: list[Path], sequence: int) -> int:
    """The receipt ``recipient`` would send for a bundle of these record files, spelled out from the format."""
    records = [json.loads(f.read_bytes())["record_id"] for f in files]
    receipt = DeliveryReceipt(
        bundle_id="0" * 32,
        header_hash="0" * 64,
        sequence=sequence,
        sender=sender.identity.card.lab_key,
        recipient=recipient.identity.card.lab_key,
        files=tuple(ReceiptFile(f"records/{f.name}", hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_size) for f in files),
        records=tuple(sorted(records)),
        received="2026-01-15T09:30:00Z",
    )
    return len(encode_receipt(receipt))


def test_the_writer_sends_a_bundle_whose_receipt_just_fits_and_refuses_one_more_file(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    introduce(uk, fr)
    folder = tmp_path / "records"
    folder.mkdir()
    files = [write_record(a_record(), folder / f"r{i:03d}.json") for i in range(300)]
    missing = MAX_RECEIPT_BYTES - _receipt_size(uk, fr, files, 1)  # the first bundle of a new lab is number 1
    assert 0 < missing < 190 * len(files)
    for i, path in enumerate(files):  # lengthen the names until the receipt is exactly 64 KiB
        files[i] = path.rename(path.with_name(f"r{i:03d}{'x' * (missing // len(files) + (i < missing % len(files)))}.json"))
    assert _receipt_size(uk, fr, files, 1) == MAX_RECEIPT_BYTES

    one_more = [*files, write_record(a_record(), folder / "r300.json")]
    sequences = uk.home / "exchange" / "sequence.json"
    with pytest.raises(BundleContentError) as refused:
        export_bundle(uk.home, uk.identity, uk.trust, tmp_path / "big.bfx", recipients=["FR-IRCGN"], records=one_more, now=T0)
    size = _receipt_size(uk, fr, one_more, 1)
    assert refused.value.reason == (
        f"301 files: the delivery receipt for this bundle would be {size:,} bytes, over the 65,536-byte cap; send at most 300 files per bundle"
    )
    assert not (tmp_path / "big.bfx").exists() and not list(tmp_path.glob(".*big.bfx*"))  # nothing written,
    assert not sent_dir(uk.home).exists() or not list(sent_dir(uk.home).iterdir())  # nothing recorded as sent,
    assert not sequences.exists()  # and no sequence number taken: the bundle below is number 1

    bundle = tmp_path / "fits.bfx"
    export_bundle(uk.home, uk.identity, uk.trust, bundle, recipients=["FR-IRCGN"], records=files, now=T0)
    store = Store.open(fr.home)
    try:
        report = import_bundles(fr.home, store, fr.identity, fr.trust, [bundle], outbox=tmp_path / "receipts", now=T0)
    finally:
        store.close()
    [outcome] = report.outcomes
    assert outcome.status == "imported" and outcome.receipt is not None and outcome.no_receipt is None
    [sent] = open_bundle(Path(outcome.receipt), uk.identity, uk.trust, now=T0).files
    assert sent.kind == "receipt" and sent.size == MAX_RECEIPT_BYTES  # the writer's computation was exact
