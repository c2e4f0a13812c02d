"""Writing bundles (docs/bundle-format.md): gather, sign, wrap and encrypt in bounded memory.

Reading and verifying live in :mod:`exchange.reader`. The output appears atomically: a
temporary file beside the target, renamed into place only when everything has been written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from ballistics.clock import now_utc
from ballistics.errors import UsageError
from ballistics.files import read_bounded
from ballistics.labs import DEFAULT_LAB, Lab, LabKey
from ballistics.records import MAX_RECORD_BYTES, MatchRecord, parse_record, record_lab
from exchange.canonical import canonical_json
from exchange.card import KeyCard
from exchange.errors import BundleContentError
from exchange.files import atomic_output, ensure_private_dir, write_atomic
from exchange.header import derive_keys, encode_header, wrap_file_key
from exchange.intelligence import BUNDLE_KINDS, FILE_KINDS, HitNotification, IntelligenceDocument, encode_document
from exchange.keys import Identity
from exchange.manifest import (
    DOMAIN_MANIFEST,
    MAX_FILES,
    MAX_MANIFEST_BYTES,
    MAX_RECEIPT_BYTES,
    X3P_MAGIC,
    X3P_SUFFIX,
    FileEntry,
    Manifest,
    check_entries,
    check_original_name,
    is_content_name,
    is_safe_base,
    member_name,
)
from exchange.policy import MAX_BUNDLE_LIFETIME
from exchange.receipts import encode_receipt, receipt_for
from exchange.sent import record_sent
from exchange.stream import CHUNK, StreamWriter
from exchange.trust import TrustStore

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportOptions:
    """How long a bundle stays acceptable (at most ``MAX_BUNDLE_LIFETIME``); an importer refuses it after ``expires``."""

    lifetime: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.lifetime <= MAX_BUNDLE_LIFETIME:
            raise UsageError("lifetime", f"a bundle's lifetime is more than 0 and at most {MAX_BUNDLE_LIFETIME.days} days")


@dataclass(frozen=True)
class _Source:
    path: Path
    entry: FileEntry
    data: bytes | None  # records are held (small, validated); scans are streamed
    record_id: str | None = None  # a record's id, which the delivery receipt lists


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest: Manifest
    header_hash: str
    size: int


def export_bundle(
    home: Path,
    identity: Identity,
    trust: TrustStore,
    output: Path,
    *,
    recipients: Sequence[str],
    records: Sequence[Path] = (),
    scans: Sequence[Path] = (),
    receipts: Sequence[Path] = (),
    document: IntelligenceDocument | None = None,
    now: datetime | None = None,
    options: ExportOptions = ExportOptions(),
    rng: Callable[[int], bytes] = os.urandom,
    progress: Progress | None = None,
) -> ExportResult:
    """Write a bundle to trusted, unrevoked partners; nothing is written if anything is refused.

    ``document``, a correlation request, response or hit notification (:mod:`exchange.intelligence`),
    goes first, as the one file of its kind (docs/bundle-format.md, section 3.7).
    """
    where = str(output)
    now = (now or now_utc()).replace(microsecond=0)
    identity.require_usable(where)
    identity.card.check_valid(now, where=where)
    cards = {lab: trust.recipient(lab, where=where) for lab in dict.fromkeys(recipients)}
    for card in cards.values():
        card.check_valid(now, where=where)
    if not cards:
        raise BundleContentError(where, "no recipient: give at least one --to LAB")
    sources = (
        ([_document_source(document)] if document is not None else [])
        + [_record_source(Path(p), identity.card.lab) for p in records]
        + [_scan_source(Path(p)) for p in scans]
        + [_receipt_source(Path(p)) for p in receipts]
    )
    if not sources:
        raise BundleContentError(where, "nothing to send: give at least one --record or --scan")
    if len(sources) > MAX_FILES:
        raise BundleContentError(where, f"{len(sources)} files (a bundle holds at most {MAX_FILES})")
    if receipts and len(sources) != 1:
        raise BundleContentError(where, "a receipt bundle holds its one receipt and nothing else")
    if document is not None and (receipts or (records and not isinstance(document, HitNotification))):
        raise BundleContentError(where, f"a {BUNDLE_KINDS[type(document)]} bundle holds no receipt, and no record unless it notifies a hit")
    check_entries([s.entry for s in sources], where)

    bundle_id, file_key = rng(16), rng(32)
    sender = identity.card.fingerprint
    payload_key, mac_key = derive_keys(file_key, bundle_id)
    stanzas = [wrap_file_key(file_key, bundle_id, sender, card.fingerprint, card.encryption_key) for card in cards.values()]
    unbound = Manifest(
        bundle_id=bundle_id.hex(),
        header_hash="0" * 64,
        sender=identity.card.lab_key,
        recipients=tuple(sorted((LabKey(lab, card.key_id) for lab, card in cards.items()), key=lambda r: r.key_id)),
        sequence=upcoming_sequence(home, identity.card.lab.id),
        created=now,
        expires=now + options.lifetime,
        files=tuple(s.entry for s in sources),
    )
    if len(unbound.encoded) > MAX_MANIFEST_BYTES:
        raise BundleContentError(
            where,
            f"the manifest of these {len(sources)} files is {len(unbound.encoded)} bytes (at most {MAX_MANIFEST_BYTES}): send fewer files",
        )
    if not receipts and document is None:  # only findings are receipted: the other kinds are answered
        check_receiptable(unbound, [s.record_id for s in sources], cards, now, where)
    unbound = replace(unbound, sequence=next_sequence(home, identity.card.lab.id), encoded=b"")
    payload_length = unbound.payload_length()  # the hash is fixed-width, so known before the header
    header = encode_header(payload_length, bundle_id, sender, stanzas, mac_key)
    manifest = unbound.with_header_hash(header.hash.hex())
    signature = identity.signing.sign(DOMAIN_MANIFEST, manifest.encoded)

    done, total = 0, payload_length
    with atomic_output(Path(output), mode=0o644) as sink:
        sink.write(header.raw)
        writer = StreamWriter(sink, payload_key, header.hash, payload_length)
        writer.write(manifest.plaintext_prefix(signature))
        for source in sources:
            for piece in _pieces(source):
                writer.write(piece)
                done += len(piece)
                if progress:
                    progress(done, total)
        writer.close()
    record_sent(home, manifest, signature)
    return ExportResult(Path(output), manifest, header.hash.hex(), Path(output).stat().st_size)


def check_receiptable(
    manifest: Manifest, record_ids: Sequence[str | None], cards: Mapping[str, KeyCard], now: datetime, where: str
) -> None:
    """Refuse a findings bundle whose delivery receipt would exceed ``MAX_RECEIPT_BYTES`` (docs/bundle-format.md, section 6).

    The receipt is built as a recipient will build it (``exchange.receipts.receipt_for``): every
    file of ``manifest`` and the ids of its records (``record_ids``, one per file, ``None`` for a
    scan), signed by the recipient whose lab id encodes longest (key ids and the time are fixed
    width; the header hash is fixed width, so the unbound manifest gives the exact size).
    """
    card = max(cards.values(), key=lambda c: len(canonical_json(c.lab.id)))
    receipt = receipt_for(manifest, card.lab_key, filter(None, record_ids), now)

    def size(count: int) -> int:
        """The receipt's bytes for the first ``count`` files (and their records)."""
        return len(encode_receipt(replace(receipt, files=receipt.files[:count], records=tuple(sorted(filter(None, record_ids[:count]))))))

    total = size(len(receipt.files))
    if total <= MAX_RECEIPT_BYTES:
        return
    low, high = 0, len(receipt.files) - 1  # the most files whose receipt fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if size(middle) <= MAX_RECEIPT_BYTES else (low, middle - 1)
    raise BundleContentError(
        where,
        f"{len(receipt.files)} files: the delivery receipt for this bundle would be {total:,} bytes,"
        f" over the {MAX_RECEIPT_BYTES:,}-byte cap; send at most {low} files per bundle",
    )


def upcoming_sequence(home: Path, lab_id: str) -> int:
    """The sequence number the next bundle will take, read without taking it."""
    return int(_sequences(Path(home) / "exchange" / "sequence.json").get(lab_id, 0)) + 1


def next_sequence(home: Path, lab_id: str) -> int:
    """The next per-sender sequence number, persisted before the bundle is written (gaps are harmless)."""
    path = Path(home) / "exchange" / "sequence.json"
    counters = _sequences(path)
    counters[lab_id] = int(counters.get(lab_id, 0)) + 1
    ensure_private_dir(path.parent)
    write_atomic(path, json.dumps(counters, sort_keys=True).encode("ascii"))
    return counters[lab_id]


def _sequences(path: Path) -> dict[str, int]:
    try:
        counters: dict[str, int] = json.loads(path.read_bytes()) if path.exists() else {}
        return counters
    except ValueError:
        raise BundleContentError(path, "sequence file is not JSON") from None


def _record_source(path: Path, ours: Lab) -> _Source:
    try:
        data = read_bounded(path, MAX_RECORD_BYTES)
    except OSError as exc:
        raise BundleContentError(path, f"cannot read record: {exc.strerror}") from None
    record = parse_record(data, path)
    check_own_record(record, ours, path)
    entry = FileEntry(member_name("record", path.name, str(path)), "record", len(data), hashlib.sha256(data).hexdigest())
    return _Source(path, entry, data, record["record_id"])


def check_own_record(record: MatchRecord, ours: Lab, path: Path) -> None:
    """A lab sends only its own records: the partner's import refuses any other (ForeignContentError).

    Refused here as a usage error (exit 2), naming the record file, before anything is written.
    """
    lab = record_lab(record)
    if lab.id == ours.id:
        return
    hint = (
        f"it was made before keys init; re-attribute the records of lab {DEFAULT_LAB} to {ours.id} first (ballistics db reattribute RECORD_FILE...)"
        if lab.id == DEFAULT_LAB
        else "a bundle carries only this lab's records"
    )
    raise UsageError(path, f"record {record['record_id']} is of lab {lab.id}, not of this lab ({ours.id}): {hint}")


def _document_source(document: IntelligenceDocument) -> _Source:
    """A request, response or notification, encoded in memory (never read from a file)."""
    data = encode_document(document)
    kind = FILE_KINDS[type(document)]
    entry = FileEntry(member_name(kind, document.member, document.member), kind, len(data), hashlib.sha256(data).hexdigest())
    return _Source(Path(document.member), entry, data)


def _receipt_source(path: Path) -> _Source:
    """A delivery receipt (built and checked by ``exchange.receipts``), held in memory like a record."""
    try:
        data = read_bounded(path, MAX_RECEIPT_BYTES)
    except OSError as exc:
        raise BundleContentError(path, f"cannot read receipt: {exc.strerror}") from None
    if len(data) > MAX_RECEIPT_BYTES:
        raise BundleContentError(path, f"a receipt holds at most {MAX_RECEIPT_BYTES} bytes")
    entry = FileEntry(member_name("receipt", path.name, str(path)), "receipt", len(data), hashlib.sha256(data).hexdigest())
    return _Source(path, entry, data)


def _scan_source(path: Path) -> _Source:
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != X3P_MAGIC or path.suffix.lower() != X3P_SUFFIX:
                raise BundleContentError(path, "scans travel as x3p files (a zip with the .x3p extension)")
            handle.seek(0)
            digest, size = hashlib.sha256(), 0
            while piece := handle.read(CHUNK):
                digest.update(piece)
                size += len(piece)
    except OSError as exc:
        raise BundleContentError(path, f"cannot read scan: {exc.strerror}") from None
    sha = digest.hexdigest()
    if is_content_name(path.name):
        # A name that reads as a SHA-256 is taken by the reader as the content's hash: it must be.
        if path.name.lower() != f"{sha}{X3P_SUFFIX}":
            raise BundleContentError(path, f"a scan named like a SHA-256 must be named by its own content's ({sha}): rename it")
        return _Source(path, FileEntry(member_name("scan", f"{sha}{X3P_SUFFIX}", str(path)), "scan", size, sha), None)
    if is_safe_base(path.name):
        return _Source(path, FileEntry(member_name("scan", path.name, str(path)), "scan", size, sha), None)
    # A name with spaces or non-ASCII letters travels as data; the member is named by the content.
    original = check_original_name(path.name, str(path))
    return _Source(path, FileEntry(member_name("scan", f"{sha}.x3p", str(path)), "scan", size, sha, original), None)


def _pieces(source: _Source) -> Iterator[bytes]:
    """The file's bytes, re-hashed as they are sent: a file changed since it was listed is refused."""
    if source.data is not None:
        yield source.data
        return
    digest, size = hashlib.sha256(), 0
    with open(source.path, "rb") as handle:
        while size < source.entry.size and (piece := handle.read(min(CHUNK, source.entry.size - size))):
            digest.update(piece)
            size += len(piece)
            yield piece
        if size != source.entry.size or handle.read(1) or digest.hexdigest() != source.entry.sha256:
            raise BundleContentError(source.path, "the file changed while the bundle was being written")
