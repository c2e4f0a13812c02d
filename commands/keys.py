"""``keys``: the lab's identity and its partners (exchange/keys.py, exchange/trust.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from commands.common import JsonOpt, add_row, audit, audit_refusal, emit_json, note, passphrase, print_rows, print_table, state, table
from exchange import audit_events as events

if TYPE_CHECKING:
    from exchange.card import KeyCard

keys_app = typer.Typer(help="The lab's identity (signing and encryption keys) and its trusted partners.", no_args_is_help=True)


def card_rows(card: KeyCard) -> list[tuple[str, str]]:
    """A card's lab and validity (its fingerprint goes on a line of its own: :func:`card_fingerprint`)."""
    lab = card.lab
    return [
        ("lab", f"{lab.id} ({lab.name}, {lab.country})"),
        ("valid", f"{card.body['not_before']} .. {card.body['not_after']}"),
        ("predecessor", card.predecessor or "-"),
    ]


def card_fingerprint(card: KeyCard) -> list[tuple[str, str]]:
    """The fingerprint, as read out over the phone: one line, never folded."""
    from exchange.card import format_fingerprint

    return [("fingerprint", format_fingerprint(card.fingerprint))]


@keys_app.command("init")
def keys_init(
    lab: Annotated[str, typer.Option("--lab", help="Lab id, e.g. UK-FSL.")],
    name: Annotated[str, typer.Option("--name", help="Lab name.")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-2 country code, e.g. GB.")],
    validity_days: Annotated[int, typer.Option(min=1, max=1826, help="Card validity in days (at most five years).")] = 730,
) -> None:
    """Create the lab's identity: Ed25519 + ML-DSA-65 signing keys, ML-KEM-768 + X25519 encryption keys."""
    from ballistics.labs import Lab
    from exchange.keys import IdentityParameters, init_identity

    identity = init_identity(
        state.home, Lab(lab, name, country), passphrase(confirm=True), parameters=IdentityParameters(validity=timedelta(days=validity_days))
    )
    audit((events.KEY_INIT, {"lab": lab, "key_id": identity.card.key_id}), identity=identity)
    print_rows("new identity", card_rows(identity.card), whole=card_fingerprint(identity.card))


@keys_app.command("export")
def keys_export(output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the public key card.")]) -> None:
    """Write the lab's public key card, to send to partners (they check its fingerprint with you)."""
    from exchange.files import write_atomic
    from exchange.keys import load_card

    card = load_card(state.home)
    write_atomic(output, card.to_bytes(), mode=0o644)
    note(f"wrote {output}")
    print_rows("exported card", card_rows(card), whole=card_fingerprint(card))


@keys_app.command("fingerprint")
def keys_fingerprint(card_file: Annotated[Path | None, typer.Argument(help="A key card [default: this lab's].")] = None) -> None:
    """Print a card's SHA-256 fingerprint in groups of four, for reading over the phone."""
    from exchange.card import KeyCard, format_fingerprint, read_document
    from exchange.keys import load_card

    card = load_card(state.home) if card_file is None else KeyCard.from_dict(read_document(card_file), where=str(card_file))
    print(format_fingerprint(card.fingerprint))


@keys_app.command("trust")
def keys_trust(
    document: Annotated[Path, typer.Argument(help="A partner's key card, successor card or revocation.")],
    fingerprint: Annotated[str | None, typer.Option(help="The card's fingerprint as read out by the partner.")] = None,
) -> None:
    """Trust a partner's card (needs --fingerprint unless it is a countersigned successor) or import a revocation."""
    from exchange.card import Revocation, parse_fingerprint
    from exchange.trust import TrustStore, load_trust_document

    item = load_trust_document(document)
    store = TrustStore.open(state.home)
    if isinstance(item, Revocation):
        with audit_refusal(events.TRUST_REFUSED, {"document": str(document), "key_id": item.key_id}):
            entry = store.revoke(item, where=str(document))
        audit(
            (
                events.TRUST_REVOKED,
                {
                    "lab": entry.card.lab.id,
                    "key_id": entry.card.key_id,
                    "revoked_at": item.body["revoked_at"],
                    "reason": item.body["reason"],
                },
            )
        )
        note(f"recorded revocation of key {entry.card.key_id} of lab {entry.card.lab.id}")
        return
    with audit_refusal(events.TRUST_REFUSED, {"document": str(document), "lab": item.lab.id, "key_id": item.key_id}):
        expected = parse_fingerprint(fingerprint, where=str(document)) if fingerprint is not None else None
        entry = store.trust(item, expected, where=str(document))
    forks = store.siblings(entry.card)
    added = {"lab": entry.card.lab.id, "key_id": entry.card.key_id, "via": entry.via, "predecessor": entry.card.predecessor}
    audit((events.TRUST_ADDED, {**added, "forks": [e.card.key_id for e in forks]} if forks else added))
    for other in forks:
        note(
            f"WARNING: key {entry.card.predecessor} of lab {entry.card.lab.id} now has two successors: this card and "
            f"{other.card.key_id} (trusted {other.trusted_at} via {other.via}, now {other.status}). Someone may hold a copy "
            f"of the old key. If the lab did not make {other.card.key_id[:16]}, run: ballistics keys distrust {other.card.key_id}"
        )
    note(f"trusted lab {entry.card.lab.id} ({entry.via}); it is the lab's current key")
    print_rows("trusted card", card_rows(entry.card), whole=card_fingerprint(entry.card))


@keys_app.command("distrust")
def keys_distrust(
    key: Annotated[str, typer.Argument(help="The partner key's fingerprint or key id, as keys list shows it.")],
    reason: Annotated[str, typer.Option(help="Why this lab stops trusting the key (one line).")] = "distrusted by this lab",
) -> None:
    """Stop trusting a partner key on this lab's own decision (a fork, a suspected theft); audited.

    The key is refused from then on as sender and recipient, and cannot vouch for a successor;
    ``keys trust CARD --fingerprint FP`` trusts it again.
    """
    from exchange.card import parse_fingerprint
    from exchange.trust import TrustStore

    with audit_refusal(events.TRUST_REFUSED, {"key": key, "action": "distrust"}):
        key_id = parse_fingerprint(key, where="KEY").hex()
        entry = TrustStore.open(state.home).distrust(key_id, reason, where=key)
    audit((events.TRUST_DISTRUSTED, {"lab": entry.card.lab.id, "key_id": key_id, "reason": reason}))
    note(f"distrusted key {key_id} of lab {entry.card.lab.id}: its bundles are refused and nothing is encrypted to it")


@keys_app.command("list")
def keys_list(json_out: JsonOpt = False) -> None:
    """Show this lab's identity and every partner key with its status."""
    from exchange.card import format_fingerprint
    from exchange.errors import MissingIdentityError
    from exchange.keys import load_card
    from exchange.trust import TrustStore

    try:
        card = load_card(state.home)
        own = {
            "lab": card.lab.id,
            "name": card.lab.name,
            "country": card.lab.country,
            "key_id": card.key_id,
            "fingerprint": format_fingerprint(card.fingerprint),
            "not_after": card.body["not_after"],
            "revoked": (state.home / "keys" / "revocation.json").exists(),
        }
    except MissingIdentityError:
        own = None
    partners = [entry.to_dict() for entry in TrustStore.open(state.home).entries()]
    if json_out:
        emit_json({"identity": own, "partners": partners})
        return
    if own:
        identifiers = ("key_id", "fingerprint")
        print_rows("this lab", [(k, str(v)) for k, v in own.items() if k not in identifiers], whole=[(k, str(own[k])) for k in identifiers])
    listing = table(
        "partners",
        ("lab", "country", "status", "via", "fingerprint", "not_after"),
        keep=("lab", "country", "status"),
        fold=("fingerprint",),
    )
    for p in partners:
        add_row(listing, p["lab"], p["country"], p["status"], p["via"], p["fingerprint"], p["not_after"])
    print_table(listing)


@keys_app.command("rotate")
def keys_rotate(output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the new card here.")] = None) -> None:
    """Replace the keys: the new card is countersigned by the old keys, so partners accept it as successor."""
    from exchange.files import write_atomic
    from exchange.keys import rotate_identity

    identity = rotate_identity(state.home, passphrase())
    audit(
        (events.KEY_ROTATE, {"lab": identity.card.lab.id, "key_id": identity.card.key_id, "predecessor": identity.card.predecessor}),
        identity=identity,
    )
    if output is not None:
        write_atomic(output, identity.card.to_bytes(), mode=0o644)
        note(f"wrote {output}; partners import it with: ballistics keys trust {output.name}")
    print_rows("new identity", card_rows(identity.card), whole=card_fingerprint(identity.card))


@keys_app.command("revoke")
def keys_revoke(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the signed revocation.")],
    reason: Annotated[str, typer.Option(help="Why the key is revoked (one line).")] = "key withdrawn",
) -> None:
    """Revoke the current key; partners import the file with keys trust and refuse its later bundles."""
    from exchange.files import write_atomic
    from exchange.keys import revoke_identity

    revocation = revoke_identity(state.home, passphrase(), reason)
    audit(
        (events.KEY_REVOKE, {"lab": revocation.lab_id, "key_id": revocation.key_id, "reason": reason}),
        retire=f"identity key {revocation.key_id[:16]} revoked",
    )
    write_atomic(output, revocation.to_bytes(), mode=0o644)
    note(f"wrote {output}: key {revocation.key_id} revoked; partners import it with: ballistics keys trust {output.name}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
