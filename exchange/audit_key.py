"""The audit-signing key: signs the audit log's head without asking for the lab's passphrase.

The head of the audit chain is signed at the end of every command that appended events, and an
examiner cannot be asked for the identity's passphrase on every comparison or search. So the lab
holds a second, narrower key pair (Ed25519 + ML-DSA-65, the same hybrid as the identity) whose
only use is signing audit heads. It is certified by the identity's signing key when the
passphrase is at hand anyway (``keys init``, ``keys rotate``, or any command that unlocks the
identity while no current audit key exists) and kept owner-only, unencrypted, in
``<home>/audit/signing-key.json``. The certificate is also written into the log itself, so a
verifier needs nothing but the log and the lab's public cards. Stealing this file lets a thief
sign audit heads, nothing else: it cannot sign bundles, cards or revocations. See
``docs/audit.md`` for the threat model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from ballistics.clock import format_time
from exchange.canonical import b64decode, b64encode, canonical_json, is_int, parse_time
from exchange.card import KeyCard
from exchange.errors import AuditKeyError, ExchangeSecurityError, MalformedError, MissingIdentityError
from exchange.files import check_owner_only, write_atomic
from exchange.keys import Identity, keys_dir, load_card
from exchange.signing import HybridSignature, HybridSigningKey, HybridVerifyKey

KEY_FILE_TYPE = "ballistics-audit-signing-key"
CERTIFICATE_TYPE = "ballistics-audit-key-certificate"
DOMAIN_CERTIFICATE = b"ballistics audit key certificate v1"
#: Ed25519 seed, then ML-DSA-65 seed.
SEED_BYTES = 64
PUBLIC_KEY_BYTES = {"ed25519": 32, "ml_dsa_65": 1952}
HEX64 = re.compile(r"[0-9a-f]{64}")
CERTIFICATE_FIELDS = {"type", "version", "lab", "identity_key_id", "keys", "created"}
#: A bound on the identity chain followed back from the current card (a rotation a month for 80 years).
MAX_CHAIN = 1000


@dataclass(frozen=True)
class AuditCertificate:
    """The identity's statement that this public key signs the lab's audit heads."""

    body: dict[str, Any]
    signature: HybridSignature

    @property
    def key_id(self) -> str:
        return hashlib.sha256(canonical_json(self.body)).hexdigest()

    @property
    def identity_key_id(self) -> str:
        return self.body["identity_key_id"]

    @property
    def verify_key(self) -> HybridVerifyKey:
        keys = self.body["keys"]
        return HybridVerifyKey(
            ed25519.Ed25519PublicKey.from_public_bytes(b64decode(keys["ed25519"], where="certificate")),
            mldsa.MLDSA65PublicKey.from_public_bytes(b64decode(keys["ml_dsa_65"], where="certificate")),
        )

    def verify(self, card: KeyCard, *, where: str) -> None:
        """Raise :class:`BadSignatureError` unless ``card``'s identity key signed this certificate."""
        card.verify_key.verify(DOMAIN_CERTIFICATE, canonical_json(self.body), self.signature, where=where, what="audit key certificate")

    def to_dict(self) -> dict[str, Any]:
        return {"body": self.body, "signature": self.signature.to_dict()}

    @classmethod
    def from_dict(cls, doc: object, *, where: str) -> AuditCertificate:
        if not isinstance(doc, dict) or set(doc) != {"body", "signature"}:
            raise AuditKeyError(where, "an audit key certificate has exactly the fields body and signature")
        body = doc["body"]
        if (
            not isinstance(body, dict)
            or set(body) != CERTIFICATE_FIELDS
            or body["type"] != CERTIFICATE_TYPE
            or not is_int(body["version"])
            or body["version"] != 1
        ):
            raise AuditKeyError(where, f"certificate body must be a version-1 {CERTIFICATE_TYPE} with fields {sorted(CERTIFICATE_FIELDS)}")
        if not (isinstance(body["identity_key_id"], str) and HEX64.fullmatch(body["identity_key_id"])):
            raise AuditKeyError(where, "certificate identity_key_id must be a lower-case hex key id")
        if not isinstance(body["lab"], str) or not isinstance(body["created"], str):
            raise AuditKeyError(where, "certificate lab and created must be strings")
        parse_time(body["created"], where=where, error=AuditKeyError)
        keys = body["keys"]
        if (
            not isinstance(keys, dict)
            or set(keys) != set(PUBLIC_KEY_BYTES)
            or any(len(b64decode(keys[name], where=where, error=AuditKeyError)) != size for name, size in PUBLIC_KEY_BYTES.items())
        ):
            raise AuditKeyError(where, "certificate keys must be an Ed25519 and an ML-DSA-65 public key")
        return cls(body, HybridSignature.from_dict(doc["signature"], where=where, error=AuditKeyError))


@dataclass(frozen=True)
class AuditKey:
    """The private audit-signing key with its certificate."""

    certificate: AuditCertificate
    seeds: bytes

    @property
    def signing(self) -> HybridSigningKey:
        return _signing_key(self.seeds)


def _signing_key(seeds: bytes) -> HybridSigningKey:
    return HybridSigningKey(ed25519.Ed25519PrivateKey.from_private_bytes(seeds[:32]), mldsa.MLDSA65PrivateKey.from_seed_bytes(seeds[32:]))


def audit_key_path(home: Path) -> Path:
    return Path(home) / "audit" / "signing-key.json"


def create_audit_key(identity: Identity, now: datetime, rng: Callable[[int], bytes] = os.urandom) -> AuditKey:
    """A fresh key pair certified by ``identity``'s signing keys (nothing is written)."""
    seeds = rng(SEED_BYTES)
    public = _signing_key(seeds).verify_key()
    body = {
        "type": CERTIFICATE_TYPE,
        "version": 1,
        "lab": identity.card.lab.id,
        "identity_key_id": identity.card.key_id,
        "keys": {"ed25519": b64encode(public.ed25519.public_bytes_raw()), "ml_dsa_65": b64encode(public.ml_dsa_65.public_bytes_raw())},
        "created": format_time(now),
    }
    return AuditKey(AuditCertificate(body, identity.signing.sign(DOMAIN_CERTIFICATE, canonical_json(body))), seeds)


def save_audit_key(home: Path, key: AuditKey) -> Path:
    """Owner-only and unencrypted, by design (see the module docstring)."""
    doc = {"type": KEY_FILE_TYPE, "version": 1, "certificate": key.certificate.to_dict(), "seeds": b64encode(key.seeds)}
    return write_atomic(audit_key_path(home), json.dumps(doc, indent=2, sort_keys=True).encode("ascii") + b"\n")


def load_audit_key(home: Path) -> AuditKey | None:
    """The current audit key, or None when the lab has none (no identity yet, or revoked)."""
    path = audit_key_path(home)
    check_owner_only(path)
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuditKeyError(path, f"unreadable audit signing key: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != KEY_FILE_TYPE or doc.get("version") != 1:
        raise AuditKeyError(path, f"not a version-1 {KEY_FILE_TYPE} file")
    key = AuditKey(
        AuditCertificate.from_dict(doc.get("certificate"), where=str(path)),
        b64decode(doc.get("seeds"), where=str(path), error=AuditKeyError),
    )
    if len(key.seeds) != SEED_BYTES or _raw(key.signing.verify_key()) != _raw(key.certificate.verify_key):
        raise AuditKeyError(path, "the audit signing key does not match its certificate")
    return key


def _raw(key: HybridVerifyKey) -> tuple[bytes, bytes]:
    return key.ed25519.public_bytes_raw(), key.ml_dsa_65.public_bytes_raw()


def identity_chain(home: Path) -> tuple[KeyCard, ...]:
    """The lab's identity and its ancestors, newest first: the only cards that certify audit keys.

    Starts at the current card (``keys/identity.json``) and follows each card's ``predecessor``
    link into ``keys/retired/<key id>.json``, keeping a predecessor only when it countersigned
    the card (``keys rotate``). A card under ``retired/`` that no such link reaches certifies
    nothing: planting a self-made card there does not make it the lab's. The chain ends at a
    missing or non-countersigning predecessor.
    """
    try:
        card = load_card(home)
    except MissingIdentityError:
        return ()
    chain = [card]
    while card.predecessor is not None and len(chain) <= MAX_CHAIN:
        path = keys_dir(home) / "retired" / f"{card.predecessor}.json"
        try:
            older = KeyCard.from_dict(json.loads(path.read_bytes())["card"], where=str(path))
            card.verify_successor_of(older, where=str(path))
        except FileNotFoundError:
            break
        except (ExchangeSecurityError, MalformedError):
            break
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditKeyError(path, f"unreadable retired identity: {exc}") from None
        chain.append(older)
        card = older
    return tuple(chain)
