"""The replay ledger's values: one row per partner bundle taken in, with typed details.

The store (:mod:`ballistics.store`) keeps these in its ``bundle_ledger`` table; the importer
(``exchange/importer.py``) builds them. ``details`` is stored as JSON in the form
:meth:`FindingsDetails.to_dict` / :meth:`ReceiptDetails.to_dict` give, and read back by
:func:`details_from_dict`, so databases written before the details were typed read the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ballistics.labs import LabKey

FINDINGS, RECEIPT = "findings", "receipt"


@dataclass(frozen=True)
class ReceivedFile:
    """One file of a bundle as its signed manifest described it."""

    name: str
    kind: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReceivedFile:
        return cls(str(doc["name"]), str(doc["kind"]), int(doc["size"]), str(doc["sha256"]))


@dataclass(frozen=True)
class ReceiptFile:
    """One file a delivery receipt confirms: its member name, SHA-256 and size."""

    name: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReceiptFile:
        return cls(str(doc["name"]), str(doc["sha256"]), int(doc["size"]))


RECEIPT_TYPE = "ballistics-delivery-receipt"
RECEIPT_VERSION = 1


@dataclass(frozen=True)
class DeliveryReceipt:
    """A partner's signed statement that it received one bundle of ours (docs/import.md).

    Parsing and checking a received one is ``exchange.receipts.parse_receipt``; this is the value.
    """

    bundle_id: str
    header_hash: str
    sequence: int
    sender: LabKey  # who sent the bundle the receipt confirms
    recipient: LabKey  # who received it, and signs the receipt
    files: tuple[ReceiptFile, ...]
    records: tuple[str, ...]
    received: str  # YYYY-MM-DDTHH:MM:SSZ

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": RECEIPT_TYPE,
            "version": RECEIPT_VERSION,
            "bundle_id": self.bundle_id,
            "header_hash": self.header_hash,
            "sequence": self.sequence,
            "sender": self.sender.to_dict(),
            "recipient": self.recipient.to_dict(),
            "files": [f.to_dict() for f in self.files],
            "records": list(self.records),
            "received": self.received,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DeliveryReceipt:
        return cls(
            str(doc["bundle_id"]),
            str(doc["header_hash"]),
            int(doc["sequence"]),
            LabKey.from_dict(doc["sender"]),
            LabKey.from_dict(doc["recipient"]),
            tuple(ReceiptFile.from_dict(f) for f in doc["files"]),
            tuple(str(r) for r in doc["records"]),
            str(doc["received"]),
        )


@dataclass(frozen=True)
class FindingsDetails:
    """What a findings bundle brought in: its files, the record ids stored, new exhibits."""

    files: tuple[ReceivedFile, ...]
    records: tuple[str, ...]
    exhibits: int

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.to_dict() for f in self.files], "records": list(self.records), "exhibits": self.exhibits}


@dataclass(frozen=True)
class ReceiptDetails:
    """A receipt bundle: the receipt it carried."""

    receipt: DeliveryReceipt

    def to_dict(self) -> dict[str, Any]:
        return {"receipt": self.receipt.to_dict()}


LedgerDetails = FindingsDetails | ReceiptDetails


def details_from_dict(kind: str, doc: Mapping[str, Any]) -> LedgerDetails:
    """The stored JSON of a ledger row's details, typed by the row's kind."""
    if kind == RECEIPT:
        return ReceiptDetails(DeliveryReceipt.from_dict(doc["receipt"]))
    return FindingsDetails(
        tuple(ReceivedFile.from_dict(f) for f in doc.get("files", [])),
        tuple(str(r) for r in doc.get("records", [])),
        int(doc.get("exhibits", 0)),
    )


@dataclass(frozen=True)
class LedgerEntry:
    """One partner bundle the lab has taken in: who sent it, which number, what it held."""

    bundle_id: str
    sender_lab: str
    sender_key_id: str
    sequence: int
    header_hash: str
    kind: str  # FINDINGS, RECEIPT, or a kind of docs/bundle-format.md section 3.7 (correlation-request, ...)
    path: str
    details: LedgerDetails
    imported: str | None = None
    receipt_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle_id": self.bundle_id,
            "sender": {"lab": self.sender_lab, "key_id": self.sender_key_id},
            "sequence": self.sequence,
            "header_hash": self.header_hash,
            "kind": self.kind,
            "path": self.path,
            "details": self.details.to_dict(),
            "imported": self.imported,
            "receipt_sha256": self.receipt_sha256,
        }
