"""Key cards and revocations: a lab's public identity and its withdrawal, both self-signed.

A card's fingerprint is the SHA-256 of the canonical JSON of its body, so it covers the lab
id, name, country, all four public keys, the validity period and the predecessor link, and
it does not depend on the (randomised) ML-DSA signature bytes. The fingerprint doubles as the
key id written in bundle headers and manifests. The formats are specified in
``docs/exchange.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519

from ballistics.clock import format_time
from ballistics.files import read_bounded
from ballistics.labs import Lab, LabKey
from exchange.canonical import b64decode, b64encode, canonical_json, is_int, parse_json, parse_time
from exchange.errors import FingerprintMismatchError, KeyValidityError, MalformedCardError
from exchange.signing import HybridSignature, HybridSigningKey, HybridVerifyKey

CARD_TYPE = "ballistics-key-card"
REVOCATION_TYPE = "ballistics-key-revocation"
FORMAT_VERSION = 1
DOMAIN_CARD = b"ballistics key card v1"
DOMAIN_CARD_SUCCESSOR = b"ballistics key card successor v1"
DOMAIN_REVOCATION = b"ballistics key revocation v1"
#: Cards and revocations are small; anything bigger is refused before parsing.
MAX_DOCUMENT_BYTES = 64 * 1024
LAB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
COUNTRY = re.compile(r"[A-Z]{2}")
PUBLIC_KEY_BYTES = {"ed25519": 32, "ml_dsa_65": 1952, "x25519": 32, "ml_kem_768": 1184}
#: The longest validity period a card may claim (five years): a key is meant to be rotated.
MAX_CARD_VALIDITY = timedelta(days=1826)


def check_lab(lab: Lab, where: str) -> Lab:
    """The lab as a card may name it: a safe id, a printable name, an ISO 3166 alpha-2 country."""
    if not LAB_ID.fullmatch(lab.id):
        raise MalformedCardError(where, f"lab id {lab.id[:70]!r} must be 1-64 of A-Z a-z 0-9 . _ - (starting alphanumeric)")
    if not lab.name.strip() or len(lab.name) > 200 or not lab.name.isprintable():
        raise MalformedCardError(where, "lab name must be 1-200 printable characters")
    if not COUNTRY.fullmatch(lab.country):
        raise MalformedCardError(where, f"country {lab.country[:10]!r} must be an ISO 3166 alpha-2 code such as GB or FR")
    return lab


def format_fingerprint(fingerprint: bytes) -> str:
    """Upper-case hex in groups of four, the form read aloud over the phone."""
    text = fingerprint.hex().upper()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_fingerprint(text: str, *, where: str) -> bytes:
    """Accept the grouped form, any case, with spaces, colons or dashes; require all 64 digits."""
    digits = re.sub(r"[\s:-]", "", text)
    if not re.fullmatch(r"[0-9A-Fa-f]{64}", digits):
        raise FingerprintMismatchError(where, "a fingerprint is 64 hexadecimal digits (16 groups of 4)")
    return bytes.fromhex(digits)


@dataclass(frozen=True)
class KeyCard:
    """A verified card: constructing one from JSON checks its structure and signatures."""

    body: dict[str, Any]
    signature: HybridSignature
    successor_signature: HybridSignature | None

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(canonical_json(self.body)).digest()

    @property
    def key_id(self) -> str:
        return self.fingerprint.hex()

    @property
    def lab(self) -> Lab:
        return Lab.from_dict(self.body["lab"])

    @property
    def lab_key(self) -> LabKey:
        """The (lab id, key id) pair that manifests and receipts name a party by."""
        return LabKey(self.lab.id, self.key_id)

    @property
    def created(self) -> datetime:
        return parse_time(self.body["created"], where="card")

    @property
    def not_before(self) -> datetime:
        return parse_time(self.body["not_before"], where="card")

    @property
    def not_after(self) -> datetime:
        return parse_time(self.body["not_after"], where="card")

    @property
    def predecessor(self) -> str | None:
        return self.body["predecessor"]

    def _raw_key(self, name: str) -> bytes:
        return b64decode(self.body["keys"][name], where="card")

    @property
    def verify_key(self) -> HybridVerifyKey:
        return HybridVerifyKey(
            ed25519.Ed25519PublicKey.from_public_bytes(self._raw_key("ed25519")),
            mldsa.MLDSA65PublicKey.from_public_bytes(self._raw_key("ml_dsa_65")),
        )

    @property
    def encryption_key(self) -> hpke.MLKEM768X25519PublicKey:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self._raw_key("ml_kem_768")),
            x25519.X25519PublicKey.from_public_bytes(self._raw_key("x25519")),
        )

    def check_valid(self, moment: datetime, *, where: str) -> None:
        if not self.not_before <= moment <= self.not_after:
            raise KeyValidityError(
                where,
                f"key {self.key_id[:16]} of lab {self.lab.id} is valid from {self.body['not_before']} "
                f"to {self.body['not_after']}, not at {format_time(moment)}",
            )

    def to_dict(self) -> dict[str, Any]:
        signatures: dict[str, Any] = {"self": self.signature.to_dict()}
        if self.successor_signature is not None:
            signatures["predecessor"] = self.successor_signature.to_dict()
        return {"body": self.body, "signatures": signatures}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode("ascii") + b"\n"

    def verify_successor_of(self, predecessor: KeyCard, *, where: str) -> None:
        """Check that ``predecessor``'s keys vouch for this card (rotation)."""
        if self.predecessor != predecessor.key_id or self.successor_signature is None:
            raise MalformedCardError(where, f"card does not name {predecessor.key_id[:16]} as its predecessor")
        if self.lab.id != predecessor.lab.id:
            raise MalformedCardError(where, f"successor card is for lab {self.lab.id}, predecessor for {predecessor.lab.id}")
        predecessor.verify_key.verify(
            DOMAIN_CARD_SUCCESSOR,
            canonical_json(self.body),
            self.successor_signature,
            where=where,
            what="successor card",
        )

    @classmethod
    def from_dict(cls, doc: object, *, where: str) -> KeyCard:
        if not isinstance(doc, dict) or set(doc) != {"body", "signatures"}:
            raise MalformedCardError(where, "a key card has exactly the fields body and signatures")
        body, signatures = doc["body"], doc["signatures"]
        _check_card_body(body, where)
        if not isinstance(signatures, dict) or "self" not in signatures or not set(signatures) <= {"self", "predecessor"}:
            raise MalformedCardError(where, "card signatures must be self and, for a successor, predecessor")
        if ("predecessor" in signatures) != (body["predecessor"] is not None):
            raise MalformedCardError(where, "a predecessor signature goes with a predecessor link and only then")
        card = cls(
            body,
            HybridSignature.from_dict(signatures["self"], where=where, error=MalformedCardError),
            HybridSignature.from_dict(signatures["predecessor"], where=where, error=MalformedCardError)
            if "predecessor" in signatures
            else None,
        )
        try:
            verify_key = card.verify_key
            card.encryption_key  # noqa: B018 - parse the encryption keys now, so a bad card fails here
        except ValueError as exc:
            raise MalformedCardError(where, f"invalid public key: {exc}") from None
        verify_key.verify(DOMAIN_CARD, canonical_json(body), card.signature, where=where, what="key card self-signature")
        return card


def sign_card(body: dict[str, Any], signer: HybridSigningKey, predecessor: HybridSigningKey | None, *, where: str) -> KeyCard:
    """Self-sign ``body`` (and countersign it with the predecessor's keys on rotation)."""
    _check_card_body(body, where)
    message = canonical_json(body)
    return KeyCard(
        body,
        signer.sign(DOMAIN_CARD, message),
        predecessor.sign(DOMAIN_CARD_SUCCESSOR, message) if predecessor is not None else None,
    )


def card_body(lab: Lab, public: dict[str, bytes], created: datetime, not_after: datetime, predecessor: str | None) -> dict[str, Any]:
    return {
        "type": CARD_TYPE,
        "version": FORMAT_VERSION,
        "lab": lab.to_dict(),
        "keys": {name: b64encode(public[name]) for name in PUBLIC_KEY_BYTES},
        "created": format_time(created),
        "not_before": format_time(created),
        "not_after": format_time(not_after),
        "predecessor": predecessor,
    }


def _check_card_body(body: object, where: str) -> None:
    expected = {"type", "version", "lab", "keys", "created", "not_before", "not_after", "predecessor"}
    if not isinstance(body, dict) or set(body) != expected:
        raise MalformedCardError(where, f"card body must have exactly the fields {', '.join(sorted(expected))}")
    if body["type"] != CARD_TYPE or not is_int(body["version"]) or body["version"] != FORMAT_VERSION:
        raise MalformedCardError(where, f"not a version-{FORMAT_VERSION} {CARD_TYPE}")
    lab = body["lab"]
    if not isinstance(lab, dict) or set(lab) != {"id", "name", "country"} or not all(isinstance(v, str) for v in lab.values()):
        raise MalformedCardError(where, "card lab must have string fields id, name and country")
    check_lab(Lab.from_dict(lab), where)
    keys = body["keys"]
    if not isinstance(keys, dict) or set(keys) != set(PUBLIC_KEY_BYTES):
        raise MalformedCardError(where, f"card keys must be exactly {', '.join(PUBLIC_KEY_BYTES)}")
    for name, size in PUBLIC_KEY_BYTES.items():
        if len(b64decode(keys[name], where=where, error=MalformedCardError)) != size:
            raise MalformedCardError(where, f"{name} public key must be {size} bytes")
    times = [parse_time(body[k], where=where, error=MalformedCardError) for k in ("created", "not_before", "not_after")]
    if not times[1] < times[2]:
        raise MalformedCardError(where, "card validity period is empty")
    if times[2] - times[1] > MAX_CARD_VALIDITY:
        raise MalformedCardError(where, f"card validity period is longer than {MAX_CARD_VALIDITY.days} days")
    predecessor = body["predecessor"]
    if predecessor is not None and not (isinstance(predecessor, str) and re.fullmatch(r"[0-9a-f]{64}", predecessor)):
        raise MalformedCardError(where, "card predecessor must be null or a 64-digit lower-case hex key id")


@dataclass(frozen=True)
class Revocation:
    """A signed statement by a key that it must no longer be trusted."""

    body: dict[str, Any]
    signature: HybridSignature

    @property
    def key_id(self) -> str:
        return self.body["key_id"]

    @property
    def lab_id(self) -> str:
        return self.body["lab"]

    def to_dict(self) -> dict[str, Any]:
        return {"body": self.body, "signatures": {"self": self.signature.to_dict()}}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode("ascii") + b"\n"

    def verify(self, card: KeyCard, *, where: str) -> None:
        if card.key_id != self.key_id or card.lab.id != self.lab_id:
            raise MalformedCardError(where, f"revocation is for key {self.key_id[:16]}, not {card.key_id[:16]}")
        card.verify_key.verify(DOMAIN_REVOCATION, canonical_json(self.body), self.signature, where=where, what="revocation")

    @classmethod
    def create(cls, card: KeyCard, signer: HybridSigningKey, moment: datetime, reason: str) -> Revocation:
        body = {
            "type": REVOCATION_TYPE,
            "version": FORMAT_VERSION,
            "lab": card.lab.id,
            "key_id": card.key_id,
            "revoked_at": format_time(moment),
            "reason": " ".join(reason.split())[:500],
        }
        return cls(body, signer.sign(DOMAIN_REVOCATION, canonical_json(body)))

    @classmethod
    def from_dict(cls, doc: object, *, where: str) -> Revocation:
        """Parse only; the signature is checked against the trusted card by :meth:`verify`."""
        expected = {"type", "version", "lab", "key_id", "revoked_at", "reason"}
        if not isinstance(doc, dict) or set(doc) != {"body", "signatures"}:
            raise MalformedCardError(where, "a revocation has exactly the fields body and signatures")
        body, signatures = doc["body"], doc["signatures"]
        if (
            not isinstance(body, dict)
            or set(body) != expected
            or body["type"] != REVOCATION_TYPE
            or not is_int(body["version"])
            or body["version"] != FORMAT_VERSION
        ):
            raise MalformedCardError(where, f"not a version-{FORMAT_VERSION} {REVOCATION_TYPE}")
        if not isinstance(body["key_id"], str) or not re.fullmatch(r"[0-9a-f]{64}", body["key_id"]):
            raise MalformedCardError(where, "revocation key_id must be a 64-digit lower-case hex key id")
        if not isinstance(body["lab"], str) or not isinstance(body["reason"], str):
            raise MalformedCardError(where, "revocation lab and reason must be strings")
        parse_time(body["revoked_at"], where=where, error=MalformedCardError)
        if not isinstance(signatures, dict) or set(signatures) != {"self"}:
            raise MalformedCardError(where, "revocation signatures must be exactly self")
        return cls(body, HybridSignature.from_dict(signatures["self"], where=where, error=MalformedCardError))


def read_document(path: Path) -> dict[str, Any]:
    """Read a card or revocation file, bounded in size, as a JSON object."""
    where = str(path)
    try:
        data = read_bounded(path, MAX_DOCUMENT_BYTES)  # a FIFO or a device given as a card must not hang or stream forever
    except OSError as exc:
        raise MalformedCardError(where, f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise MalformedCardError(where, f"larger than {MAX_DOCUMENT_BYTES} bytes, not a key card or revocation")
    doc = parse_json(data, where=where, what="the file", error=MalformedCardError, ascii_only=False)
    if not isinstance(doc, dict):
        raise MalformedCardError(where, "expected a JSON object")
    return doc


def document_type(doc: dict[str, Any]) -> str | None:
    body = doc.get("body")
    return body.get("type") if isinstance(body, dict) else None
