"""Partner trust: explicit fingerprints, countersigned successors, revocations, persistence."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from exchange_support import FAST, PASSPHRASE, T0, introduce, make_lab
from test_records import a_record

import cli
from ballistics.records import write_record
from exchange.audit import AuditLog
from exchange.bundle import export_bundle
from exchange.card import sign_card
from exchange.errors import (
    BadSignatureError,
    FingerprintMismatchError,
    NotARecipientError,
    RevokedKeyError,
    SuccessionConflictError,
    TrustStoreError,
    UntrustedRecipientError,
    UntrustedSenderError,
)
from exchange.keys import load_identity, revoke_identity, rotate_identity
from exchange.reader import open_bundle
from exchange.trust import DISTRUSTED, REVOKED, SUPERSEDED, TRUSTED, TrustStore


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


def test_a_copy_of_a_superseded_key_cannot_fork_the_succession(tmp_path: Path) -> None:
    """FR rotates K1 -> K2; someone holding a backup of FR's home (K1) rotates there to K3: UK refuses K3 without a fingerprint."""
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    introduce(uk, fr)
    backup = tmp_path / "backup-of-fr"
    shutil.copytree(fr.home, backup)
    k2 = rotate_identity(fr.home, PASSPHRASE, now=T0, parameters=FAST)
    uk.trust.trust(k2.card, None, where="k2.card", now=T0)
    k3 = rotate_identity(backup, PASSPHRASE, now=T0, parameters=FAST)  # the thief's successor of K1
    store = uk.trust
    with pytest.raises(SuccessionConflictError, match=r"already succeeded by .* a fork"):
        store.trust(k3.card, None, where="k3.card", now=T0)
    store = TrustStore.open(uk.home)
    assert store.get(k3.card.key_id) is None and store.recipient("FR-IRCGN", where="x").key_id == k2.card.key_id
    # UK's exports still go to the real FR, and the thief cannot open them
    record = write_record(a_record(), tmp_path / "r.json")
    bundle = tmp_path / "to-fr.bfx"
    export_bundle(uk.home, uk.identity, store, bundle, recipients=["FR-IRCGN"], records=[record], now=T0)
    assert open_bundle(bundle, fr.reload(), fr.trust, now=T0).manifest.recipients[0].key_id == k2.card.key_id
    thief = load_identity(backup, PASSPHRASE)
    with pytest.raises(NotARecipientError):
        open_bundle(bundle, thief, TrustStore.open(backup), now=T0)


def test_a_fork_resolved_by_fingerprint_makes_one_current_key_and_names_the_other(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    uk.trust.trust(fr.identity.card, fr.identity.card.fingerprint, where="fr.card", now=T0)
    shutil.copytree(fr.home, tmp_path / "copy")
    thief = rotate_identity(tmp_path / "copy", PASSPHRASE, now=T0, parameters=FAST).card
    store = uk.trust
    store.trust(thief, None, where="k3.card", now=T0)  # arrived first: nothing to tell it apart yet
    real = rotate_identity(fr.home, PASSPHRASE, now=T0, parameters=FAST).card
    with pytest.raises(SuccessionConflictError, match="a fork"):
        store.trust(real, None, where="k2.card", now=T0)
    entry = store.trust(real, real.fingerprint, where="k2.card", now=T0)  # read out by FR on the phone
    assert entry.status == TRUSTED and [e.card.key_id for e in store.siblings(real)] == [thief.key_id]
    assert store.get(thief.key_id).status == SUPERSEDED and store.recipient("FR-IRCGN", where="x").key_id == real.key_id
    distrusted = store.distrust(thief.key_id, "fork: not made by FR", where="cli", now=T0)
    assert distrusted.status == DISTRUSTED and distrusted.distrust == {"at": "2026-01-15T09:30:00Z", "reason": "fork: not made by FR"}
    store = TrustStore.open(uk.home)
    with pytest.raises(UntrustedSenderError, match="distrusted by this lab"):
        store.sender(thief.key_id, where="bundle")
    with pytest.raises(UntrustedSenderError, match="distrusted; trust it again only with --fingerprint"):
        store.trust(thief, None, where="k3.card")
    assert store.siblings(real) == []  # a distrusted branch is no longer a live fork


def test_keys_distrust_and_a_fork_warning_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    uk.trust.trust(fr.identity.card, fr.identity.card.fingerprint, where="fr.card", now=T0)
    shutil.copytree(fr.home, tmp_path / "copy")
    real = rotate_identity(fr.home, PASSPHRASE, now=T0, parameters=FAST).card
    thief = rotate_identity(tmp_path / "copy", PASSPHRASE, now=T0, parameters=FAST).card
    (tmp_path / "k2.card").write_bytes(real.to_bytes())
    (tmp_path / "k3.card").write_bytes(thief.to_bytes())
    home = ["--home", str(uk.home)]
    assert cli.main([*home, "keys", "trust", str(tmp_path / "k2.card")]) == 0
    capsys.readouterr()
    assert cli.main([*home, "keys", "trust", str(tmp_path / "k3.card")]) == 4
    assert "a fork" in capsys.readouterr().err
    assert cli.main([*home, "keys", "trust", str(tmp_path / "k3.card"), "--fingerprint", thief.key_id]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and f"keys distrust {real.key_id}" in err
    assert cli.main([*home, "keys", "distrust", real.key_id, "--reason", "not read out by FR"]) == 0
    assert cli.main([*home, "keys", "distrust", "ab" * 32]) == 2
    capsys.readouterr()
    assert cli.main([*home, "keys", "list", "--json"]) == 0
    statuses = {p["key_id"]: p["status"] for p in json.loads(capsys.readouterr().out)["partners"]}
    assert statuses == {fr.identity.card.key_id: "superseded", real.key_id: "distrusted", thief.key_id: "trusted"}
    events = [(e.type, e.record["details"]) for e in AuditLog(uk.home).entries() if e.type.startswith("trust_")]
    assert [t for t, _ in events] == ["trust_added", "trust_refused", "trust_added", "trust_distrusted", "trust_refused"]
    assert events[2][1]["forks"] == [real.key_id]
    assert events[3][1] == {"lab": "FR-IRCGN", "key_id": real.key_id, "reason": "not read out by FR"}
