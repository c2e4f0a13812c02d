"""What a bundle must satisfy, beyond its cryptography, to be taken in: one set of checks for all.

``bundle verify`` and ``bundle import`` must not disagree: a bundle that verifies on the
recipient's side imports, and one that the import would refuse is refused by verify with the
same error. So both run these functions:

* :func:`check_content`, over the signed manifest and the parsed files (run by
  :func:`exchange.reader.open_bundle` for every bundle): every record is of the signing lab; a
  receipt bundle holds its receipt alone, is signed by the lab it names as recipient, and
  matches a bundle this lab sent to that lab, hashes and all (:func:`exchange.sent.match_receipt`);
  a correlation request holds its scans and nothing else, in the name of the signing lab; a
  correlation response or a hit notification answers a bundle this lab sent to the signing lab
  (:func:`check_intelligence`);
* :func:`check_against_store`, against the lab's collection, read-only (run by
  ``open_bundle(..., ledger=store)`` and by the importer inside its transaction): the replay
  ledger (same id with other bytes, sequence not newer than the last from that lab) and record
  ids already stored with a different document.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ballistics.ledger import DeliveryReceipt, LedgerEntry
from ballistics.records import MatchRecord
from exchange.errors import ConflictingRecordError, ForeignContentError, MalformedBundleError, ReplayedBundleError, StaleBundleError
from exchange.intelligence import CorrelationRequest, CorrelationResponse, HitNotification, IntelligenceDocument
from exchange.keys import Identity
from exchange.manifest import Manifest
from exchange.sent import match_receipt, sent_manifest

if TYPE_CHECKING:
    from ballistics.store import Store

#: How far one bundle may move a sender's sequence forward. Sequences end at 2^53 - 1: without
#: this window one bundle numbered near the end would make every later bundle of its lab stale;
#: with it, exhausting the counter takes 2^21 imported bundles. A lab making a thousand bundles a
#: day needs eleven thousand years to leave the window.
MAX_SEQUENCE_STEP = 2**32


def check_content(
    manifest: Manifest,
    records: Sequence[MatchRecord],
    receipts: Sequence[DeliveryReceipt],
    documents: Sequence[IntelligenceDocument],
    identity: Identity,
    where: str | Path,
) -> None:
    """Refuse content the signer cannot vouch for (:class:`ForeignContentError`, exit 4)."""
    signer = manifest.sender
    for entry, record in zip((f for f in manifest.files if f.kind == "record"), records, strict=True):
        if record["lab"]["id"] != signer.lab:
            raise ForeignContentError(where, f"{entry.name}: record of lab {record['lab']['id']} in a bundle signed by {signer.lab}")
    if documents:
        if receipts or len(documents) != 1:
            raise MalformedBundleError(where, "a bundle holds at most one request, response or notification, and no receipt beside it")
        check_intelligence(manifest, records, documents[0], identity, where)
    if not receipts:
        return
    if len(manifest.files) != 1:
        raise MalformedBundleError(where, "a receipt bundle holds its receipt and nothing else")
    receipt = receipts[0]
    ours = {identity.card.key_id, *(card.key_id for card, _ in identity.retired)}
    if receipt.sender.lab != identity.card.lab.id or receipt.sender.key_id not in ours:
        raise ForeignContentError(where, f"receipt for bundle {receipt.bundle_id}, which lab {receipt.sender.lab} sent, not this lab")
    if receipt.recipient != signer:
        raise ForeignContentError(where, f"receipt in the name of {receipt.recipient.lab} signed by {signer.lab}")
    match_receipt(receipt, identity, str(where))


def check_intelligence(
    manifest: Manifest, records: Sequence[MatchRecord], document: IntelligenceDocument, identity: Identity, where: str | Path
) -> None:
    """The rules of a correlation request, response or hit notification (docs/bundle-format.md, section 3.7).

    A request is in the signing lab's name and lists exactly the scans beside it. A response
    is alone; a notification has one record beside it, the one it names, citing the scan it is
    about. Both must answer a bundle this lab sent to the signing lab (the register of
    :mod:`exchange.sent`, signed by this lab): a response the request bundle with the request it
    names, a notification the bundle that carried the scan; else :class:`ForeignContentError`.
    """
    signer = manifest.sender.lab
    kinds = [f.kind for f in manifest.files]
    if isinstance(document, CorrelationRequest):
        scans = {f.sha256 for f in manifest.files if f.kind == "scan"}
        if kinds.count("request") != 1 or len(scans) != len(kinds) - 1:
            raise MalformedBundleError(where, "a correlation request bundle holds its request and its scans, nothing else")
        if scans != {s.sha256 for s in document.scans}:
            raise MalformedBundleError(where, "the correlation request does not list exactly the scans of its bundle")
        if document.lab != signer:
            raise ForeignContentError(where, f"correlation request in the name of {document.lab} signed by {signer}")
        return
    if isinstance(document, CorrelationResponse):
        if kinds != ["response"]:
            raise MalformedBundleError(where, "a correlation response bundle holds its response and nothing else")
        if document.responder != signer or document.requester != identity.card.lab.id:
            raise ForeignContentError(
                where, f"response from {document.responder} to {document.requester}, signed by {signer} and read by {identity.card.lab.id}"
            )
        sent = _answered(identity, document.bundle_id, signer, where, f"response to request {document.request_id}")
        if f"requests/request-{document.request_id}.json" not in {f.name for f in sent.files}:
            raise ForeignContentError(where, f"response to request {document.request_id}, which bundle {document.bundle_id} did not carry")
        if not set(document.searched) <= {f.sha256 for f in sent.files if f.kind == "scan"}:
            raise ForeignContentError(where, f"response to request {document.request_id} names scans the request did not send")
        return
    assert isinstance(document, HitNotification)
    if sorted(kinds) != ["notification", "record"] or records[0]["record_id"] != document.record_id:
        raise MalformedBundleError(where, "a hit notification bundle holds its notification and the record it names, nothing else")
    sent = _answered(identity, document.bundle_id, signer, where, f"hit notification for scan {document.scan_sha256[:12]}")
    if document.scan_sha256 not in {f.sha256 for f in sent.files if f.kind == "scan"}:
        raise ForeignContentError(
            where, f"hit notification for scan {document.scan_sha256[:12]}, which bundle {document.bundle_id} did not carry"
        )
    if document.request_id is not None and f"requests/request-{document.request_id}.json" not in {f.name for f in sent.files}:
        raise ForeignContentError(
            where, f"hit notification for request {document.request_id}, which bundle {document.bundle_id} did not carry"
        )
    if document.scan_sha256 not in {records[0]["scans"][side]["sha256"] for side in ("reference", "questioned")}:
        raise ForeignContentError(where, f"the record of the hit notification does not cite scan {document.scan_sha256[:12]}")


def _answered(identity: Identity, bundle_id: str, signer: str, where: str | Path, what: str) -> Manifest:
    """The manifest of bundle ``bundle_id`` as this lab sent it to ``signer``; refused if it never did."""
    sent = sent_manifest(identity, bundle_id, str(where))
    if sent is None:
        raise ForeignContentError(where, f"{what} in bundle {bundle_id}, which this lab never sent")
    if signer not in {r.lab for r in sent.recipients}:
        raise ForeignContentError(where, f"{what} from {signer}, to whom bundle {bundle_id} was not sent")
    return sent


def check_against_store(
    manifest: Manifest, records: Sequence[MatchRecord], store: Store, where: str | Path, *, conn: Any = None
) -> LedgerEntry | None:
    """The ledger entry of this very bundle (a duplicate: nothing to do), or None for a new one.

    Raises :class:`ReplayedBundleError` (same sender and id, other bytes), :class:`StaleBundleError`
    (sequence not newer than the last imported from the sender's lab) and
    :class:`ConflictingRecordError` (a record id stored with another document); a sequence more
    than :data:`MAX_SEQUENCE_STEP` ahead of the last is stale too (it would lock the lab out). Reads only.
    """
    sender = manifest.sender.lab
    seen = store.ledger_entry(sender, manifest.bundle_id, conn=conn)
    if seen is not None:
        if seen.header_hash == manifest.header_hash:
            return seen
        raise ReplayedBundleError(
            where, f"bundle id {manifest.bundle_id} of {sender} was already imported ({seen.imported}) with other content"
        )
    last = store.last_sequence(sender, conn=conn)
    if manifest.sequence <= last:
        raise StaleBundleError(where, f"replay: sequence {manifest.sequence} is not newer than {last}, the last imported from {sender}")
    if manifest.sequence > last + MAX_SEQUENCE_STEP:
        raise StaleBundleError(
            where,
            f"sequence {manifest.sequence} is more than 2^32 ahead of {last}, the last imported from {sender}: "
            "taking it would make the lab's later bundles stale",
        )
    for record in records:
        stored = store.record(record["record_id"], conn=conn)
        if stored is not None and stored != record:
            raise ConflictingRecordError(where, f"record {record['record_id']} is already stored with different content")
    return None
