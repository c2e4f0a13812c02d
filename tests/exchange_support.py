"""Shared helpers for the exchange tests: labs with real keys in real homes on disk.

Scrypt runs at a low cost here so that the suite stays fast; the stored parameters make
loading use the same cost, exactly as it would with the production default.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ballistics.clock import format_time
from ballistics.labs import Lab
from exchange.bundle import next_sequence
from exchange.canonical import canonical_json
from exchange.header import derive_keys, encode_header, wrap_file_key
from exchange.keys import Identity, IdentityParameters, KeyProtection, init_identity, load_identity
from exchange.manifest import DOMAIN_MANIFEST, SIGNATURE_BYTES
from exchange.stream import StreamWriter
from exchange.trust import TrustStore

PASSPHRASE = b"correct horse battery staple"
FAST = IdentityParameters(protection=KeyProtection(n=2**14, r=8, p=1))
T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


@dataclass
class LabHome:
    home: Path
    identity: Identity

    @property
    def trust(self) -> TrustStore:
        return TrustStore.open(self.home)

    def reload(self) -> Identity:
        self.identity = load_identity(self.home, PASSPHRASE)
        return self.identity


def make_lab(root: Path, lab_id: str, country: str = "GB", now: datetime = T0 - timedelta(days=1)) -> LabHome:
    home = root / lab_id
    identity = init_identity(home, Lab(lab_id, f"Laboratory {lab_id}", country), PASSPHRASE, now=now, parameters=FAST)
    return LabHome(home, identity)


def introduce(a: LabHome, b: LabHome) -> None:
    """Each lab trusts the other's current card by its fingerprint."""
    a.trust.trust(b.identity.card, b.identity.card.fingerprint, where="test", now=T0)
    b.trust.trust(a.identity.card, a.identity.card.fingerprint, where="test", now=T0)


def file_entry(name: str, kind: str, data: bytes, **extra: object) -> tuple[dict[str, object], bytes]:
    """A manifest file entry for ``data`` (and the data), for :func:`signed_bundle`."""
    return {"name": name, "kind": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}, data


def signed_bundle(
    path: Path,
    sender: LabHome,
    recipients: Sequence[LabHome],
    files: Sequence[tuple[dict[str, object], bytes]],
    *,
    edit: Callable[[dict[str, Any]], None] | None = None,
    encode: Callable[[dict[str, Any]], bytes] = canonical_json,
    now: datetime = T0,
    bundle_id: bytes | None = None,
) -> Path:
    """A bundle validly signed by ``sender`` whatever its manifest says: for the rules a writer never breaks.

    ``edit`` changes the manifest document in place (after the fields are filled in, before the
    header hash, which it must leave fixed-width); ``encode`` spells it (canonical by default);
    ``bundle_id`` is random unless given (the 16 bytes of the header).
    """
    bundle_id, file_key = bundle_id or os.urandom(16), os.urandom(32)
    card = sender.identity.card
    cards = [r.identity.card for r in recipients]
    stanzas = [wrap_file_key(file_key, bundle_id, card.fingerprint, c.fingerprint, c.encryption_key) for c in cards]
    payload_key, mac_key = derive_keys(file_key, bundle_id)
    doc: dict[str, Any] = {
        "type": "ballistics-bundle-manifest",
        "version": 1,
        "suite": 1,
        "bundle_id": bundle_id.hex(),
        "header_hash": "0" * 64,
        "sender": {"lab": card.lab.id, "key_id": card.key_id},
        "recipients": sorted(({"lab": c.lab.id, "key_id": c.key_id} for c in cards), key=lambda r: r["key_id"]),
        "sequence": next_sequence(sender.home, card.lab.id),
        "created": format_time(now),
        "expires": format_time(now + timedelta(days=30)),
        "files": [entry for entry, _ in files],
    }
    if edit is not None:
        edit(doc)
    content = b"".join(data for _, data in files)
    payload_length = 4 + len(encode(doc)) + 2 + SIGNATURE_BYTES + len(content)
    header = encode_header(payload_length, bundle_id, card.fingerprint, stanzas, mac_key)
    if "header_hash" in doc:
        doc["header_hash"] = header.hash.hex()
    manifest = encode(doc)
    signature = sender.identity.signing.sign(DOMAIN_MANIFEST, manifest)
    plaintext = struct.pack(">I", len(manifest)) + manifest + struct.pack(">H", SIGNATURE_BYTES) + signature.to_bytes() + content
    sink = io.BytesIO()
    writer = StreamWriter(sink, payload_key, header.hash, len(plaintext))
    writer.write(plaintext)
    writer.close()
    path.write_bytes(header.raw + sink.getvalue())
    return path
