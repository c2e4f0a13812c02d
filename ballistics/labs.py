"""Who made a record or owns an exhibit: the one lab type shared by the store, records and exchange.

A lab is known by its id (``UK-FSL``), its name and its ISO 3166 alpha-2 country. The checks a
key card applies to a lab (id characters, printable name, country code) belong to the exchange
layer (:func:`exchange.card.check_lab`); here a lab is a plain value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Lab id of a home without a lab identity (``keys init``) and without ``--lab``.
DEFAULT_LAB = "local"
#: ISO 3166 user-assigned code (CLDR's "unknown region"): the country of a lab known by id only.
UNKNOWN_COUNTRY = "ZZ"


@dataclass(frozen=True)
class Lab:
    id: str
    name: str
    country: str = UNKNOWN_COUNTRY

    def to_dict(self) -> dict[str, str]:
        """The ``{"id", "name", "country"}`` object of records, cards and manifests."""
        return {"id": self.id, "name": self.name, "country": self.country}

    @classmethod
    def from_dict(cls, doc: Mapping[str, str]) -> Lab:
        return cls(str(doc["id"]), str(doc["name"]), str(doc["country"]))


@dataclass(frozen=True)
class LabKey:
    """One key of a lab, as bundles, receipts and the ledger name a sender or recipient."""

    lab: str
    key_id: str  # lower-case hex SHA-256 of the lab's key card body

    def to_dict(self) -> dict[str, str]:
        return {"lab": self.lab, "key_id": self.key_id}

    @classmethod
    def from_dict(cls, doc: Mapping[str, str]) -> LabKey:
        return cls(str(doc["lab"]), str(doc["key_id"]))
