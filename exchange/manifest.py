"""The signed manifest (docs/bundle-format.md, sections 3.4 and 3.5) and member-name rules.

The manifest is what the sender signs: both names (sender and every recipient key), the
bundle id, the exact header hash, a per-sender sequence number, creation and expiry times, and
each file's name, kind, size and SHA-256. Binding the header hash and the recipients is what
stops a recipient from re-wrapping the content to someone else in the sender's name.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ballistics.clock import format_time
from ballistics.labs import LabKey
from ballistics.records import MAX_RECORD_BYTES
from exchange.canonical import canonical_json, is_int, parse_json, parse_time
from exchange.errors import MalformedBundleError, UnsafeMemberNameError
from exchange.header import SUITE, VERSION
from exchange.signing import ED25519_SIGNATURE_BYTES, MLDSA65_SIGNATURE_BYTES, HybridSignature

MANIFEST_TYPE = "ballistics-bundle-manifest"
DOMAIN_MANIFEST = b"ballistics bundle manifest v1"
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_FILES = 10000
SIGNATURE_BYTES = ED25519_SIGNATURE_BYTES + MLDSA65_SIGNATURE_BYTES
KINDS = {
    "record": "records",
    "scan": "scans",
    "receipt": "receipts",
    "request": "requests",
    "response": "responses",
    "notification": "notifications",
}
#: A delivery receipt (docs/import.md) is a small JSON document; larger is refused before reading.
MAX_RECEIPT_BYTES = 64 * 1024
#: Correlation requests, responses and hit notifications (docs/bundle-format.md, section 3.7) are
#: small canonical JSON documents too, held in memory like receipts, under the same cap.
MAX_DOCUMENT_BYTES = 64 * 1024
#: The file kinds whose content is a canonical JSON document of the exchange protocol.
DOCUMENT_KINDS = ("receipt", "request", "response", "notification")
#: A scan is an x3p file: a zip archive (these first bytes) whose member name ends in ``.x3p``.
X3P_MAGIC = b"PK\x03\x04"
X3P_SUFFIX = ".x3p"
BASE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
#: A scan base that reads as a SHA-256 (64 hex digits, then ``.x3p``, in any case) names its content:
#: it must be exactly the entry's ``sha256`` followed by ``.x3p``, all lower case.
CONTENT_NAME = re.compile(r"[0-9A-Fa-f]{64}\.[Xx]3[Pp]")
#: The most bytes a file of each kind may hold, checked from the manifest before anything is read.
MAX_FILE_BYTES = {
    "record": MAX_RECORD_BYTES,
    "receipt": MAX_RECEIPT_BYTES,
    "request": MAX_DOCUMENT_BYTES,
    "response": MAX_DOCUMENT_BYTES,
    "notification": MAX_DOCUMENT_BYTES,
}
MAX_ORIGINAL_NAME = 255
FILE_FIELDS = {"name", "kind", "size", "sha256"}
FIELDS = {"type", "version", "suite", "bundle_id", "header_hash", "sender", "recipients", "sequence", "created", "expires", "files"}


@dataclass(frozen=True)
class FileEntry:
    name: str
    kind: str
    size: int
    sha256: str
    #: The sender's file name when it could not be the member name (spaces, non-ASCII, ...).
    #: Data only: a reader stores it as a label and never builds a path from it.
    original_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "kind": self.kind, "size": self.size, "sha256": self.sha256}
        if self.original_name is not None:
            doc["original_name"] = self.original_name
        return doc

    @property
    def display_name(self) -> str:
        """The sender's file name: ``original_name`` if given, else the member name's last part."""
        return self.original_name if self.original_name is not None else self.name.rpartition("/")[2]


@dataclass(frozen=True)
class Manifest:
    """The signed manifest as a typed value that keeps its canonical bytes.

    ``encoded`` is exactly what is signed and carried: the bytes a reader received (parsed once,
    by :func:`parse_manifest`) or the canonical encoding of a manifest being written. The fields
    and the bytes always agree: constructing a manifest with bytes that are not the canonical
    encoding of its fields raises ``ValueError``.
    """

    bundle_id: str
    header_hash: str
    sender: LabKey
    recipients: tuple[LabKey, ...]
    sequence: int
    created: datetime
    expires: datetime
    files: tuple[FileEntry, ...]
    encoded: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        canonical = canonical_json(self.to_dict())
        if self.encoded and self.encoded != canonical:
            raise ValueError("manifest bytes are not the canonical encoding of its fields")
        object.__setattr__(self, "encoded", canonical)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": MANIFEST_TYPE,
            "version": VERSION,
            "suite": SUITE,
            "bundle_id": self.bundle_id,
            "header_hash": self.header_hash,
            "sender": self.sender.to_dict(),
            "recipients": [r.to_dict() for r in self.recipients],
            "sequence": self.sequence,
            "created": format_time(self.created),
            "expires": format_time(self.expires),
            "files": [f.to_dict() for f in self.files],
        }

    @property
    def recipient_ids(self) -> list[str]:
        return [r.key_id for r in self.recipients]

    def with_header_hash(self, header_hash: str) -> Manifest:
        """The same manifest bound to the header actually written (the hash is fixed-width)."""
        return replace(self, header_hash=header_hash, encoded=b"")

    def plaintext_prefix(self, signature: HybridSignature) -> bytes:
        """``u32 M || manifest || u16 S || signature``: the first bytes of the payload plaintext."""
        return struct.pack(">I", len(self.encoded)) + self.encoded + struct.pack(">H", SIGNATURE_BYTES) + signature.to_bytes()

    def payload_length(self) -> int:
        return 4 + len(self.encoded) + 2 + SIGNATURE_BYTES + sum(f.size for f in self.files)


def member_name(kind: str, base: str, where: str) -> str:
    """``records/<base>`` or ``scans/<base>``, refusing anything that could escape or collide."""
    if "/" in base or "\\" in base or base.startswith("/"):
        raise UnsafeMemberNameError(where, f"member name {base[:80]!r} contains a path separator or is absolute")
    if not BASE_NAME.fullmatch(base):  # starts alphanumeric: never "." or ".."
        raise UnsafeMemberNameError(where, f"member name {base[:80]!r} must be 1-200 of A-Z a-z 0-9 . _ - starting alphanumeric")
    return f"{KINDS[kind]}/{base}"


def is_safe_base(base: str) -> bool:
    """Whether a file name can be a member name as it is (ASCII letters, digits, ``. _ -``, starting alphanumeric)."""
    return BASE_NAME.fullmatch(base) is not None


def check_original_name(name: str, where: str) -> str:
    """An original file name carried as data: 1-255 characters, printable, no path separator.

    It is only ever a label, but a label shown to examiners, so no control or format characters
    (which could hide or reorder text) and nothing that reads as a path.
    """
    if not 1 <= len(name) <= MAX_ORIGINAL_NAME:
        raise UnsafeMemberNameError(where, f"original file name must be 1-{MAX_ORIGINAL_NAME} characters")
    if not name.isprintable():  # false for every control, format, unassigned and separator character but the space
        raise UnsafeMemberNameError(where, f"original file name {name[:80]!r} has control or invisible characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise UnsafeMemberNameError(where, f"original file name {name[:80]!r} contains a path separator")
    if is_safe_base(name):
        raise UnsafeMemberNameError(where, f"original file name {name[:80]!r} is a safe name: it must be the member name itself")
    return name


def is_content_name(base: str) -> bool:
    """Whether a scan's base name reads as a SHA-256 (and so must be its content's, section 3.5)."""
    return CONTENT_NAME.fullmatch(base) is not None


def check_entries(entries: Sequence[FileEntry], where: str) -> None:
    """Every rule of an entry that needs no key and no content (docs/bundle-format.md, section 3.5).

    Names (safe, filed under their kind's prefix, unique ignoring case, a scan ending in ``.x3p``),
    a scan named like a SHA-256 naming exactly its entry's ``sha256``, ``original_name`` only on
    such a content-named scan, and the size caps of records and receipts. The reader applies it
    to the manifest before the signature (step 7), the writer to what it is about to send.
    """
    seen: set[str] = set()
    for entry in entries:
        prefix, _, base = entry.name.partition("/")
        if entry.name.startswith("/") or "\\" in entry.name:
            raise UnsafeMemberNameError(where, f"member name {entry.name[:80]!r} is absolute or has a backslash")
        if ".." in entry.name.split("/"):
            raise UnsafeMemberNameError(where, f"member name {entry.name[:80]!r} contains '..'")
        if entry.kind not in KINDS:
            raise UnsafeMemberNameError(
                where,
                f"member {entry.name[:80]!r} is of kind {entry.kind[:40]!r}, which this reader does not know (it knows "
                f"{', '.join(KINDS)}): a bundle of a newer kind is refused rather than guessed at",
            )
        if prefix != KINDS[entry.kind]:
            raise UnsafeMemberNameError(where, f"member {entry.name[:80]!r} of kind {entry.kind!r} must be under {KINDS[entry.kind]}/")
        member_name(entry.kind, base, where)
        if entry.kind == "scan" and not base.lower().endswith(X3P_SUFFIX):
            raise UnsafeMemberNameError(where, f"member {entry.name[:80]!r} of kind scan must be an x3p file (name ending in {X3P_SUFFIX})")
        content_named = entry.kind == "scan" and is_content_name(base)
        if content_named and base != f"{entry.sha256}{X3P_SUFFIX}":
            raise UnsafeMemberNameError(
                where, f"member {entry.name!r} is named by a SHA-256 other than its content's ({entry.sha256}), or not in lower case"
            )
        if entry.original_name is not None:
            if not content_named:
                raise UnsafeMemberNameError(
                    where, f"member {entry.name[:80]!r} carries original_name, which only a scan named scans/<sha256>.x3p may"
                )
            check_original_name(entry.original_name, where)
        folded = entry.name.casefold()
        if folded in seen:
            raise UnsafeMemberNameError(where, f"duplicate member name {entry.name!r} (names are compared case-insensitively)")
        seen.add(folded)
        cap = MAX_FILE_BYTES.get(entry.kind)
        if cap is not None and entry.size > cap:
            raise MalformedBundleError(where, f"{entry.name}: {entry.kind} of {entry.size} bytes exceeds {cap}")


def parse_manifest(data: bytes, where: str) -> Manifest:
    """Parse and structurally check a manifest; the signature is checked by the caller."""
    doc = parse_json(data, where=where, what="manifest", error=MalformedBundleError)
    if not isinstance(doc, dict) or set(doc) != FIELDS:
        raise MalformedBundleError(where, f"manifest must have exactly the fields {', '.join(sorted(FIELDS))}")
    if canonical_json(doc) != data:
        raise MalformedBundleError(where, "manifest is not in canonical JSON form")
    if (
        doc["type"] != MANIFEST_TYPE
        or not is_int(doc["version"])
        or doc["version"] != VERSION
        or not is_int(doc["suite"])
        or doc["suite"] != SUITE
    ):
        raise MalformedBundleError(where, f"manifest is not a version-{VERSION} suite-{SUITE} {MANIFEST_TYPE}")
    _require(isinstance(doc["bundle_id"], str) and re.fullmatch(r"[0-9a-f]{32}", doc["bundle_id"]), where, "bundle_id")
    _require(isinstance(doc["header_hash"], str) and re.fullmatch(r"[0-9a-f]{64}", doc["header_hash"]), where, "header_hash")
    for party in [doc["sender"], *(doc["recipients"] if isinstance(doc["recipients"], list) else [None])]:
        _require(
            isinstance(party, dict)
            and set(party) == {"lab", "key_id"}
            and isinstance(party["lab"], str)
            and isinstance(party["key_id"], str)
            and re.fullmatch(r"[0-9a-f]{64}", party["key_id"]),
            where,
            "sender/recipients",
        )
    _require(is_int(doc["sequence"], 1), where, "sequence")
    created = parse_time(doc["created"], where=where, error=MalformedBundleError)
    _require(parse_time(doc["expires"], where=where, error=MalformedBundleError) > created, where, "expires")
    files = doc["files"]
    _require(isinstance(files, list) and len(files) <= MAX_FILES, where, "files")
    for item in files:
        _require(
            isinstance(item, dict)
            and set(item) in (FILE_FIELDS, FILE_FIELDS | {"original_name"})
            and isinstance(item.get("original_name", ""), str)
            and isinstance(item["name"], str)
            and isinstance(item["kind"], str)
            and is_int(item["size"])
            and isinstance(item["sha256"], str)
            and re.fullmatch(r"[0-9a-f]{64}", item["sha256"]),
            where,
            "files entry",
        )
    entries = [FileEntry(f["name"], f["kind"], f["size"], f["sha256"], f.get("original_name")) for f in files]
    check_entries(entries, where)
    try:
        return _manifest_of(doc, entries, data)
    except ValueError:  # e.g. a time the lenient parser read but that is not in its canonical form
        raise MalformedBundleError(where, "manifest is not in canonical form") from None


def _manifest_of(doc: dict[str, Any], entries: list[FileEntry], data: bytes) -> Manifest:
    where = "manifest"
    return Manifest(
        bundle_id=doc["bundle_id"],
        header_hash=doc["header_hash"],
        sender=LabKey(doc["sender"]["lab"], doc["sender"]["key_id"]),
        recipients=tuple(LabKey(r["lab"], r["key_id"]) for r in doc["recipients"]),
        sequence=doc["sequence"],
        created=parse_time(doc["created"], where=where, error=MalformedBundleError),
        expires=parse_time(doc["expires"], where=where, error=MalformedBundleError),
        files=tuple(entries),
        encoded=data,
    )


def _require(condition: object, where: str, name: str) -> None:
    if not condition:
        raise MalformedBundleError(where, f"manifest field {name} is missing or malformed")
