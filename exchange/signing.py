"""Hybrid signatures: Ed25519 and ML-DSA-65 over the same message, valid only when both verify.

Ed25519 protects today against a flaw found in the young ML-DSA implementations; ML-DSA-65
protects signatures that must still mean something when a quantum computer breaks Ed25519.
Every signed message starts with a domain string (a different one per kind of document) so
that a signature over a key card can never be replayed as a signature over a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from exchange.canonical import b64decode, b64encode
from exchange.errors import BadSignatureError, MalformedError

ED25519_SIGNATURE_BYTES = 64
MLDSA65_SIGNATURE_BYTES = 3309
#: ML-DSA context string, the same for every document kind (the domain string does the separation).
MLDSA_CONTEXT = b"ballistics-exchange-v1"


@dataclass(frozen=True)
class HybridSignature:
    ed25519: bytes
    ml_dsa_65: bytes

    def to_dict(self) -> dict[str, str]:
        return {"ed25519": b64encode(self.ed25519), "ml_dsa_65": b64encode(self.ml_dsa_65)}

    @classmethod
    def from_dict(cls, doc: object, *, where: str, error: type[MalformedError] = MalformedError) -> HybridSignature:
        if not isinstance(doc, dict) or set(doc) != {"ed25519", "ml_dsa_65"}:
            raise error(where, "signature must have exactly the fields ed25519 and ml_dsa_65")
        signature = cls(b64decode(doc["ed25519"], where=where, error=error), b64decode(doc["ml_dsa_65"], where=where, error=error))
        signature.check_lengths(where, error)
        return signature

    def to_bytes(self) -> bytes:
        return self.ed25519 + self.ml_dsa_65

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str, error: type[MalformedError] = MalformedError) -> HybridSignature:
        if len(data) != ED25519_SIGNATURE_BYTES + MLDSA65_SIGNATURE_BYTES:
            raise error(where, f"signature block is {len(data)} bytes, expected {ED25519_SIGNATURE_BYTES + MLDSA65_SIGNATURE_BYTES}")
        return cls(data[:ED25519_SIGNATURE_BYTES], data[ED25519_SIGNATURE_BYTES:])

    def check_lengths(self, where: str, error: type[MalformedError]) -> None:
        if len(self.ed25519) != ED25519_SIGNATURE_BYTES or len(self.ml_dsa_65) != MLDSA65_SIGNATURE_BYTES:
            raise error(where, "signature has the wrong length")


@dataclass(frozen=True)
class HybridVerifyKey:
    ed25519: ed25519.Ed25519PublicKey
    ml_dsa_65: mldsa.MLDSA65PublicKey

    def verify(self, domain: bytes, message: bytes, signature: HybridSignature, *, where: str, what: str) -> None:
        """Raise :class:`BadSignatureError` unless both halves verify (both are always checked)."""
        data = _signed_bytes(domain, message)
        failures = []
        try:
            self.ed25519.verify(signature.ed25519, data)
        except InvalidSignature:
            failures.append("Ed25519")
        try:
            self.ml_dsa_65.verify(signature.ml_dsa_65, data, MLDSA_CONTEXT)
        except InvalidSignature:
            failures.append("ML-DSA-65")
        if failures:
            raise BadSignatureError(where, f"{what}: {' and '.join(failures)} signature does not verify")


@dataclass(frozen=True)
class HybridSigningKey:
    ed25519: ed25519.Ed25519PrivateKey
    ml_dsa_65: mldsa.MLDSA65PrivateKey

    def sign(self, domain: bytes, message: bytes) -> HybridSignature:
        data = _signed_bytes(domain, message)
        return HybridSignature(self.ed25519.sign(data), self.ml_dsa_65.sign(data, MLDSA_CONTEXT))

    def verify_key(self) -> HybridVerifyKey:
        return HybridVerifyKey(self.ed25519.public_key(), self.ml_dsa_65.public_key())


def _signed_bytes(domain: bytes, message: bytes) -> bytes:
    if b"\x00" in domain:
        raise ValueError("a signing domain must not contain NUL")
    return domain + b"\x00" + message
