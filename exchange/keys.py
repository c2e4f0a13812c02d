"""The lab's own identity: key generation, encryption at rest, rotation and revocation.

Layout under ``<home>/keys/`` (directory 0700, files 0600)::

    identity.json            current card + private keys encrypted under the passphrase
    retired/<key_id>.json    earlier identities, kept so bundles addressed to them still open
    revocation.json          present once the current key has been revoked

Private keys are stored as their seeds (Ed25519 32 B, ML-DSA-65 32 B, X25519 32 B,
ML-KEM-768 64 B), encrypted with AES-256-GCM under a key derived from the passphrase by
Scrypt; the associated data binds the ciphertext to the card's key id, so a private-key blob
cannot be swapped under another card.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ballistics.clock import now_utc
from ballistics.errors import UsageError
from ballistics.labs import Lab
from exchange.canonical import b64decode, b64encode, is_int
from exchange.card import MAX_CARD_VALIDITY, KeyCard, Revocation, card_body, check_lab, sign_card
from exchange.errors import BadPassphraseError, MalformedCardError, MissingIdentityError, RevokedKeyError
from exchange.files import check_owner_only, ensure_private_dir, write_atomic
from exchange.signing import HybridSigningKey

PRIVATE_TYPE = "ballistics-private-keys"
#: Seed lengths, in the order they are concatenated inside the encrypted blob.
SEED_BYTES = {"ed25519": 32, "ml_dsa_65": 32, "x25519": 32, "ml_kem_768": 64}
SECRET_BYTES = sum(SEED_BYTES.values())
PRIVATE_AAD_PREFIX = b"ballistics private keys v1\x00"
MIN_PASSPHRASE_BYTES = 8


#: Scrypt's floor: N=2**14 with r=8 is 16 MiB per guess, the interactive-login cost of
#: Percival's scrypt paper (2009); below it the passphrase barely slows an offline guesser.
MIN_SCRYPT_N = 2**14
MIN_SCRYPT_R = 8
#: Scrypt's ceiling: 128 * N * r bytes of memory at most 1 GiB, p at most 16, so that a key file
#: cannot make loading allocate without bound.
MAX_SCRYPT_MEMORY = 2**30
MAX_SCRYPT_P = 16


def scrypt_problem(n: Any, r: Any, p: Any) -> str | None:
    """Why these scrypt parameters are refused (too weak, or too costly to run), or None."""
    if not (is_int(n, 2, MAX_SCRYPT_MEMORY) and is_int(r, 1, MAX_SCRYPT_MEMORY) and is_int(p, 1, MAX_SCRYPT_P)):
        return f"scrypt n, r and p must be integers (p 1..{MAX_SCRYPT_P})"
    if n & (n - 1):
        return f"scrypt n={n} is not a power of two"
    if n < MIN_SCRYPT_N or r < MIN_SCRYPT_R:
        return f"scrypt cost n={n}, r={r} is below the floor n={MIN_SCRYPT_N}, r={MIN_SCRYPT_R} (16 MiB per guess)"
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        return f"scrypt cost n={n}, r={r} needs {128 * n * r >> 20} MiB, above the ceiling of {MAX_SCRYPT_MEMORY >> 20} MiB"
    return None


@dataclass(frozen=True)
class KeyProtection:
    """Scrypt cost for the passphrase (OWASP's recommended minimum: N=2**17, r=8, p=1)."""

    n: int = 2**17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if (problem := scrypt_problem(self.n, self.r, self.p)) is not None:
            raise UsageError("key protection", problem)


@dataclass(frozen=True)
class IdentityParameters:
    """How long a new card is valid (1 day to five years), and how its private keys are protected."""

    validity: timedelta = timedelta(days=730)
    protection: KeyProtection = KeyProtection()

    def __post_init__(self) -> None:
        if not timedelta(days=1) <= self.validity <= MAX_CARD_VALIDITY:
            raise UsageError("validity", f"a card is valid for 1 to {MAX_CARD_VALIDITY.days} days, not {self.validity.days}")


@dataclass(frozen=True)
class KeyMaterial:
    """The four private keys, rebuilt from their seeds."""

    seeds: bytes

    def _seed(self, name: str) -> bytes:
        start = 0
        for key, size in SEED_BYTES.items():
            if key == name:
                return self.seeds[start : start + size]
            start += size
        raise KeyError(name)

    @property
    def signing(self) -> HybridSigningKey:
        return HybridSigningKey(
            ed25519.Ed25519PrivateKey.from_private_bytes(self._seed("ed25519")),
            mldsa.MLDSA65PrivateKey.from_seed_bytes(self._seed("ml_dsa_65")),
        )

    @property
    def decryption(self) -> hpke.MLKEM768X25519PrivateKey:
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(self._seed("ml_kem_768")),
            x25519.X25519PrivateKey.from_private_bytes(self._seed("x25519")),
        )

    def public_keys(self) -> dict[str, bytes]:
        signing, decryption_seed = self.signing, self._seed("ml_kem_768")
        return {
            "ed25519": signing.ed25519.public_key().public_bytes_raw(),
            "ml_dsa_65": signing.ml_dsa_65.public_key().public_bytes_raw(),
            "x25519": x25519.X25519PrivateKey.from_private_bytes(self._seed("x25519")).public_key().public_bytes_raw(),
            "ml_kem_768": mlkem.MLKEM768PrivateKey.from_seed_bytes(decryption_seed).public_key().public_bytes_raw(),
        }

    @classmethod
    def generate(cls, rng: Callable[[int], bytes] = os.urandom) -> KeyMaterial:
        return cls(rng(SECRET_BYTES))


@dataclass(frozen=True)
class Identity:
    """The unlocked identity: the current card and keys, plus retired decryption keys."""

    card: KeyCard
    keys: KeyMaterial
    retired: tuple[tuple[KeyCard, KeyMaterial], ...] = ()
    revocation: Revocation | None = None
    #: The lab home the identity was loaded from (where its records of sent bundles live).
    home: Path | None = None

    @property
    def signing(self) -> HybridSigningKey:
        return self.keys.signing

    def decryption_key(self, key_id: str) -> hpke.MLKEM768X25519PrivateKey | None:
        """The private key for a stanza addressed to ``key_id`` (current or retired), if ours."""
        for card, material in ((self.card, self.keys), *self.retired):
            if card.key_id == key_id:
                return material.decryption
        return None

    def require_usable(self, where: str) -> None:
        if self.revocation is not None:
            raise RevokedKeyError(where, f"this lab's key {self.card.key_id[:16]} is revoked; run keys rotate or keys init")


def keys_dir(home: Path) -> Path:
    return Path(home) / "keys"


def identity_path(home: Path) -> Path:
    return keys_dir(home) / "identity.json"


def make_card(lab: Lab, material: KeyMaterial, created: datetime, validity: timedelta, predecessor: Identity | None = None) -> KeyCard:
    body = card_body(
        check_lab(lab, "card"), material.public_keys(), created, created + validity, predecessor.card.key_id if predecessor else None
    )
    return sign_card(body, material.signing, predecessor.signing if predecessor else None, where="card")


def init_identity(
    home: Path,
    lab: Lab,
    passphrase: bytes,
    *,
    now: datetime | None = None,
    parameters: IdentityParameters = IdentityParameters(),
    rng: Callable[[int], bytes] = os.urandom,
) -> Identity:
    """Create the lab's identity; refuses to overwrite an existing one."""
    path = identity_path(home)
    if path.exists():
        raise MissingIdentityError(path, "an identity already exists here; use keys rotate to replace it")
    _check_passphrase(passphrase)
    material = KeyMaterial.generate(rng)
    card = make_card(lab, material, now or now_utc(), parameters.validity)
    ensure_private_dir(keys_dir(home))
    _write_private(path, card, material, passphrase, parameters.protection, rng)
    return Identity(card, material, home=Path(home))


def load_card(home: Path) -> KeyCard:
    """The current public card, without the passphrase."""
    return KeyCard.from_dict(_read_private_file(identity_path(home))["card"], where=str(identity_path(home)))


def own_cards(home: Path) -> tuple[KeyCard, ...]:
    """This lab's public cards without the passphrase: the current one (unless revoked) and the retired ones.

    Empty when the home has no identity. What verifies the lab's own signed documents (a report)
    where a partner's would be looked up in the trust store.
    """
    if not identity_path(home).exists():
        return ()
    current = load_card(home)
    cards = [] if (keys_dir(home) / "revocation.json").exists() else [current]
    retired_dir = keys_dir(home) / "retired"
    for old in sorted(retired_dir.glob("*.json")) if retired_dir.is_dir() else ():
        cards.append(KeyCard.from_dict(_read_private_file(old)["card"], where=str(old)))
    return tuple(cards)


def load_identity(home: Path, passphrase: bytes) -> Identity:
    path = identity_path(home)
    check_owner_only(path)
    doc = _read_private_file(path)
    card = KeyCard.from_dict(doc["card"], where=str(path))
    material = _open_private(doc, card, passphrase, str(path))
    retired = []
    retired_dir = keys_dir(home) / "retired"
    for old in sorted(retired_dir.glob("*.json")) if retired_dir.is_dir() else ():
        check_owner_only(old)
        old_doc = _read_private_file(old)
        old_card = KeyCard.from_dict(old_doc["card"], where=str(old))
        retired.append((old_card, _open_private(old_doc, old_card, passphrase, str(old))))
    revocation_file = keys_dir(home) / "revocation.json"
    revocation = None
    if revocation_file.exists():
        revocation = Revocation.from_dict(json.loads(revocation_file.read_bytes()), where=str(revocation_file))
        revocation.verify(card, where=str(revocation_file))
    return Identity(card, material, tuple(retired), revocation, Path(home))


def rotate_identity(
    home: Path,
    passphrase: bytes,
    *,
    now: datetime | None = None,
    parameters: IdentityParameters = IdentityParameters(),
    rng: Callable[[int], bytes] = os.urandom,
) -> Identity:
    """Make a successor card countersigned by the current keys; retire the current identity."""
    old = load_identity(home, passphrase)
    material = KeyMaterial.generate(rng)
    card = make_card(old.card.lab, material, now or now_utc(), parameters.validity, predecessor=old)
    retired_dir = ensure_private_dir(keys_dir(home) / "retired")
    current = identity_path(home)
    write_atomic(retired_dir / f"{old.card.key_id}.json", current.read_bytes())
    _write_private(current, card, material, passphrase, parameters.protection, rng)
    (keys_dir(home) / "revocation.json").unlink(missing_ok=True)
    return Identity(card, material, ((old.card, old.keys), *old.retired), home=Path(home))


def revoke_identity(home: Path, passphrase: bytes, reason: str, *, now: datetime | None = None) -> Revocation:
    """Sign a revocation of the current key and remember it, so this lab stops using the key."""
    identity = load_identity(home, passphrase)
    revocation = Revocation.create(identity.card, identity.signing, now or now_utc(), reason)
    write_atomic(keys_dir(home) / "revocation.json", revocation.to_bytes())
    return revocation


def _check_passphrase(passphrase: bytes) -> None:
    if len(passphrase) < MIN_PASSPHRASE_BYTES:
        raise UsageError("passphrase", f"a passphrase must be at least {MIN_PASSPHRASE_BYTES} bytes long")


def _derive(passphrase: bytes, salt: bytes, kdf: dict[str, Any]) -> bytes:
    return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(passphrase)


def _write_private(
    path: Path,
    card: KeyCard,
    material: KeyMaterial,
    passphrase: bytes,
    protection: KeyProtection,
    rng: Callable[[int], bytes],
) -> None:
    salt, nonce = rng(16), rng(12)
    kdf = {"name": "scrypt", "n": protection.n, "r": protection.r, "p": protection.p, "salt": b64encode(salt)}
    key = _derive(passphrase, salt, kdf)
    ciphertext = AESGCM(key).encrypt(nonce, material.seeds, PRIVATE_AAD_PREFIX + card.fingerprint)
    doc = {
        "type": PRIVATE_TYPE,
        "version": 1,
        "card": card.to_dict(),
        "kdf": kdf,
        "aead": "AES-256-GCM",
        "nonce": b64encode(nonce),
        "ciphertext": b64encode(ciphertext),
    }
    write_atomic(path, json.dumps(doc, indent=2, sort_keys=True).encode("ascii") + b"\n")


def _read_private_file(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise MissingIdentityError(path, "no lab identity here; run: ballistics keys init --lab ID --name NAME --country CC") from None
    except (OSError, ValueError) as exc:
        raise MalformedCardError(path, f"unreadable private key file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != PRIVATE_TYPE or not is_int(doc.get("version")) or doc["version"] != 1:
        raise MalformedCardError(path, f"not a version-1 {PRIVATE_TYPE} file")
    return doc


def _open_private(doc: dict[str, Any], card: KeyCard, passphrase: bytes, where: str) -> KeyMaterial:
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or doc.get("aead") != "AES-256-GCM":
        raise MalformedCardError(where, "private keys must be protected with scrypt and AES-256-GCM")
    if (problem := scrypt_problem(kdf.get("n"), kdf.get("r"), kdf.get("p"))) is not None:
        raise MalformedCardError(where, problem)
    salt = b64decode(kdf.get("salt"), where=where, error=MalformedCardError)
    nonce = b64decode(doc.get("nonce"), where=where, error=MalformedCardError)
    ciphertext = b64decode(doc.get("ciphertext"), where=where, error=MalformedCardError)
    try:
        seeds = AESGCM(_derive(passphrase, salt, kdf)).decrypt(nonce, ciphertext, PRIVATE_AAD_PREFIX + card.fingerprint)
    except InvalidTag:
        raise BadPassphraseError(where, "wrong passphrase (or the key file was altered)") from None
    material = KeyMaterial(seeds)
    if len(seeds) != SECRET_BYTES or material.public_keys() != {
        name: b64decode(value, where=where) for name, value in card.body["keys"].items()
    }:
        raise MalformedCardError(where, "private keys do not match the card")
    return material
