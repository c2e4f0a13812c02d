"""Delivery receipts: the signed answer a lab sends back for every bundle it imported.

A receipt is an ordinary bundle (docs/bundle-format.md) addressed to the original sender whose
only file is ``receipts/receipt-<bundle id>.json`` of kind ``receipt``: the bundle id, header
hash and sequence of what was received, the name and SHA-256 of every file taken in, the
record ids stored, and when. Being a bundle, it is signed by the receiving lab and encrypted to
the sender, so the sender learns from ``bundle import`` on its side, with the same checks as
for findings, that exactly these bytes arrived.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ballistics.clock import format_time
from exchange.bundle import export_bundle
from exchange.canonical import canonical_json
from exchange.errors import MalformedBundleError
from exchange.keys import Identity
from exchange.manifest import MAX_RECEIPT_BYTES
from exchange.reader import VerifiedBundle
from exchange.trust import TrustStore

RECEIPT_TYPE = "ballistics-delivery-receipt"
RECEIPT_FIELDS = {"type", "version", "bundle_id", "header_hash", "sequence", "sender", "recipient", "files", "records", "received"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SentReceipt:
    path: Path
    sha256: str  # of the receipt document, which the sender sees after decrypting
    document: dict[str, Any]


def receipt_document(verified: VerifiedBundle, identity: Identity, records: list[str], received: datetime) -> dict[str, Any]:
    doc = verified.manifest.doc
    return {
        "type": RECEIPT_TYPE,
        "version": 1,
        "bundle_id": doc["bundle_id"],
        "header_hash": doc["header_hash"],
        "sequence": doc["sequence"],
        "sender": doc["sender"],
        "recipient": {"lab": identity.card.lab.id, "key_id": identity.card.key_id},
        "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in verified.files],
        "records": sorted(records),
        "received": format_time(received),
    }


def send_receipt(
    home: Path,
    identity: Identity,
    trust: TrustStore,
    verified: VerifiedBundle,
    records: list[str],
    out_dir: Path,
    now: datetime,
) -> SentReceipt:
    """Write ``<out_dir>/receipt-<bundle id>-<our lab>.bfx`` to the bundle's sender."""
    document = receipt_document(verified, identity, records, now)
    body = canonical_json(document)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"receipt-{document['bundle_id']}-{identity.card.lab.id}.bfx"
    with tempfile.TemporaryDirectory(prefix=".receipt-", dir=out_dir) as tmp:
        source = Path(tmp) / f"receipt-{document['bundle_id']}.json"
        source.write_bytes(body)
        export_bundle(home, identity, trust, output, recipients=[document["sender"]["lab"]], receipts=[source], now=now)
    return SentReceipt(output, hashlib.sha256(body).hexdigest(), document)


def parse_receipt(data: bytes, where: str) -> dict[str, Any]:
    """A receipt's JSON, structurally checked (its authenticity is the bundle's signature)."""
    if len(data) > MAX_RECEIPT_BYTES:
        raise MalformedBundleError(where, f"receipt larger than {MAX_RECEIPT_BYTES} bytes")
    try:
        doc = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBundleError(where, f"receipt is not ASCII JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != RECEIPT_FIELDS or doc["type"] != RECEIPT_TYPE or doc["version"] != 1:
        raise MalformedBundleError(where, f"not a version-1 {RECEIPT_TYPE}")
    parties_ok = all(
        isinstance(doc[p], dict) and isinstance(doc[p].get("lab"), str) and HEX64.match(str(doc[p].get("key_id")))
        for p in ("sender", "recipient")
    )
    files_ok = isinstance(doc["files"], list) and all(isinstance(f, dict) and HEX64.match(str(f.get("sha256"))) for f in doc["files"])
    if not (parties_ok and files_ok and re.fullmatch(r"[0-9a-f]{32}", str(doc["bundle_id"])) and HEX64.match(str(doc["header_hash"]))):
        raise MalformedBundleError(where, "receipt fields bundle_id, header_hash, sender, recipient or files are malformed")
    return doc
