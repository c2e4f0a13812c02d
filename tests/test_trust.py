"""Partner trust: explicit fingerprints, countersigned successors, revocations, persistence."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from exchange_support import FAST, PASSPHRASE, T0, make_lab

from exchange.card import sign_card
from exchange.errors import (
    BadSignatureError,
    FingerprintMismatchError,
    RevokedKeyError,
    TrustStoreError,
    UntrustedRecipientError,
    UntrustedSenderError,
)
from exchange.keys import revoke_identity, rotate_identity
from exchange.trust import REVOKED, SUPERSEDED, TRUSTED, TrustStore


def test_trust_requires_the_exact_fingerprint(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    store = uk.trust
    wrong = bytes(32)
    with pytest.raises(FingerprintMismatchError, match="does not match") as caught:
        store.trust(fr.identity.card, wrong, where="fr.card")
    # the refusal must not hand over the right answer: that would defeat reading it over the phone
    message = str(caught.value).upper().replace(" ", "")
    assert fr.identity.card.key_id.upper() not in message and fr.identity.card.key_id.upper()[:8] not in message
    with pytest.raises(FingerprintMismatchError, match="needs --fingerprint"):
        store.trust(fr.identity.card, None, where="fr.card")
    assert not (uk.home / "trust" / "partners.json").exists()
    store.trust(fr.identity.card, fr.identity.card.fingerprint, where="fr.card", now=T0)
    reopened = TrustStore.open(uk.home)
    assert reopened.recipient("FR-IRCGN", where="x").key_id == fr.identity.card.key_id
    assert reopened.sender(fr.identity.card.key_id, where="x").lab.id == "FR-IRCGN"
    assert stat.S_IMODE((uk.home / "trust" / "partners.json").stat().st_mode) == 0o600


def test_unknown_labs_and_keys_are_refused(tmp_path: Path) -> None:
    uk = make_lab(tmp_path, "UK-FSL")
    with pytest.raises(UntrustedRecipientError, match="not in the trust store"):
        uk.trust.recipient("FR-IRCGN", where="x")
    with pytest.raises(UntrustedSenderError, match="not in the trust store"):
        uk.trust.sender("ab" * 32, where="x")


def test_successor_is_accepted_only_when_countersigned(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    uk.trust.trust(fr.identity.card, fr.identity.card.fingerprint, where="fr.card", now=T0)
    old_id = fr.identity.card.key_id
    new = rotate_identity(fr.home, PASSPHRASE, now=T0, parameters=FAST)
    store = uk.trust
    store.trust(new.card, None, where="fr2.card", now=T0)
    assert store.get(old_id).status == SUPERSEDED and store.get(new.card.key_id).status == TRUSTED
    assert store.recipient("FR-IRCGN", where="x").key_id == new.card.key_id
    assert store.sender(old_id, where="x").key_id == old_id  # bundles in flight still verify

    # an impostor's card naming the trusted key as predecessor, without its countersignature
    impostor = make_lab(tmp_path / "evil", "FR-IRCGN", "FR")
    forged = rotate_identity(impostor.home, PASSPHRASE, now=T0, parameters=FAST).card
    forged_body = dict(forged.body, predecessor=new.card.key_id)
    card = sign_card(forged_body, impostor.reload().signing, impostor.identity.signing, where="forged")
    with pytest.raises(BadSignatureError, match="successor card"):
        store.trust(card, None, where="forged.card")


def test_revocation_import_blocks_sender_and_recipient_for_good(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    card = fr.identity.card
    uk.trust.trust(card, card.fingerprint, where="fr.card", now=T0)
    revocation = revoke_identity(fr.home, PASSPHRASE, "compromised", now=T0)
    store = uk.trust
    assert store.revoke(revocation, where="fr.rev").status == REVOKED
    store = TrustStore.open(uk.home)
    with pytest.raises(RevokedKeyError, match="revoked at"):
        store.sender(card.key_id, where="bundle")
    with pytest.raises(UntrustedRecipientError, match="revoked"):
        store.recipient("FR-IRCGN", where="x")
    with pytest.raises(RevokedKeyError, match="cannot be trusted again"):
        store.trust(card, card.fingerprint, where="fr.card")


def test_revocation_for_an_unknown_key_is_refused(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    revocation = revoke_identity(fr.home, PASSPHRASE, "compromised", now=T0)
    with pytest.raises(UntrustedSenderError, match="not in the trust store"):
        uk.trust.revoke(revocation, where="fr.rev")


def test_corrupt_trust_store_is_reported(tmp_path: Path) -> None:
    uk = make_lab(tmp_path, "UK-FSL")
    path = uk.home / "trust" / "partners.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "keys": {"x": {}}}')
    with pytest.raises(TrustStoreError, match="unreadable trust store"):
        TrustStore.open(uk.home)
