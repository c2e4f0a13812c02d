"""Batch import of partner bundles: verify, dedupe, replay ledger, quarantine, one transaction each.

For every input the importer decides one of four outcomes (docs/import.md):

* **imported**: every check of the bundle format held, the bundle is newer than anything taken
  from its sender, and its records and scans were committed in one database transaction
  together with its row in the replay ledger (``bundle_ledger``), whose primary key on the
  (sender lab, bundle id) makes a second import of the same bundle impossible (with them, a
  correlation request or a findings bundle with scans is marked for correlation, a response
  recorded against its request, a hit notification's record stored as a hit);
* **duplicate**: the ledger already holds this bundle (same sender and id, same header hash);
  nothing changes;
* **not for us**: the bundle has no stanza for any key of this lab; it is left where it is
  (a shared exchange folder holds other labs' bundles), and the batch goes on;
* **rejected**: anything else; the file is moved to ``<home>/quarantine/`` beside a JSON file
  giving the reason, and the batch goes on. Only a regular file is moved: a FIFO, a device
  node or a link named ``*.bfx`` is refused without being waited on, read, moved, copied or
  deleted, and a file the inbox does not let this process move stays where it is too.

Files are staged by :meth:`VerifiedBundle.extract_to` in a work directory of this process and
copied into the content-addressed store inside the transaction, before the commit: a crash
leaves at most files without rows (listed in the work directory's journal and removed by the
next run), never a row without its file. A journal names scans by SHA-256 only, so recovery
deletes nothing but the store's own files for those hashes.

Once its bundles are in, an import searches the partner scans marked for correlation, its own
and those a killed import left, and answers each request (:func:`exchange.correlate.correlate_unfinished`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ballistics.characteristics import ClassCharacteristics, FiringPinShape
from ballistics.clock import format_time, now_utc
from ballistics.errors import BallisticsError, InvalidInputError, StoreError
from ballistics.files import copy_atomic, read_bounded, temporaries_of
from ballistics.json_input import load_json
from ballistics.leads import Correlation
from ballistics.ledger import FINDINGS, RECEIPT, DeliveryReceipt, FindingsDetails, LedgerDetails, LedgerEntry, ReceiptDetails, ReceivedFile
from ballistics.preprocess import BreechFace, prepare
from ballistics.records import MatchRecord
from ballistics.scan import load_scan
from ballistics.search import Executor
from ballistics.store import Store
from exchange import audit_events as events
from exchange.acceptance import check_against_store
from exchange.audit import AuditLog
from exchange.bundle import export_bundle
from exchange.correlate import CorrelationResult, correlate_unfinished, default_outbox, take_in_answer
from exchange.errors import MalformedBundleError, NotARecipientError
from exchange.files import write_atomic
from exchange.intelligence import BUNDLE_KINDS, CORRELATION_REQUEST, CORRELATION_RESPONSE, CorrelationRequest
from exchange.keys import Identity
from exchange.manifest import MAX_RECEIPT_BYTES
from exchange.reader import VerifiedBundle, inspect_bundle, open_bundle
from exchange.receipts import encode_receipt, receipt_for
from exchange.trust import TrustStore

Progress = Callable[[int, int], None]
BUNDLE_SUFFIX = ".bfx"
#: A journal is a list of hashes; a larger file is not one this software wrote.
MAX_JOURNAL_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Outcome:
    """What happened to one input; ``to_dict`` is its entry in the summary."""

    path: Path
    status: str  # imported, duplicate, not_for_us, rejected
    bundle_id: str | None = None
    sender: str | None = None
    sequence: int | None = None
    kind: str | None = None
    reason: str = ""
    error: str | None = None
    exit_code: int = 0
    records: tuple[str, ...] = ()
    scans: int = 0
    exhibits: int = 0
    confirms: str | None = None
    receipt: str | None = None
    #: Why no delivery receipt could be sent for a bundle that was taken in (it would exceed the cap).
    no_receipt: str | None = None
    quarantine: str | None = None
    #: Why a rejected file is still where it was (not a regular file, an inbox that is not writable).
    not_moved: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bundle_id": self.bundle_id,
            "sender": self.sender,
            "sequence": self.sequence,
            "kind": self.kind,
            "reason": self.reason,
            "error": self.error,
            "exit_code": self.exit_code,
            "records": list(self.records),
            "scans": self.scans,
            "exhibits": self.exhibits,
            "confirms": self.confirms,
            "receipt": self.receipt,
            "no_receipt": self.no_receipt,
            "quarantine": self.quarantine,
            "not_moved": self.not_moved,
        }


@dataclass(frozen=True)
class ImportReport:
    outcomes: tuple[Outcome, ...]
    #: The partner bundles whose scans were searched against the collection in this run.
    correlations: tuple[CorrelationResult, ...] = ()

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def exit_code(self) -> int:
        """0 when nothing was rejected, else the highest class among the rejections (3 or 4)."""
        return max((o.exit_code for o in self.of("rejected")), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": [o.to_dict() for o in self.of("imported")],
            "duplicates": [o.to_dict() for o in self.of("duplicate")],
            "not_for_us": [o.to_dict() for o in self.of("not_for_us")],
            "rejected": [o.to_dict() for o in self.of("rejected")],
            "correlations": [c.to_dict() for c in self.correlations],
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class _StagedScan:
    path: Path  # the staged file (named by the member name, which is safe)
    sha256: str
    name: str  # the sender's file name (data, never a path)
    face: BreechFace  # the prepared surface


@dataclass(frozen=True)
class _Content:
    records: list[MatchRecord]
    scans: list[_StagedScan]
    receipt: DeliveryReceipt | None


@dataclass
class _Batch:
    home: Path
    store: Store
    identity: Identity
    trust: TrustStore
    now: datetime
    work: Path
    outbox: Path | None
    correlate: bool
    audit: AuditLog | None
    outcomes: list[Outcome] = field(default_factory=list)


def collect_inputs(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and every ``*.bfx`` under each directory (sorted, recursively)."""
    found: list[Path] = []
    for path in map(Path, paths):
        found.extend(sorted(p for p in path.rglob(f"*{BUNDLE_SUFFIX}") if p.is_file()) if path.is_dir() else [path])
    return list(dict.fromkeys(found))


def import_bundles(
    home: Path,
    store: Store,
    identity: Identity,
    trust: TrustStore,
    paths: Sequence[Path],
    *,
    outbox: Path | None = None,
    correlate: bool = True,
    audit: AuditLog | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> ImportReport:
    """Import every bundle under ``paths``; a bad bundle is quarantined and the batch goes on.

    Bundles are verified first, then committed in order of (sender, sequence), so that a batch
    holding several bundles of one sender imports them all whatever their file names. Then the
    partner scans marked for correlation are searched and each request answered. ``outbox``
    receives delivery receipts (none without it) and correlation responses (``<home>/outbox``
    without it); ``correlate=False`` leaves the scans of findings bundles unsearched (a request's
    are always searched: searching is what it asks).
    """
    home = Path(home)
    inputs = collect_inputs(paths)
    with _work_directory(home) as work:
        recover(home, store)
        batch = _Batch(home, store, identity, trust, now or now_utc(), work, outbox, correlate, audit)
        verified: list[VerifiedBundle] = []
        for done, path in enumerate(inputs, 1):
            try:
                verified.append(open_bundle(path, identity, trust, now=batch.now))
            except NotARecipientError as exc:
                batch.outcomes.append(Outcome(path, "not_for_us", _claimed_id(path), reason=f"{exc.reason}; left where it is"))
            except BallisticsError as exc:
                _reject(batch, path, exc, None)
            if progress:
                progress(done, 2 * len(inputs))
        verified.sort(key=lambda v: (v.manifest.sender.lab, v.manifest.sequence, str(v.path)))
        for done, bundle in enumerate(verified, 1):
            try:
                _take_in(batch, bundle)
            except BallisticsError as exc:
                _reject(batch, bundle.path, exc, bundle)
            if progress:
                progress(len(inputs) + done, len(inputs) + len(verified))
        correlations = correlate_unfinished(
            home, store, identity, trust, outbox or default_outbox(home), audit=audit, now=batch.now, executor=executor
        )
    order = {path: index for index, path in enumerate(inputs)}
    return ImportReport(tuple(sorted(batch.outcomes, key=lambda o: order.get(o.path, len(order)))), tuple(correlations))


# --- one bundle ------------------------------------------------------------------------------


def _take_in(batch: _Batch, verified: VerifiedBundle) -> None:
    manifest = verified.manifest
    if (seen := check_against_store(manifest, verified.records, batch.store, verified.path)) is not None:
        _duplicate(batch, verified, seen)
        return
    staged = batch.work / manifest.bundle_id
    shutil.rmtree(staged, ignore_errors=True)
    verified.extract_to(staged)
    content = _read_content(staged, verified, batch.store)
    kind = bundle_kind(verified)
    _journal(batch, manifest.bundle_id, content)
    exhibits = 0
    try:
        with batch.store.transaction(immediate=True) as conn:
            if (seen := check_against_store(manifest, content.records, batch.store, verified.path, conn=conn)) is None:
                exhibits = _store_content(batch.store, verified, content, conn)
                _store_intelligence(batch, verified, kind, content, conn)
                batch.store.add_ledger_entry(_ledger_entry(verified, kind, content, exhibits), conn=conn)
    except StoreError:
        # Another database than SQLite (no IMMEDIATE lock): the ledger's primary key stopped a
        # concurrent second import; anything else is a genuine refusal.
        seen = batch.store.ledger_entry(manifest.sender.lab, manifest.bundle_id)
        if seen is None or seen.header_hash != manifest.header_hash:
            raise
    shutil.rmtree(staged, ignore_errors=True)
    (batch.work / f"{manifest.bundle_id}.journal.json").unlink(missing_ok=True)
    if seen is not None:
        _duplicate(batch, verified, seen)
        return
    _imported(batch, verified, kind, content, exhibits)


def bundle_kind(verified: VerifiedBundle) -> str:
    """``findings``, ``receipt``, or the kind its request, response or notification makes it (docs/bundle-format.md, section 3.7)."""
    if verified.receipt is not None:
        return RECEIPT
    return BUNDLE_KINDS[type(verified.document)] if verified.document is not None else FINDINGS


def _store_intelligence(batch: _Batch, verified: VerifiedBundle, kind: str, content: _Content, conn: Any) -> None:
    """Mark the scans of a request (or of findings, when correlating) for searching; record a response or a hit."""
    manifest, document = verified.manifest, verified.document
    if kind == CORRELATION_REQUEST or (kind == FINDINGS and batch.correlate and content.scans):
        request_id = document.request_id if isinstance(document, CorrelationRequest) else None
        scans = tuple(scan.sha256 for scan in content.scans)
        batch.store.add_correlation(Correlation(manifest.sender.lab, manifest.bundle_id, request_id, scans), conn=conn)
    elif document is not None and kind != CORRELATION_REQUEST:
        take_in_answer(batch.store, manifest.sender.lab, manifest.bundle_id, document, batch.now, conn)


def _read_content(staged: Path, verified: VerifiedBundle, store: Store) -> _Content:
    """Prepare every staged scan, before any lock is taken.

    Records and the receipt were parsed and checked (:mod:`exchange.acceptance`) while verifying,
    and checked again while staging; the staged bytes are those verified (same SHA-256).
    """
    scans = []
    for entry in verified.files:
        if entry.kind == "scan":
            path = staged / entry.name
            try:
                face = prepare(load_scan(path), store.preprocess)
            except InvalidInputError as exc:
                raise MalformedBundleError(verified.path, f"{entry.name}: {exc.reason}") from None
            scans.append(_StagedScan(path, entry.sha256, entry.display_name, face))
    return _Content(list(verified.records), scans, verified.receipt)


def _store_content(store: Store, verified: VerifiedBundle, content: _Content, conn: Any) -> int:
    """Scans as exhibits of the partner lab, then records; returns the number of new exhibits."""
    owner = verified.sender.lab
    added = 0
    request = verified.document if isinstance(verified.document, CorrelationRequest) else None
    for scan in content.scans:
        case_id, exhibit_id, traits = _exhibit_of(scan, content.records, request, verified.manifest.bundle_id)
        store.add_scan_file(scan.path, conn=conn, sha256=scan.sha256, face=scan.face, original_name=scan.name)
        result = store.add_exhibit_scan(
            scan.path,
            case_id=case_id,
            exhibit_id=exhibit_id,
            lab=owner,
            characteristics=traits,
            partner=True,
            conn=conn,
            original_name=scan.name,
        )
        added += int(result.added)
    for record in content.records:
        if store.record(record["record_id"], conn=conn) is None:  # an identical stored record is kept once
            store.add_record(record, conn=conn)
    return added


def _shape(value: str | None) -> FiringPinShape | None:
    """A record's firing-pin shape (already checked against the schema's vocabulary)."""
    return FiringPinShape(value) if value else None


def _exhibit_of(
    scan: _StagedScan, records: list[MatchRecord], request: CorrelationRequest | None, bundle_id: str
) -> tuple[str, str, ClassCharacteristics]:
    """Case and exhibit ids from the request listing the scan or the record citing it; else the file's stem in a case named after the bundle."""
    if request is not None:
        for requested in request.scans:
            if requested.sha256 == scan.sha256:
                return request.case_id, requested.exhibit, requested.characteristics
    for record in records:
        for side in ("reference", "questioned"):
            if record["scans"][side]["sha256"] == scan.sha256:
                traits = record.get("class_characteristics", {})
                return (
                    record["case_id"],
                    record["exhibits"][side],
                    ClassCharacteristics(traits.get("calibre"), _shape(traits.get("firing_pin_shape")), traits.get("ejector_position")),
                )
    return f"bundle-{bundle_id[:12]}", (PurePosixPath(scan.name).stem or scan.name)[:128], ClassCharacteristics()


def _ledger_entry(verified: VerifiedBundle, kind: str, content: _Content, exhibits: int) -> LedgerEntry:
    manifest = verified.manifest
    details: LedgerDetails = (
        ReceiptDetails(content.receipt)
        if content.receipt is not None
        else FindingsDetails(
            tuple(ReceivedFile(f.name, f.kind, f.size, f.sha256) for f in manifest.files),
            tuple(r["record_id"] for r in content.records),
            exhibits,
        )
    )
    return LedgerEntry(
        manifest.bundle_id,
        manifest.sender.lab,
        manifest.sender.key_id,
        manifest.sequence,
        manifest.header_hash,
        kind,
        str(verified.path),
        details,
    )


# --- outcomes ----------------------------------------------------------------------------------


def _imported(batch: _Batch, verified: VerifiedBundle, kind: str, content: _Content, exhibits: int) -> None:
    manifest = verified.manifest
    records = [r["record_id"] for r in content.records]
    confirms = content.receipt.bundle_id if content.receipt else None
    if batch.audit is not None:
        if content.receipt is not None:
            batch.audit.append(
                events.RECEIPT_RECEIVED,
                {
                    "bundle_id": confirms,
                    "partner": manifest.sender.lab,
                    "sha256": verified.files[0].sha256,
                    "receipt_bundle_id": manifest.bundle_id,
                    "files": [f.to_dict() for f in content.receipt.files],
                },
            )
        else:
            if verified.document is not None:
                batch.audit.append(*_received_event(verified, kind))
            batch.audit.append(
                events.BUNDLE_IMPORT,
                {
                    "bundle_id": manifest.bundle_id,
                    "sender": manifest.sender.to_dict(),
                    "sequence": manifest.sequence,
                    "path": str(verified.path),
                    "files": [{"name": f.name, "sha256": f.sha256} for f in verified.files],
                    "records": records,
                },
            )
    receipt, no_receipt = _receipt(batch, verified, records) if kind == FINDINGS else (None, None)
    reason = (
        f"delivery of bundle {confirms} confirmed by {manifest.sender.lab}"
        if confirms
        else f"{kind}: {len(records)} records, {len(content.scans)} scans ({exhibits} new exhibits)"
        if kind != FINDINGS
        else f"{len(records)} records, {len(content.scans)} scans ({exhibits} new exhibits)"
    )
    batch.outcomes.append(
        Outcome(
            verified.path,
            "imported",
            manifest.bundle_id,
            manifest.sender.lab,
            manifest.sequence,
            kind,
            reason,
            records=tuple(records),
            scans=len(content.scans),
            exhibits=exhibits,
            confirms=confirms,
            receipt=str(receipt.path) if receipt else None,
            no_receipt=no_receipt,
        )
    )


def _received_event(verified: VerifiedBundle, kind: str) -> tuple[str, dict[str, Any]]:
    """The audit event of a request, response or notification received."""
    document, sender = verified.document, verified.manifest.sender.lab
    event = {CORRELATION_REQUEST: events.REQUEST_RECEIVED, CORRELATION_RESPONSE: events.RESPONSE_RECEIVED}.get(
        kind, events.HIT_NOTIFICATION_RECEIVED
    )
    return event, {"bundle_id": verified.manifest.bundle_id, "partner": sender, "document": document.to_dict() if document else None}


def _duplicate(batch: _Batch, verified: VerifiedBundle, seen: LedgerEntry) -> None:
    manifest = verified.manifest
    if batch.audit is not None:
        batch.audit.append(
            events.BUNDLE_DUPLICATE, {"bundle_id": manifest.bundle_id, "sender": manifest.sender.to_dict(), "path": str(verified.path)}
        )
    receipt, no_receipt = None, None
    if (
        seen.kind == FINDINGS and isinstance(seen.details, FindingsDetails) and seen.receipt_sha256 is None
    ):  # no receipt yet: a crash, or one too large
        receipt, no_receipt = _receipt(batch, verified, list(seen.details.records))
    batch.outcomes.append(
        Outcome(
            verified.path,
            "duplicate",
            manifest.bundle_id,
            manifest.sender.lab,
            manifest.sequence,
            seen.kind,
            f"already imported {seen.imported}; nothing changed",
            receipt=str(receipt.path) if receipt else None,
            no_receipt=no_receipt,
        )
    )


@dataclass(frozen=True)
class SentReceipt:
    path: Path
    sha256: str  # of the receipt document, which the sender sees after decrypting
    receipt: DeliveryReceipt


def send_receipt(home: Path, identity: Identity, trust: TrustStore, receipt: DeliveryReceipt, out_dir: Path, now: datetime) -> SentReceipt:
    """Write ``<out_dir>/receipt-<bundle id>-<our lab>-to-<sender lab>.bfx`` to the bundle's sender.

    Bundle ids are chosen by senders, so two labs may use one: the name carries the sender too.
    A receipt over ``MAX_RECEIPT_BYTES`` is refused by the writer (``BundleContentError``).
    """
    body = encode_receipt(receipt)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"receipt-{receipt.bundle_id}-{identity.card.lab.id}-to-{receipt.sender.lab}.bfx"
    with tempfile.TemporaryDirectory(prefix=".receipt-", dir=out_dir) as tmp:
        source = Path(tmp) / f"receipt-{receipt.bundle_id}.json"
        source.write_bytes(body)
        export_bundle(home, identity, trust, output, recipients=[receipt.sender.lab], receipts=[source], now=now)
    return SentReceipt(output, hashlib.sha256(body).hexdigest(), receipt)


def _receipt(batch: _Batch, verified: VerifiedBundle, records: list[str]) -> tuple[SentReceipt | None, str | None]:
    """The receipt sent for a findings bundle taken in, or why none can be (it would exceed the cap).

    A bundle from another implementation may list more than a receipt can hold. It stays
    imported (it verified); the answer is reported, audited, and given again, as cheaply (one
    encoding, nothing signed or written), by every later run that meets the bundle: it depends
    only on the ledger row and this lab's key, so recording it would only add a schema column.
    """
    if batch.outbox is None:
        return None, None
    receipt = receipt_for(verified.manifest, batch.identity.card.lab_key, records, batch.now)
    size = len(encode_receipt(receipt))
    if size > MAX_RECEIPT_BYTES:
        reason = (
            f"no delivery receipt: for {len(receipt.files)} files and {len(receipt.records)} records it would be {size:,} bytes,"
            f" over the {MAX_RECEIPT_BYTES:,}-byte cap of a receipt; {receipt.sender.lab} should send fewer files per bundle"
        )
        if batch.audit is not None:
            batch.audit.append(
                events.RECEIPT_IMPOSSIBLE,
                {"bundle_id": receipt.bundle_id, "partner": receipt.sender.lab, "size": size, "reason": reason},
            )
        return None, reason
    sent = send_receipt(batch.home, batch.identity, batch.trust, receipt, Path(batch.outbox), batch.now)
    batch.store.set_receipt(verified.manifest.sender.lab, verified.manifest.bundle_id, sent.sha256)
    if batch.audit is not None:
        batch.audit.append(
            events.RECEIPT_SENT,
            {
                "bundle_id": sent.receipt.bundle_id,
                "partner": sent.receipt.sender.lab,
                "sha256": sent.sha256,
                "path": str(sent.path),
            },
        )
    return sent, None


def _reject(batch: _Batch, path: Path, exc: BallisticsError, verified: VerifiedBundle | None) -> None:
    bundle_id, sender = _identify(path, verified)
    quarantined, not_moved = _quarantine(
        batch.home,
        path,
        {
            "path": str(path),
            "bundle_id": bundle_id,
            "sender": sender,
            "reason": exc.reason,
            "error": type(exc).__name__,
            "exit_code": exc.exit_code,
            "time": format_time(now_utc()),
        },
    )
    if batch.audit is not None:
        batch.audit.append(
            events.BUNDLE_REJECTED,
            {
                "path": str(path),
                "error": type(exc).__name__,
                "reason": exc.reason,
                "exit_code": exc.exit_code,
                "bundle_id": bundle_id,
                "sender": sender,
                "quarantine": str(quarantined) if quarantined else None,
                "not_moved": not_moved,
            },
        )
    batch.outcomes.append(
        Outcome(
            path,
            "rejected",
            bundle_id,
            sender["lab"] if sender else None,
            verified.manifest.sequence if verified else None,
            None,
            exc.reason,
            type(exc).__name__,
            exc.exit_code,
            quarantine=str(quarantined) if quarantined else None,
            not_moved=not_moved,
        )
    )


def _identify(path: Path, verified: VerifiedBundle | None) -> tuple[str | None, dict[str, Any] | None]:
    """Bundle id and sender: authenticated when verified, else as the header claims (if it parses)."""
    if verified is not None:
        return verified.manifest.bundle_id, verified.manifest.sender.to_dict()
    return _claimed_id(path), None


def _claimed_id(path: Path) -> str | None:
    """The bundle id an (unauthenticated) header claims, if it parses."""
    try:
        return str(inspect_bundle(path)["bundle_id"])
    except BallisticsError:
        return None


def _quarantine(home: Path, path: Path, reason: dict[str, Any]) -> tuple[Path | None, str | None]:
    """Move the bundle to ``<home>/quarantine/`` by rename, the reason written beside it first.

    Returns (where it went, None); (None, None) when the file is already gone (another import
    running at the same time moved it); (None, why) when it stays where it is: it is not a
    regular file (nothing but a regular file is ever moved, copied or deleted), or the inbox
    does not let this process move it (read-only, another owner). Across file systems a regular
    file is copied, synced and renamed into the quarantine, then removed from the inbox; if it
    cannot be removed, the copy is, and the file stays.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None, "not a regular file: left where it is"
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot look at it: {exc.strerror}; left where it is"
    folder = home / "quarantine"
    stamp = reason["time"].replace("-", "").replace(":", "")
    target = folder / f"{stamp}-{secrets.token_hex(3)}-{path.name}"
    sidecar = target.with_name(target.name + ".reason.json")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(sidecar, json.dumps({**reason, "quarantined_as": str(target)}, indent=2).encode() + b"\n", mode=0o644)
    except OSError as exc:
        return None, f"cannot write to {folder}: {exc.strerror}; left where it is"
    try:
        os.rename(path, target)
        return target, None
    except FileNotFoundError:
        sidecar.unlink(missing_ok=True)
        return None, None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            sidecar.unlink(missing_ok=True)
            return None, f"cannot move it: {exc.strerror}; left where it is"
    try:  # another file system: a regular file only (checked again on the open file), never a device
        copy_atomic(path, target, mode=0o600, follow=False)
    except FileNotFoundError:
        sidecar.unlink(missing_ok=True)
        return None, None
    except OSError as exc:
        sidecar.unlink(missing_ok=True)
        return None, f"cannot copy it to {folder}: {exc.strerror}; left where it is"
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        target.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return None, f"cannot remove it from {path.parent}: {exc.strerror}; left where it is"
    return target, None


# --- crash recovery ----------------------------------------------------------------------------


def _journal(batch: _Batch, bundle_id: str, content: _Content) -> None:
    """Name the store files this bundle may create, so a crash before the commit can be swept."""
    if not content.scans:
        return
    files = [{"sha256": scan.sha256} for scan in content.scans]  # partner scans are x3p files (the reader checks)
    write_atomic(batch.work / f"{bundle_id}.journal.json", json.dumps({"files": files}).encode())


def recover(home: Path, store: Store) -> list[Path]:
    """Remove what killed imports left behind: staging directories and store files without rows.

    A work directory belongs to a live import while its lock file is held; the journal of a dead
    one names, by SHA-256, the scans its unfinished transaction may have written. The store's
    scan and cache files of those without a row are deleted under the database's write lock:
    the paths are the store's own (:meth:`Store.scan_file`, :meth:`Store.cache_file`), never
    read from the journal, so a journal planted in ``<home>/import/`` can name nothing else, and
    one that is not a journal (not a regular file, not JSON, other fields) names nothing.
    Returns the files removed.
    """
    removed: list[Path] = []
    root = home / "import"
    if not root.is_dir():
        return removed
    with _creating(root):  # not in the instant between another import's mkdtemp and its lock
        dead = [
            (work, handle)
            for work in sorted(root.glob("work-*"))
            if not work.is_symlink() and work.is_dir() and (handle := _try_lock(work / "lock")) is not None
        ]
    for work, handle in dead:
        try:
            with store.transaction(immediate=True) as conn:
                for journal in sorted(work.glob("*.journal.json")):
                    for sha256 in _journaled(journal):
                        if not store.scan_known(sha256, conn=conn):
                            removed += _remove_orphans(store.scan_file(sha256, "x3p"), store.cache_file(sha256))
            shutil.rmtree(work, ignore_errors=True)
        finally:
            os.close(handle)
    return removed


def _journaled(journal: Path) -> list[str]:
    """The SHA-256 hashes a journal names; none for a file that is not a journal this software wrote."""
    try:
        data = read_bounded(journal, MAX_JOURNAL_BYTES, follow=False)
        files = load_json(data.decode("utf-8"), floats=False)["files"] if len(data) <= MAX_JOURNAL_BYTES else []
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(files, list):
        return []
    return [f["sha256"] for f in files if isinstance(f, dict) and isinstance(f.get("sha256"), str) and _SHA256.fullmatch(f["sha256"])]


def _remove_orphans(*paths: Path) -> list[Path]:
    gone = []
    for path in paths:
        for candidate in (path, *temporaries_of(path)):
            if candidate.exists():
                candidate.unlink()
                gone.append(candidate)
    return gone


def _try_lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def _creating(root: Path) -> Iterator[None]:
    """An exclusive lock on the ``import`` directory itself, for making a work directory and its lock as one step."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _work_directory(home: Path) -> Iterator[Path]:
    """``<home>/import/work-<pid>-<random>``, locked for as long as this import runs."""
    root = home / "import"
    root.mkdir(parents=True, exist_ok=True)
    with _creating(root):
        work = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=root))
        fd = os.open(work / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.close(fd)
