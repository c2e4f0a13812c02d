"""Delivery receipts: built from a verified bundle, canonical, parsed strictly, sent as a bundle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from exchange_support import T0, LabHome, introduce, make_lab
from test_records import a_record

from ballistics.labs import LabKey
from ballistics.ledger import DeliveryReceipt
from ballistics.records import write_record
from exchange.bundle import export_bundle
from exchange.canonical import canonical_json
from exchange.errors import MalformedBundleError, NotARecipientError
from exchange.reader import open_bundle
from exchange.receipts import encode_receipt, parse_receipt, receipt_for, send_receipt


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
    receipt = receipt_for(verified, fr.identity, ["r2", "r1"], T0)
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
    sent = send_receipt(fr.home, fr.identity, fr.trust, verified, ["r1"], tmp_path / "out", T0)
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
