"""Shared helpers for the exchange tests: labs with real keys in real homes on disk.

Scrypt runs at a low cost here so that the suite stays fast; the stored parameters make
loading use the same cost, exactly as it would with the production default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ballistics.labs import Lab
from exchange.keys import Identity, IdentityParameters, KeyProtection, init_identity, load_identity
from exchange.trust import TrustStore

PASSPHRASE = b"correct horse battery staple"
FAST = IdentityParameters(protection=KeyProtection(n=2**10, r=8, p=1))
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
