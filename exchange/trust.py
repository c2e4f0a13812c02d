"""The partners a lab trusts: their key cards, successions and revocations.

Trusting is always an explicit act: a new key is accepted only with its full fingerprint,
read out by the partner over an independent channel; a successor card is accepted without
one only when the currently trusted key countersigned it (``keys rotate``). A key that was
already succeeded cannot vouch for a second successor: that is a fork (someone ran ``keys
rotate`` on a copy of the old key), refused without a fingerprint. The key trusted last is the
lab's one current key; every other key of the lab becomes ``superseded``, whose bundles still
import for :data:`exchange.policy.KEY_GRACE` after this lab learnt of the successor. A revoked
key (the partner's signed word) and a distrusted one (this lab's decision, ``keys distrust``)
are never accepted as sender or recipient. The store is one JSON file,
``<home>/trust/partners.json``, rewritten atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ballistics.clock import format_time, now_utc
from ballistics.errors import UsageError
from exchange.canonical import parse_time
from exchange.card import CARD_TYPE, REVOCATION_TYPE, KeyCard, Revocation, document_type, format_fingerprint, read_document
from exchange.errors import (
    FingerprintMismatchError,
    KeyValidityError,
    MalformedCardError,
    RevokedKeyError,
    SuccessionConflictError,
    TrustStoreError,
    UntrustedRecipientError,
    UntrustedSenderError,
)
from exchange.files import ensure_private_dir, write_atomic
from exchange.policy import KEY_GRACE

TRUSTED, SUPERSEDED, REVOKED, DISTRUSTED = "trusted", "superseded", "revoked", "distrusted"
STATUSES = (TRUSTED, SUPERSEDED, REVOKED, DISTRUSTED)


@dataclass(frozen=True)
class TrustEntry:
    card: KeyCard
    status: str
    trusted_at: str
    via: str
    superseded_by: str | None = None
    revocation: Revocation | None = None
    #: When this lab trusted the key that superseded this one (the start of the grace period).
    superseded_at: str | None = None
    #: ``{"at": time, "reason": text}`` once this lab distrusted the key (``keys distrust``).
    distrust: dict[str, str] | None = None

    def stored(self) -> dict[str, Any]:
        """The entry as ``partners.json`` keeps it (the card and revocation in full)."""
        return {
            "card": self.card.to_dict(),
            "status": self.status,
            "trusted_at": self.trusted_at,
            "via": self.via,
            "superseded_by": self.superseded_by,
            "superseded_at": self.superseded_at,
            "revocation": self.revocation.to_dict() if self.revocation else None,
            "distrust": self.distrust,
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
            "superseded_at": self.superseded_at,
            "revoked_at": self.revocation.body["revoked_at"] if self.revocation else None,
            "distrusted_at": self.distrust["at"] if self.distrust else None,
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
                if item["status"] not in STATUSES:
                    raise TrustStoreError(path, f"entry {key_id[:16]} has an unknown status")
                entries[key_id] = TrustEntry(
                    card,
                    item["status"],
                    item["trusted_at"],
                    item["via"],
                    item["superseded_by"],
                    revocation,
                    item.get("superseded_at"),
                    item.get("distrust"),
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TrustStoreError(path, f"unreadable trust store: {type(exc).__name__}: {exc}") from None
        return cls(path, entries)

    def entries(self) -> list[TrustEntry]:
        return sorted(self._entries.values(), key=lambda e: (e.card.lab.id, e.card.body["created"]))

    def get(self, key_id: str) -> TrustEntry | None:
        return self._entries.get(key_id)

    def trust(self, card: KeyCard, fingerprint: bytes | None, *, where: str, now: datetime | None = None) -> TrustEntry:
        """Trust ``card`` on its fingerprint, or as the countersigned successor of the lab's current key.

        The card becomes its lab's one current key: every other trusted key of the lab is
        marked superseded. Without a fingerprint, the predecessor must be the trusted current
        key: a superseded one has vouched for a successor already, so a second successor is a
        fork (:class:`SuccessionConflictError`); see :meth:`siblings` for the warning a caller
        gives when a fork is resolved by fingerprint.
        """
        existing = self._entries.get(card.key_id)
        if existing is not None and existing.status == REVOKED:
            raise RevokedKeyError(where, f"key {card.key_id[:16]} of lab {card.lab.id} was revoked; it cannot be trusted again")
        if fingerprint is not None and fingerprint != card.fingerprint:
            # Never name the card's own fingerprint: the partner must read it out, not the tool.
            raise FingerprintMismatchError(
                where, f"the fingerprint given does not match this card of lab {card.lab.id}; check it with the partner by phone"
            )
        if existing is not None and existing.status == DISTRUSTED and fingerprint is None:
            raise UntrustedSenderError(
                where, f"key {card.key_id[:16]} of lab {card.lab.id} was distrusted; trust it again only with --fingerprint"
            )
        if existing is not None and existing.status != DISTRUSTED:
            return existing
        predecessor = self._entries.get(card.predecessor) if card.predecessor else None
        if fingerprint is None:
            self._check_successor(card, predecessor, where)
        elif predecessor is not None and predecessor.status in (TRUSTED, SUPERSEDED):
            card.verify_successor_of(predecessor.card, where=where)
        moment = format_time(now or now_utc())
        for other in list(self._entries.values()):
            if other.card.lab.id == card.lab.id and other.status == TRUSTED:
                self._entries[other.card.key_id] = _replace(other, status=SUPERSEDED, superseded_by=card.key_id, superseded_at=moment)
        entry = TrustEntry(card, TRUSTED, moment, "fingerprint" if fingerprint else "successor")
        self._entries[card.key_id] = entry
        self._save()
        return entry

    def _check_successor(self, card: KeyCard, predecessor: TrustEntry | None, where: str) -> None:
        """A card without a fingerprint: the lab's current key must have countersigned it."""
        if predecessor is None:
            raise FingerprintMismatchError(where, "a new partner key needs --fingerprint, read out by the partner")
        old = predecessor.card.key_id[:16]
        if predecessor.status == REVOKED:
            raise RevokedKeyError(where, f"predecessor key {old} is revoked; trust the new card by fingerprint")
        if predecessor.status == DISTRUSTED:
            raise UntrustedSenderError(where, f"predecessor key {old} was distrusted; trust the new card by fingerprint")
        if predecessor.status == SUPERSEDED:
            raise SuccessionConflictError(
                where,
                f"key {old} of lab {card.lab.id} was already succeeded by {str(predecessor.superseded_by)[:16]}: "
                f"a second successor {card.key_id[:16]} is a fork (a copy of the old key at work?). "
                "Read its fingerprint with the lab by phone and trust it with --fingerprint; distrust the key that is not theirs",
            )
        card.verify_successor_of(predecessor.card, where=where)

    def siblings(self, card: KeyCard) -> list[TrustEntry]:
        """Other trusted-or-superseded keys naming the same predecessor: the other branches of a fork."""
        if card.predecessor is None:
            return []
        return [
            e
            for e in self.entries()
            if e.card.predecessor == card.predecessor and e.card.key_id != card.key_id and e.status in (TRUSTED, SUPERSEDED)
        ]

    def distrust(self, key_id: str, reason: str, *, where: str, now: datetime | None = None) -> TrustEntry:
        """Stop trusting a key on this lab's own decision: never sender, recipient or vouching predecessor again."""
        entry = self._entries.get(key_id)
        if entry is None:
            raise UsageError(where, f"no key {key_id[:16]} in the trust store (keys list shows them)")
        if entry.status in (REVOKED, DISTRUSTED):
            raise UsageError(where, f"key {key_id[:16]} of lab {entry.card.lab.id} is already {entry.status}")
        distrusted = _replace(
            entry, status=DISTRUSTED, distrust={"at": format_time(now or now_utc()), "reason": " ".join(reason.split())[:500]}
        )
        self._entries[key_id] = distrusted
        self._save()
        return distrusted

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

    def sender(self, key_id: str, *, where: str, now: datetime | None = None) -> KeyCard:
        """The card of a bundle's signer; revoked and distrusted keys never verify.

        With ``now`` (the time of import), a superseded key verifies only until
        :data:`~exchange.policy.KEY_GRACE` after this lab trusted its successor: the bundle's own
        creation time is the sender's word, and a copy of an old key can backdate.
        """
        entry = self._entries.get(key_id)
        if entry is None:
            raise UntrustedSenderError(where, f"sender key {key_id[:16]} is not in the trust store")
        lab = entry.card.lab.id
        if entry.status == REVOKED:
            raise RevokedKeyError(
                where,
                f"sender key {key_id[:16]} of lab {lab} was revoked at {entry.revocation.body['revoked_at']}"
                if entry.revocation
                else f"sender key {key_id[:16]} was revoked",
            )
        if entry.status == DISTRUSTED:
            at = entry.distrust["at"] if entry.distrust else "?"
            raise UntrustedSenderError(where, f"sender key {key_id[:16]} of lab {lab} was distrusted by this lab at {at}")
        if entry.status == SUPERSEDED and now is not None:
            since = self._superseded_since(entry)
            if since is None or now > since + KEY_GRACE:
                raise KeyValidityError(
                    where,
                    f"sender key {key_id[:16]} of lab {lab} was superseded by {str(entry.superseded_by)[:16]}"
                    f"{f' at {format_time(since)}' if since else ''}; its bundles import for {KEY_GRACE.days} days after that, "
                    f"not at {format_time(now)}",
                )
        return entry.card

    def _superseded_since(self, entry: TrustEntry) -> datetime | None:
        """When this lab learnt of the successor (stores written before that was kept: the successor's trust time)."""
        if entry.superseded_at is not None:
            return parse_time(entry.superseded_at, where=str(self.path))
        successor = self._entries.get(entry.superseded_by) if entry.superseded_by else None
        return parse_time(successor.trusted_at, where=str(self.path)) if successor else None

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
