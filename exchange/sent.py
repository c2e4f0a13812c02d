"""What this lab sent: the register a delivery receipt is matched against.

``bundle export`` (:func:`exchange.bundle.export_bundle`) keeps, for every bundle it writes,
``<home>/exchange/sent/<bundle id>.json``: the signed manifest exactly as it went out (bundle
id, header hash, sequence, recipients, every file's name, size and SHA-256) and the lab's own
signature over it. Someone with write access to the home cannot add or change an entry without
the lab's signing key, so a receipt that matches an entry confirms a bundle this lab really sent.
:func:`match_receipt` compares a partner's receipt with it and names every difference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ballistics.json_input import load_json
from ballistics.ledger import DeliveryReceipt
from exchange.canonical import b64decode, b64encode
from exchange.errors import BadSignatureError, MalformedError, ReceiptMismatchError
from exchange.files import ensure_private_dir, write_atomic
from exchange.keys import Identity
from exchange.manifest import DOMAIN_MANIFEST, Manifest, parse_manifest
from exchange.signing import HybridSignature

SENT_TYPE = "ballistics-sent-bundle"


def sent_dir(home: Path) -> Path:
    return Path(home) / "exchange" / "sent"


def record_sent(home: Path, manifest: Manifest, signature: HybridSignature) -> Path:
    """Keep the signed manifest of a bundle just written."""
    doc = {"type": SENT_TYPE, "version": 1, "manifest": b64encode(manifest.encoded), "signature": signature.to_dict()}
    ensure_private_dir(sent_dir(home))
    return write_atomic(sent_dir(home) / f"{manifest.bundle_id}.json", json.dumps(doc, sort_keys=True).encode("ascii") + b"\n")


def sent_manifest(identity: Identity, bundle_id: str, where: str) -> Manifest | None:
    """The manifest of bundle ``bundle_id`` as this lab sent it, checked against its own keys; None if never sent."""
    if identity.home is None or not re.fullmatch(r"[0-9a-f]{32}", bundle_id):
        return None
    path = sent_dir(identity.home) / f"{bundle_id}.json"
    try:
        doc = load_json(path.read_bytes().decode("utf-8"), floats=False)
        manifest = parse_manifest(b64decode(doc["manifest"], where=str(path)), str(path))
        signature = HybridSignature.from_dict(doc["signature"], where=str(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, MalformedError) as exc:
        raise ReceiptMismatchError(where, f"the record of sent bundle {bundle_id} ({path}) is unreadable: {exc}") from None
    own = {card.key_id: card for card in (identity.card, *(card for card, _ in identity.retired))}
    card = own.get(manifest.sender.key_id)
    try:
        if card is None or manifest.bundle_id != bundle_id:
            raise BadSignatureError(str(path), "not signed by one of this lab's keys")
        card.verify_key.verify(DOMAIN_MANIFEST, manifest.encoded, signature, where=str(path), what="sent manifest")
    except BadSignatureError as exc:
        raise ReceiptMismatchError(where, f"the record of sent bundle {bundle_id} was altered: {exc.reason}") from None
    return manifest


def match_receipt(receipt: DeliveryReceipt, identity: Identity, where: str) -> Manifest:
    """The sent manifest ``receipt`` confirms; :class:`ReceiptMismatchError` (exit 4) naming every difference.

    The receipt must confirm a bundle this lab sent, come from a lab it was addressed to, and
    repeat its header hash, sequence number and files (name, SHA-256 and size) exactly.
    """
    sent = sent_manifest(identity, receipt.bundle_id, where)
    if sent is None:
        raise ReceiptMismatchError(where, f"receipt for bundle {receipt.bundle_id}, which this lab never sent")
    wrong = []
    if receipt.recipient.lab not in {r.lab for r in sent.recipients}:
        wrong.append(f"lab {receipt.recipient.lab} was not a recipient (sent to {', '.join(sorted({r.lab for r in sent.recipients}))})")
    if receipt.header_hash != sent.header_hash:
        wrong.append(f"header hash {receipt.header_hash[:16]} is not the one sent ({sent.header_hash[:16]})")
    if receipt.sequence != sent.sequence:
        wrong.append(f"sequence {receipt.sequence} is not the one sent ({sent.sequence})")
    if receipt.sender.key_id != sent.sender.key_id:
        wrong.append(f"sender key {receipt.sender.key_id[:16]} is not the one that signed it ({sent.sender.key_id[:16]})")
    confirmed = {f.name: (f.sha256, f.size) for f in receipt.files}
    for entry in sent.files:
        got = confirmed.pop(entry.name, None)
        if got is None:
            wrong.append(f"{entry.name} is not confirmed")
        elif got != (entry.sha256, entry.size):
            wrong.append(
                f"{entry.name} is confirmed with SHA-256 {got[0][:16]} and {got[1]} bytes, not {entry.sha256[:16]} and {entry.size}"
            )
    wrong += [f"{name} was never sent" for name in sorted(confirmed)]
    if wrong:
        raise ReceiptMismatchError(where, f"receipt for bundle {receipt.bundle_id} does not match what this lab sent: {'; '.join(wrong)}")
    return sent
