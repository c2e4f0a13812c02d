"""Delivery receipts: the signed answer a lab sends back for every bundle it imported.

A receipt is an ordinary bundle (docs/bundle-format.md) addressed to the original sender whose
only file is ``receipts/receipt-<bundle id>.json`` of kind ``receipt``: the bundle id, header
hash and sequence of what was received, the name and SHA-256 of every file taken in, the
record ids stored, and when. Being a bundle, it is signed by the receiving lab and encrypted to
the sender, so the sender learns from ``bundle import`` on its side, with the same checks as
for findings, that exactly these bytes arrived.

This module is the document: what a receipt lists, its bytes, and parsing one received. The
writer (:mod:`exchange.bundle`) uses it to refuse a bundle whose receipt could not fit in
``MAX_RECEIPT_BYTES``; the importer (:mod:`exchange.importer`) builds and sends receipts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ballistics.clock import format_time
from ballistics.labs import LabKey
from ballistics.ledger import RECEIPT_TYPE, RECEIPT_VERSION, DeliveryReceipt, ReceiptFile
from exchange.canonical import canonical_json, is_int, parse_json, parse_time
from exchange.errors import MalformedBundleError
from exchange.manifest import MAX_RECEIPT_BYTES, Manifest

RECEIPT_FIELDS = {"type", "version", "bundle_id", "header_hash", "sequence", "sender", "recipient", "files", "records", "received"}
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX32 = re.compile(r"[0-9a-f]{32}")


def receipt_for(manifest: Manifest, recipient: LabKey, records: Iterable[str], received: datetime) -> DeliveryReceipt:
    """The receipt ``recipient`` signs for the bundle of ``manifest`` after storing ``records``."""
    return DeliveryReceipt(
        bundle_id=manifest.bundle_id,
        header_hash=manifest.header_hash,
        sequence=manifest.sequence,
        sender=manifest.sender,
        recipient=recipient,
        files=tuple(ReceiptFile(f.name, f.sha256, f.size) for f in manifest.files),
        records=tuple(sorted(records)),
        received=format_time(received),
    )


def encode_receipt(receipt: DeliveryReceipt) -> bytes:
    """The receipt file's bytes: canonical JSON, so its SHA-256 is reproducible."""
    return canonical_json(receipt.to_dict())


def parse_receipt(data: bytes, where: str) -> DeliveryReceipt:
    """A receipt's JSON, structurally checked (its authenticity is the bundle's signature)."""
    if len(data) > MAX_RECEIPT_BYTES:
        raise MalformedBundleError(where, f"receipt larger than {MAX_RECEIPT_BYTES} bytes")
    doc = parse_json(data, where=where, what="receipt", error=MalformedBundleError)
    if (
        not isinstance(doc, dict)
        or set(doc) != RECEIPT_FIELDS
        or doc["type"] != RECEIPT_TYPE
        or not is_int(doc["version"])
        or doc["version"] != RECEIPT_VERSION
    ):
        raise MalformedBundleError(where, f"not a version-{RECEIPT_VERSION} {RECEIPT_TYPE}")
    if canonical_json(doc) != data:  # one receipt, one spelling: its SHA-256 is in the signed manifest
        raise MalformedBundleError(where, "receipt is not in canonical JSON form")
    if not (
        all(_is_party(doc[p]) for p in ("sender", "recipient"))
        and isinstance(doc["files"], list)
        and all(_is_file(f) for f in doc["files"])
        and isinstance(doc["records"], list)
        and all(isinstance(r, str) for r in doc["records"])
        and isinstance(doc["bundle_id"], str)
        and HEX32.fullmatch(doc["bundle_id"])
        and isinstance(doc["header_hash"], str)
        and HEX64.fullmatch(doc["header_hash"])
        and is_int(doc["sequence"], 1)
    ):
        raise MalformedBundleError(
            where, "receipt fields bundle_id, header_hash, sequence, sender, recipient, files or records are malformed"
        )
    parse_time(doc["received"], where=where, error=MalformedBundleError)
    return DeliveryReceipt.from_dict(doc)


def _is_party(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"lab", "key_id"}
        and isinstance(value["lab"], str)
        and isinstance(value["key_id"], str)
        and HEX64.fullmatch(value["key_id"]) is not None
    )


def _is_file(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"name", "sha256", "size"}
        and isinstance(value["name"], str)
        and isinstance(value["sha256"], str)
        and HEX64.fullmatch(value["sha256"]) is not None
        and is_int(value["size"])
    )
