"""Reading bundles: inspect the header, verify everything, then hand files to an importer.

:func:`open_bundle` is the library entry point: it decrypts and checks the whole bundle (stanza,
header MAC, every chunk tag, final chunk, manifest signature, names, sizes, hashes, records)
and writes nothing. Only the :class:`VerifiedBundle` it returns can release files, through
:meth:`VerifiedBundle.extract_to`, which decrypts and checks everything again while staging the
files in a temporary directory and renames it into place only when all checks hold again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ballistics.clock import format_time, now_utc
from ballistics.files import open_regular
from ballistics.ledger import DeliveryReceipt, LedgerEntry
from ballistics.records import MatchRecord, parse_record
from exchange.acceptance import check_against_store, check_content
from exchange.card import KeyCard
from exchange.errors import (
    ExpiredBundleError,
    KeyValidityError,
    MalformedBundleError,
    ManifestMismatchError,
    NotARecipientError,
    TamperedError,
    TruncatedError,
)
from exchange.header import Header, derive_keys, read_header, unwrap_file_key
from exchange.intelligence import IntelligenceDocument, parse_document
from exchange.keys import Identity
from exchange.manifest import (
    DOCUMENT_KINDS,
    DOMAIN_MANIFEST,
    MAX_MANIFEST_BYTES,
    SIGNATURE_BYTES,
    X3P_MAGIC,
    FileEntry,
    Manifest,
    parse_manifest,
)
from exchange.policy import CLOCK_SKEW, KEY_GRACE, MAX_BUNDLE_LIFETIME
from exchange.receipts import parse_receipt
from exchange.signing import HybridSignature
from exchange.stream import CHUNK, decrypt_chunks, encrypted_length
from exchange.trust import TrustStore

if TYPE_CHECKING:
    from ballistics.store import Store

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every byte has been authenticated for this lab at ``verified_at``."""

    path: Path
    header: Header
    manifest: Manifest
    sender: KeyCard
    identity: Identity
    trust: TrustStore
    verified_at: datetime
    #: The records, parsed and validated (small: at most 4 MiB each), in manifest order.
    records: tuple[MatchRecord, ...] = ()
    #: The delivery receipt of a receipt bundle.
    receipt: DeliveryReceipt | None = None
    #: The correlation request, correlation response or hit notification the bundle carries.
    document: IntelligenceDocument | None = None
    #: When checked against a store (``open_bundle(..., ledger=store)``): the ledger row of this
    #: very bundle if it was imported before (a duplicate, which import leaves alone).
    already_imported: LedgerEntry | None = None

    @property
    def files(self) -> tuple[FileEntry, ...]:
        return self.manifest.files

    @property
    def bundle_id(self) -> str:
        return self.manifest.bundle_id

    def to_dict(self) -> dict[str, Any]:
        """What ``bundle verify --json`` shows: the signed manifest, where, and when it was verified."""
        manifest = self.manifest.to_dict()
        return {
            "path": str(self.path),
            "verified": True,
            **{
                key: manifest[key]
                for key in ("bundle_id", "header_hash", "sender", "recipients", "sequence", "created", "expires", "files")
            },
            "verified_at": format_time(self.verified_at),
            "already_imported": self.already_imported.imported if self.already_imported else None,
        }

    def extract_to(self, destination: Path, progress: Progress | None = None) -> Path:
        """Stage the files under a temporary directory, re-verifying everything; rename into place.

        The second pass must find this very header and this very manifest (its bytes): each staged
        file then has the SHA-256 that :func:`open_bundle` verified, and that the ledger and the
        audit log record.
        """
        destination = Path(destination)
        if destination.exists():
            raise MalformedBundleError(destination, "extraction target already exists")
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.staging-", dir=destination.parent))
        try:
            again = _verify(self.path, self.identity, self.trust, self.verified_at, progress, _staging_sink(staging))
            if again.header.raw != self.header.raw:
                raise TamperedError(self.path, "the bundle changed between verification and extraction")
            if again.manifest.encoded != self.manifest.encoded:
                # The sender holds the file key and can sign a second manifest for the very same
                # header; the staged files must be those whose hashes were verified (and recorded).
                raise TamperedError(self.path, "the bundle changed between verification and extraction: another signed manifest")
            os.replace(staging, destination)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return destination


def open_bundle(
    path: Path,
    identity: Identity,
    trust: TrustStore,
    *,
    ledger: Store | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> VerifiedBundle:
    """Decrypt and check the whole bundle, writing nothing; raise the first refusal.

    Every check of docs/bundle-format.md section 5, then the content rules of
    :func:`exchange.acceptance.check_content`. With ``ledger`` (the lab's store, read only), also
    :func:`exchange.acceptance.check_against_store`, so that the bundle verifies exactly when an
    import would take it (or find it already imported: ``already_imported``).
    """
    verified = _verify(Path(path), identity, trust, now or now_utc(), progress, None)
    if ledger is None:
        return verified
    seen = check_against_store(verified.manifest, verified.records, ledger, verified.path)
    return replace(verified, already_imported=seen)


def inspect_bundle(path: Path, trust: TrustStore | None = None, own: KeyCard | None = None) -> dict[str, Any]:
    """What the header reveals without any private key (lab names only for keys known locally)."""
    path = Path(path)
    with _open_file(path) as handle:
        header = read_header(handle, str(path))
        size = os.fstat(handle.fileno()).st_size

    def party(key_id: bytes) -> dict[str, Any]:
        lab = own.lab.id if own is not None and own.fingerprint == key_id else None
        return {"key_id": key_id.hex(), "lab": lab or (trust.lab_of(key_id.hex()) if trust else None)}

    expected = header.length + encrypted_length(header.payload_length)
    return {
        "path": str(path),
        "format": "ballistics-bundle",
        "version": 1,
        "suite": "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM; Ed25519+ML-DSA-65",
        "bundle_id": header.bundle_id.hex(),
        "header_bytes": header.length,
        "header_hash": header.hash.hex(),
        "sender": party(header.sender),
        "recipients": [party(k) for k in header.recipients],
        "payload_bytes": header.payload_length,
        "chunks": -(-header.payload_length // CHUNK),
        "file_bytes": size,
        "length_consistent": size == expected,
    }


class _Plaintext:
    """Verified plaintext as a byte source; reads are bounded by the caller's caps."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer, self._offset = chunks, b"", 0

    def read(self, size: int, where: str) -> bytes:
        return b"".join(self.pieces(size, where))

    def pieces(self, size: int, where: str) -> Iterator[bytes]:
        while size:
            if self._offset == len(self._buffer):
                following = next(self._chunks, None)
                if following is None:
                    raise ManifestMismatchError(where, "the payload ends before the files the manifest lists")
                self._buffer, self._offset = following, 0
            take = min(size, len(self._buffer) - self._offset)
            yield self._buffer[self._offset : self._offset + take]
            self._offset += take
            size -= take

    def finish(self, where: str) -> None:
        """Consume the rest, which checks the final-chunk flag; nothing may be left over."""
        if self._offset != len(self._buffer) or next(self._chunks, None) is not None:
            raise ManifestMismatchError(where, "the payload continues after the last file of the manifest")


Sink = Callable[[FileEntry], BinaryIO]


def _verify(
    path: Path, identity: Identity, trust: TrustStore, now: datetime, progress: Progress | None, sink: Sink | None
) -> VerifiedBundle:
    where = str(path)
    with _open_file(path) as handle:
        header = read_header(handle, where)
        stanza, private_key = _our_stanza(header, identity, trust, where)
        sender = trust.sender(header.sender.hex(), where=where, now=now)
        payload_key, mac_key = derive_keys(unwrap_file_key(header, stanza, private_key, where), header.bundle_id)
        header.check_mac(mac_key, where)
        _check_length(header, os.fstat(handle.fileno()).st_size, where)
        plaintext = _Plaintext(decrypt_chunks(handle, payload_key, header.hash, where))
        manifest = _read_manifest(plaintext, header, sender, _lab_of(identity, trust), now, where)
        done = 0
        records: list[MatchRecord] = []
        receipts: list[DeliveryReceipt] = []
        documents: list[IntelligenceDocument] = []
        for entry in manifest.files:
            parsed = _check_file(plaintext, entry, sink, where)
            if isinstance(parsed, DeliveryReceipt):
                receipts.append(parsed)
            elif isinstance(parsed, dict):
                records.append(parsed)
            elif parsed is not None:
                documents.append(parsed)
            done += entry.size
            if progress:
                progress(done, header.payload_length)
        plaintext.finish(where)
    check_content(manifest, records, receipts, documents, identity, path)
    return VerifiedBundle(
        path,
        header,
        manifest,
        sender,
        identity,
        trust,
        now,
        tuple(records),
        receipts[0] if receipts else None,
        documents[0] if documents else None,
    )


def _open_file(path: Path) -> BinaryIO:
    """A bundle is a regular file: a FIFO or a device is refused at once, never waited on or read."""
    try:
        return open_regular(path)
    except OSError as exc:
        raise MalformedBundleError(path, f"cannot read: {exc.strerror}") from None


def _our_stanza(header: Header, identity: Identity, trust: TrustStore, where: str):
    for stanza in header.stanzas:
        key = identity.decryption_key(stanza.recipient.hex())
        if key is not None:
            return stanza, key
    labs = ", ".join(trust.lab_of(k.hex()) or f"key {k.hex()[:16]}" for k in header.recipients)
    raise NotARecipientError(where, f"bundle is addressed to {labs}, not to this lab ({identity.card.lab.id})")


def _check_length(header: Header, actual: int, where: str) -> None:
    expected = header.length + encrypted_length(header.payload_length)
    if actual < expected:
        raise TruncatedError(where, f"bundle truncated: {actual} bytes, its header declares {expected}")
    if actual > expected:
        raise TamperedError(where, f"{actual - expected} unexpected bytes after the final chunk")


def _lab_of(identity: Identity, trust: TrustStore) -> Callable[[str], str | None]:
    """The lab a key id belongs to, if this lab knows it: its own keys (current and retired), then the trust store."""
    own = {card.key_id: card.lab.id for card in (identity.card, *(card for card, _ in identity.retired))}
    return lambda key_id: own.get(key_id) or trust.lab_of(key_id)


def _read_manifest(
    plaintext: _Plaintext, header: Header, sender: KeyCard, lab_of: Callable[[str], str | None], now: datetime, where: str
) -> Manifest:
    (length,) = struct.unpack(">I", plaintext.read(4, where))
    if not 1 <= length <= MAX_MANIFEST_BYTES:
        raise MalformedBundleError(where, f"manifest length {length} outside 1..{MAX_MANIFEST_BYTES}")
    encoded = plaintext.read(length, where)
    (signature_length,) = struct.unpack(">H", plaintext.read(2, where))
    if signature_length != SIGNATURE_BYTES:
        raise MalformedBundleError(where, f"signature block is {signature_length} bytes, expected {SIGNATURE_BYTES}")
    signature = HybridSignature.from_bytes(plaintext.read(signature_length, where), where=where, error=MalformedBundleError)
    manifest = parse_manifest(encoded, where)
    sender.verify_key.verify(DOMAIN_MANIFEST, manifest.encoded, signature, where=where, what="manifest signature")
    _check_binding(manifest, header, sender, lab_of, where)
    if manifest.created > now + CLOCK_SKEW:
        raise ExpiredBundleError(where, f"bundle created at {format_time(manifest.created)}, in the future (now {format_time(now)})")
    if manifest.expires < now:
        raise ExpiredBundleError(where, f"bundle expired at {format_time(manifest.expires)} (now {format_time(now)})")
    if manifest.expires - manifest.created > MAX_BUNDLE_LIFETIME:
        raise ExpiredBundleError(
            where, f"bundle claims a lifetime above {MAX_BUNDLE_LIFETIME.days} days (created {format_time(manifest.created)})"
        )
    sender.check_valid(manifest.created, where=where)
    if now > sender.not_after + KEY_GRACE:  # judged at import too: a copy of an expired key can backdate
        raise KeyValidityError(
            where,
            f"sender key {sender.key_id[:16]} of lab {sender.lab.id} expired at {sender.body['not_after']}; "
            f"its bundles import for {KEY_GRACE.days} days after that, not at {format_time(now)}",
        )
    return manifest


def _check_binding(manifest: Manifest, header: Header, sender: KeyCard, lab_of: Callable[[str], str | None], where: str) -> None:
    """The signed manifest must describe this very header: this is what defeats re-wrapping.

    Every recipient whose key this lab knows (its own, or one in the trust store) must be named
    with that key's lab; a key this lab does not know cannot be checked and is taken as named.
    """
    mismatches = [
        ("bundle id", manifest.bundle_id == header.bundle_id.hex()),
        ("header hash", manifest.header_hash == header.hash.hex()),
        ("sender key", manifest.sender.key_id == header.sender.hex()),
        ("sender lab", manifest.sender.lab == sender.lab.id),
        ("recipients", manifest.recipient_ids == [k.hex() for k in header.recipients]),
        ("recipient labs", all(lab_of(r.key_id) in (None, r.lab) for r in manifest.recipients)),
        ("payload length", manifest.payload_length() == header.payload_length),
    ]
    wrong = [name for name, ok in mismatches if not ok]
    if wrong:
        raise ManifestMismatchError(
            where, f"signed manifest does not match this bundle: {', '.join(wrong)} differ (re-addressed or altered)"
        )


def _check_file(
    plaintext: _Plaintext, entry: FileEntry, sink: Sink | None, where: str
) -> MatchRecord | DeliveryReceipt | IntelligenceDocument | None:
    """Hash (and stage) one file; a record or a document (receipt, request, ...) is also parsed, and returned.

    Records and documents are held in memory: their sizes were capped with the manifest (step 7).
    """
    held_kinds = ("record", *DOCUMENT_KINDS)
    digest, held, head = hashlib.sha256(), [], b""
    target = sink(entry) if sink else None
    try:
        for piece in plaintext.pieces(entry.size, where):
            digest.update(piece)
            if entry.kind in held_kinds:
                held.append(piece)
            elif len(head) < len(X3P_MAGIC):
                head += piece[: len(X3P_MAGIC) - len(head)]
            if target:
                target.write(piece)
    finally:
        if target:
            target.close()
    if digest.hexdigest() != entry.sha256:
        raise ManifestMismatchError(where, f"{entry.name}: SHA-256 differs from the signed manifest")
    if entry.kind == "scan" and head != X3P_MAGIC:
        raise MalformedBundleError(where, f"{entry.name}: a scan must be an x3p file (a zip archive), and this one is not")
    if entry.kind == "record":
        return parse_record(b"".join(held), f"{where}:{entry.name}")
    if entry.kind == "receipt":
        return parse_receipt(b"".join(held), f"{where}:{entry.name}")
    if entry.kind in DOCUMENT_KINDS:
        return parse_document(entry.kind, b"".join(held), f"{where}:{entry.name}")
    return None


def _staging_sink(staging: Path) -> Sink:
    def open_member(entry: FileEntry) -> BinaryIO:
        target = (staging / entry.name).resolve()
        if staging.resolve() not in target.parents:
            raise MalformedBundleError(staging, f"member {entry.name!r} would land outside the staging directory")
        target.parent.mkdir(mode=0o700, exist_ok=True)
        return open(target, "xb")

    return open_member
