"""The partners a lab trusts: their key cards, successions and revocations.

Trusting is always an explicit act: a new key is accepted only with its full fingerprint,
read out by the partner over an independent channel; a successor card is accepted without
one only when the currently trusted key countersigned it (``keys rotate``). A revoked key is
never trusted again, as sender or recipient. The store is one JSON file,
``<home>/trust/partners.json``, rewritten atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ballistics.clock import format_time, now_utc
from exchange.card import CARD_TYPE, REVOCATION_TYPE, KeyCard, Revocation, document_type, format_fingerprint, read_document
from exchange.errors import (
    FingerprintMismatchError,
    MalformedCardError,
    RevokedKeyError,
    TrustStoreError,
    UntrustedRecipientError,
    UntrustedSenderError,
)
from exchange.files import ensure_private_dir, write_atomic

TRUSTED, SUPERSEDED, REVOKED = "trusted", "superseded", "revoked"


@dataclass(frozen=True)
class TrustEntry:
    card: KeyCard
    status: str
    trusted_at: str
    via: str
    superseded_by: str | None = None
    revocation: Revocation | None = None

    def stored(self) -> dict[str, Any]:
        """The entry as ``partners.json`` keeps it (the card and revocation in full)."""
        return {
            "card": self.card.to_dict(),
            "status": self.status,
            "trusted_at": self.trusted_at,
            "via": self.via,
            "superseded_by": self.superseded_by,
            "revocation": self.revocation.to_dict() if self.revocation else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """The entry as listed (``keys list``): lab, fingerprint, status, dates."""
        card = self.card
        return {
            "lab": card.lab.id,
            "name": card.lab.name,
            "country": card.lab.country,
            "key_id": card.key_id,
            "fingerprint": format_fingerprint(card.fingerprint),
            "status": self.status,
            "via": self.via,
            "trusted_at": self.trusted_at,
            "not_after": card.body["not_after"],
            "superseded_by": self.superseded_by,
            "revoked_at": self.revocation.body["revoked_at"] if self.revocation else None,
        }


class TrustStore:
    """Load with :meth:`open`; every change is written back before the method returns."""

    def __init__(self, path: Path, entries: dict[str, TrustEntry]) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def open(cls, home: Path) -> TrustStore:
        path = Path(home) / "trust" / "partners.json"
        if not path.exists():
            return cls(path, {})
        try:
            doc = json.loads(path.read_bytes())
            raw = doc["keys"]
            entries = {}
            for key_id, item in raw.items():
                card = KeyCard.from_dict(item["card"], where=str(path))
                if card.key_id != key_id:
                    raise TrustStoreError(path, f"entry {key_id[:16]} holds card {card.key_id[:16]}")
                revocation = Revocation.from_dict(item["revocation"], where=str(path)) if item["revocation"] else None
                if revocation is not None:
                    revocation.verify(card, where=str(path))
                entries[key_id] = TrustEntry(card, item["status"], item["trusted_at"], item["via"], item["superseded_by"], revocation)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TrustStoreError(path, f"unreadable trust store: {type(exc).__name__}: {exc}") from None
        return cls(path, entries)

    def entries(self) -> list[TrustEntry]:
        return sorted(self._entries.values(), key=lambda e: (e.card.lab.id, e.card.body["created"]))

    def get(self, key_id: str) -> TrustEntry | None:
        return self._entries.get(key_id)

    def trust(self, card: KeyCard, fingerprint: bytes | None, *, where: str, now: datetime | None = None) -> TrustEntry:
        """Trust ``card`` on its fingerprint, or as the countersigned successor of a trusted key."""
        existing = self._entries.get(card.key_id)
        if existing is not None and existing.status == REVOKED:
            raise RevokedKeyError(where, f"key {card.key_id[:16]} of lab {card.lab.id} was revoked; it cannot be trusted again")
        if fingerprint is not None and fingerprint != card.fingerprint:
            # Never name the card's own fingerprint: the partner must read it out, not the tool.
            raise FingerprintMismatchError(
                where, f"the fingerprint given does not match this card of lab {card.lab.id}; check it with the partner by phone"
            )
        if existing is not None:
            return existing
        predecessor = self._entries.get(card.predecessor) if card.predecessor else None
        if fingerprint is None:
            if predecessor is None:
                raise FingerprintMismatchError(where, "a new partner key needs --fingerprint, read out by the partner")
            if predecessor.status == REVOKED:
                raise RevokedKeyError(
                    where, f"predecessor key {predecessor.card.key_id[:16]} is revoked; trust the new card by fingerprint"
                )
        if predecessor is not None and predecessor.status != REVOKED:
            card.verify_successor_of(predecessor.card, where=where)
            self._entries[predecessor.card.key_id] = _replace(predecessor, status=SUPERSEDED, superseded_by=card.key_id)
        entry = TrustEntry(card, TRUSTED, format_time(now or now_utc()), "fingerprint" if fingerprint else "successor")
        self._entries[card.key_id] = entry
        self._save()
        return entry

    def revoke(self, revocation: Revocation, *, where: str) -> TrustEntry:
        """Record a partner's signed revocation of one of its keys."""
        entry = self._entries.get(revocation.key_id)
        if entry is None:
            raise UntrustedSenderError(where, f"revocation for key {revocation.key_id[:16]}, which is not in the trust store")
        revocation.verify(entry.card, where=where)
        revoked = _replace(entry, status=REVOKED, revocation=revocation)
        self._entries[entry.card.key_id] = revoked
        self._save()
        return revoked

    def recipient(self, lab_id: str, *, where: str) -> KeyCard:
        """The key to encrypt to: the lab's newest trusted (not superseded, not revoked) card."""
        current = [e for e in self._entries.values() if e.card.lab.id == lab_id and e.status == TRUSTED]
        if not current:
            known = {e.status for e in self._entries.values() if e.card.lab.id == lab_id}
            detail = (
                f"its keys are {', '.join(sorted(known))}" if known else "it is not in the trust store (keys trust CARD --fingerprint FP)"
            )
            raise UntrustedRecipientError(where, f"cannot send to lab {lab_id}: {detail}")
        return max(current, key=lambda e: e.card.body["created"]).card

    def sender(self, key_id: str, *, where: str) -> KeyCard:
        """The card of a bundle's signer; superseded keys still verify, revoked keys never do."""
        entry = self._entries.get(key_id)
        if entry is None:
            raise UntrustedSenderError(where, f"sender key {key_id[:16]} is not in the trust store")
        if entry.status == REVOKED:
            raise RevokedKeyError(
                where,
                f"sender key {key_id[:16]} of lab {entry.card.lab.id} was revoked at {entry.revocation.body['revoked_at']}"
                if entry.revocation
                else f"sender key {key_id[:16]} was revoked",
            )
        return entry.card

    def lab_of(self, key_id: str) -> str | None:
        entry = self._entries.get(key_id)
        return entry.card.lab.id if entry else None

    def _save(self) -> None:
        ensure_private_dir(self.path.parent)
        doc = {"version": 1, "keys": {k: e.stored() for k, e in sorted(self._entries.items())}}
        write_atomic(self.path, json.dumps(doc, indent=2, sort_keys=True).encode("ascii") + b"\n")


def _replace(entry: TrustEntry, **changes: Any) -> TrustEntry:
    fields = {**entry.__dict__, **changes}
    return TrustEntry(**fields)


def load_trust_document(path: Path) -> KeyCard | Revocation:
    """Read a file given to ``keys trust``: a key card or a revocation."""
    doc = read_document(path)
    kind = document_type(doc)
    if kind == CARD_TYPE:
        return KeyCard.from_dict(doc, where=str(path))
    if kind == REVOCATION_TYPE:
        return Revocation.from_dict(doc, where=str(path))
    raise MalformedCardError(path, "neither a key card nor a revocation")
