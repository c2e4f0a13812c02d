"""Detached signatures of court reports: the lab's hybrid signature over a report's SHA-256.

A report (``ballistics report --sign``) gets a file beside it, ``REPORT.sig`` (JSON, ASCII)::

    {"type": "ballistics-report-signature", "version": 1,
     "body": {"report": {"name": "report.html", "sha256": "<hex>"},
              "record": {"id": "<record id>", "sha256": "<hex of the record's stored form>"},
              "signer": {"lab": {"id": ..., "name": ..., "country": ...}, "key_id": "<hex>"},
              "signed_at": "YYYY-MM-DDTHH:MM:SSZ"},
     "signature": {"ed25519": "<base64>", "ml_dsa_65": "<base64>"}}

The signature is the bundles' hybrid one (Ed25519 and ML-DSA-65, both must verify) over the
domain string ``ballistics report signature v1``, a NUL byte and the canonical JSON of ``body``.
:func:`verify_report` accepts a signer whose key is this lab's own (current, or retired by
rotation) or a partner's card in the trust store that is neither revoked nor distrusted, valid at
the time of signing, and then requires the report's bytes to hash to the signed SHA-256: one
changed byte and the report is refused (exit 4).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ballistics.clock import format_time, now_utc
from ballistics.labs import Lab
from exchange.canonical import canonical_json, parse_json, parse_time
from exchange.card import KeyCard, format_fingerprint
from exchange.errors import BadSignatureError, MalformedError, TamperedError
from exchange.keys import Identity, own_cards
from exchange.signing import HybridSignature
from exchange.trust import TrustStore

SIGNATURE_TYPE = "ballistics-report-signature"
DOMAIN_REPORT = b"ballistics report signature v1"
#: A signature file is small; a larger one is refused before it is parsed.
MAX_SIGNATURE_BYTES = 64 * 1024


class MalformedReportSignatureError(MalformedError):
    """A report signature file that is not one (exit 3)."""


@dataclass(frozen=True)
class ReportVerification:
    """Who signed a report and when, once everything checked."""

    lab: Lab
    key_id: str
    fingerprint: str
    signed_at: str
    record_id: str
    report_sha256: str
    #: "this lab's own key" or "a trusted partner card".
    via: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab.to_dict(),
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "signed_at": self.signed_at,
            "record_id": self.record_id,
            "report_sha256": self.report_sha256,
            "via": self.via,
        }


def signature_path(report: Path) -> Path:
    """Where the detached signature of ``report`` goes by default: ``report.html.sig``."""
    return report.with_name(report.name + ".sig")


def sign_report(identity: Identity, report: bytes, *, name: str, record_id: str, record_sha256: str, now: datetime | None = None) -> bytes:
    """The signature file (bytes) of ``report``, signed with the lab's current key."""
    identity.require_usable(name)
    card = identity.card
    body = {
        "report": {"name": name, "sha256": hashlib.sha256(report).hexdigest()},
        "record": {"id": record_id, "sha256": record_sha256},
        "signer": {"lab": card.lab.to_dict(), "key_id": card.key_id},
        "signed_at": format_time(now or now_utc()),
    }
    signature = identity.signing.sign(DOMAIN_REPORT, canonical_json(body))
    document = {"type": SIGNATURE_TYPE, "version": 1, "body": body, "signature": signature.to_dict()}
    return json.dumps(document, indent=2, sort_keys=True).encode("ascii") + b"\n"


def _parse(data: bytes, where: str) -> tuple[dict[str, Any], HybridSignature]:
    error = MalformedReportSignatureError
    if len(data) > MAX_SIGNATURE_BYTES:
        raise error(where, f"larger than {MAX_SIGNATURE_BYTES} bytes: not a report signature")
    doc = parse_json(data, where=where, what="report signature", error=error)
    if (
        not isinstance(doc, dict)
        or doc.get("type") != SIGNATURE_TYPE
        or doc.get("version") != 1
        or set(doc) != {"type", "version", "body", "signature"}
    ):
        raise error(where, f"not a version-1 {SIGNATURE_TYPE} document")
    body = doc["body"]
    try:
        shape_ok = (
            set(body) == {"report", "record", "signer", "signed_at"}
            and set(body["report"]) == {"name", "sha256"}
            and set(body["record"]) == {"id", "sha256"}
            and set(body["signer"]) == {"lab", "key_id"}
            and all(
                isinstance(v, str)
                for v in (
                    body["report"]["name"],
                    body["report"]["sha256"],
                    body["record"]["id"],
                    body["record"]["sha256"],
                    body["signer"]["key_id"],
                )
            )
        )
    except TypeError:
        shape_ok = False
    if not shape_ok:
        raise error(where, "the signed body must hold report {name, sha256}, record {id, sha256}, signer {lab, key_id} and signed_at")
    parse_time(body["signed_at"], where=where, error=error)
    return body, HybridSignature.from_dict(doc["signature"], where=where, error=error)


def _signer_card(home: Path, key_id: str, where: str) -> tuple[KeyCard, str]:
    own = {card.key_id: card for card in own_cards(home)}
    if key_id in own:
        return own[key_id], "this lab's own key"
    return TrustStore.open(home).sender(key_id, where=where), "a trusted partner card"


def verify_report(home: Path, report_sha256: str, signature: bytes, *, where: str) -> ReportVerification:
    """Check a report (by its SHA-256) against its detached signature; a security error (exit 4) unless it came unaltered from a trusted lab."""
    body, hybrid = _parse(signature, where)
    key_id = body["signer"]["key_id"]
    card, via = _signer_card(home, key_id, where)
    card.verify_key.verify(DOMAIN_REPORT, canonical_json(body), hybrid, where=where, what="report signature")
    if body["signer"]["lab"] != card.lab.to_dict():
        raise BadSignatureError(where, f"the signature names lab {body['signer']['lab']!r}, its key belongs to {card.lab.id}")
    card.check_valid(parse_time(body["signed_at"], where=where), where=where)
    if report_sha256 != body["report"]["sha256"]:
        raise TamperedError(
            where,
            f"the report's SHA-256 is {report_sha256}, the signed one {body['report']['sha256']}: the report was altered after signing",
        )
    return ReportVerification(
        lab=card.lab,
        key_id=key_id,
        fingerprint=format_fingerprint(card.fingerprint),
        signed_at=body["signed_at"],
        record_id=body["record"]["id"],
        report_sha256=report_sha256,
        via=via,
    )
