"""Lab identities: key generation, encryption at rest, cards, fingerprints, rotation, revocation."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from exchange_support import FAST, PASSPHRASE, T0, make_lab

import cli
from ballistics.errors import UsageError
from ballistics.labs import Lab
from exchange.canonical import canonical_json
from exchange.card import KeyCard, Revocation, format_fingerprint, parse_fingerprint
from exchange.errors import (
    BadPassphraseError,
    BadSignatureError,
    FingerprintMismatchError,
    KeyValidityError,
    MalformedCardError,
    MissingIdentityError,
    RevokedKeyError,
)
from exchange.keys import KeyMaterial, init_identity, load_card, load_identity, make_card, revoke_identity, rotate_identity
from exchange.signing import HybridSignature


def test_identity_files_are_owner_only_and_keys_are_not_in_clear(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "UK-FSL")
    key_dir = lab.home / "keys"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    stored = (key_dir / "identity.json").read_bytes()
    assert stat.S_IMODE((key_dir / "identity.json").stat().st_mode) == 0o600
    for seed in (lab.identity.keys.seeds[:32], lab.identity.keys.seeds[96:160]):
        assert seed not in stored and seed.hex().encode() not in stored
    assert load_identity(lab.home, PASSPHRASE).keys.seeds == lab.identity.keys.seeds


def test_wrong_passphrase_is_a_security_refusal(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "UK-FSL")
    with pytest.raises(BadPassphraseError, match="wrong passphrase") as caught:
        load_identity(lab.home, b"not the passphrase")
    assert caught.value.exit_code == 4


def test_a_too_short_passphrase_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="at least 8 bytes") as caught:
        init_identity(tmp_path / "uk", Lab("UK-FSL", "UK lab", "GB"), b"short", parameters=FAST)
    assert caught.value.exit_code == 2 and not (tmp_path / "uk" / "keys" / "identity.json").exists()
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", "short")
    home = str(tmp_path / "fr")
    assert cli.main(["--home", home, "keys", "init", "--lab", "FR-IRCGN", "--name", "IRCGN", "--country", "FR"]) == 2


def test_private_blob_cannot_be_moved_under_another_card(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    uk_doc = json.loads((uk.home / "keys" / "identity.json").read_text())
    fr_doc = json.loads((fr.home / "keys" / "identity.json").read_text())
    uk_doc["card"] = fr_doc["card"]
    (uk.home / "keys" / "identity.json").write_text(json.dumps(uk_doc))
    with pytest.raises(BadPassphraseError):
        load_identity(uk.home, PASSPHRASE)


def test_init_refuses_to_overwrite_and_load_needs_an_identity(tmp_path: Path) -> None:
    make_lab(tmp_path, "UK-FSL")
    with pytest.raises(MissingIdentityError, match="already exists"):
        make_lab(tmp_path, "UK-FSL")
    with pytest.raises(MissingIdentityError, match="keys init"):
        load_card(tmp_path / "nowhere")


def test_same_seeds_give_same_public_keys_and_fingerprint(tmp_path: Path) -> None:
    material = KeyMaterial(bytes(range(160)))
    a = make_card(Lab("UK-FSL", "UK lab", "GB"), material, T0, FAST.validity)
    b = make_card(Lab("UK-FSL", "UK lab", "GB"), material, T0, FAST.validity)
    assert a.fingerprint == b.fingerprint  # ML-DSA signatures differ, the fingerprint does not
    assert a.signature.ml_dsa_65 != b.signature.ml_dsa_65


def test_card_round_trips_and_any_body_change_breaks_the_self_signature(tmp_path: Path) -> None:
    card = make_lab(tmp_path, "UK-FSL").identity.card
    assert KeyCard.from_dict(json.loads(card.to_bytes()), where="card").fingerprint == card.fingerprint
    doc = card.to_dict()
    doc["body"]["lab"]["name"] = "Impostor lab"
    with pytest.raises(BadSignatureError, match="Ed25519 and ML-DSA-65"):
        KeyCard.from_dict(doc, where="card")


def test_hybrid_signature_needs_both_halves(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    doc = uk.identity.card.to_dict()
    fr_sig = fr.identity.signing.sign(b"ballistics key card v1", canonical_json(doc["body"]))
    mixed = HybridSignature(uk.identity.card.signature.ed25519, fr_sig.ml_dsa_65)
    doc["signatures"]["self"] = mixed.to_dict()
    with pytest.raises(BadSignatureError, match="ML-DSA-65 signature does not verify"):
        KeyCard.from_dict(doc, where="card")


@pytest.mark.parametrize(
    ("lab", "reason"), [(Lab("../x", "n", "GB"), "lab id"), (Lab("UK", "", "GB"), "name"), (Lab("UK", "n", "gb"), "country")]
)
def test_bad_lab_descriptions_are_refused(tmp_path: Path, lab: Lab, reason: str) -> None:
    with pytest.raises(MalformedCardError, match=reason):
        init_identity(tmp_path / "h", lab, PASSPHRASE, parameters=FAST)


def test_fingerprint_is_read_in_groups_and_parsed_leniently() -> None:
    fingerprint = bytes(range(32))
    text = format_fingerprint(fingerprint)
    assert len(text.split()) == 16 and all(len(group) == 4 for group in text.split())
    assert parse_fingerprint(text.lower().replace(" ", ":"), where="x") == fingerprint
    with pytest.raises(FingerprintMismatchError, match="64 hexadecimal digits"):
        parse_fingerprint(text[:-5], where="x")


def test_card_validity_period_is_enforced(tmp_path: Path) -> None:
    card = make_lab(tmp_path, "UK-FSL").identity.card
    card.check_valid(T0, where="card")
    with pytest.raises(KeyValidityError, match="valid from"):
        card.check_valid(card.not_after.replace(year=card.not_after.year + 1), where="card")


def test_rotation_keeps_old_decryption_key_and_countersigns(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "UK-FSL")
    old = lab.identity.card
    new = rotate_identity(lab.home, PASSPHRASE, now=T0, parameters=FAST)
    assert new.card.predecessor == old.key_id
    new.card.verify_successor_of(old, where="card")
    reloaded = lab.reload()
    assert reloaded.card.key_id == new.card.key_id
    assert reloaded.decryption_key(old.key_id) is not None and reloaded.decryption_key(new.card.key_id) is not None


def test_revocation_is_signed_by_the_key_and_blocks_its_use(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "UK-FSL")
    revocation = revoke_identity(lab.home, PASSPHRASE, "laptop stolen", now=T0)
    parsed = Revocation.from_dict(json.loads(revocation.to_bytes()), where="rev")
    parsed.verify(lab.identity.card, where="rev")
    assert lab.reload().revocation is not None
    with pytest.raises(RevokedKeyError, match="revoked"):
        lab.identity.require_usable("export")
    parsed.body["reason"] = "nothing happened"
    with pytest.raises(BadSignatureError):
        parsed.verify(lab.identity.card, where="rev")


def _reprotect(path: Path, n: int, r: int, p: int) -> None:
    """Re-encrypt an identity file's seeds under other scrypt parameters, as a foreign tool could."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    from exchange.canonical import b64decode, b64encode
    from exchange.keys import PRIVATE_AAD_PREFIX

    doc = json.loads(path.read_bytes())
    kdf, aad = doc["kdf"], PRIVATE_AAD_PREFIX + KeyCard.from_dict(doc["card"], where="t").fingerprint
    key = Scrypt(salt=b64decode(kdf["salt"], where="t"), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(PASSPHRASE)
    seeds = AESGCM(key).decrypt(b64decode(doc["nonce"], where="t"), b64decode(doc["ciphertext"], where="t"), aad)
    try:  # what the file would hold if written under these parameters (a dummy key where scrypt refuses them)
        weak = Scrypt(salt=b"s" * 16, length=32, n=n, r=r, p=p).derive(PASSPHRASE) if n * r * p <= 2**20 else bytes(32)
    except ValueError:
        weak = bytes(32)
    doc["kdf"] = {"name": "scrypt", "n": n, "r": r, "p": p, "salt": b64encode(b"s" * 16)}
    doc["ciphertext"] = b64encode(AESGCM(weak).encrypt(b64decode(doc["nonce"], where="t"), seeds, aad))
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("n", "r", "p", "words"),
    [
        (2, 8, 1, "below the floor"),
        (2**10, 8, 1, "below the floor"),
        (2**14, 1, 1, "below the floor"),
        (3, 8, 1, "not a power of two"),
        (2**20, 2**20, 1, "above the ceiling"),
        (2**14, 8, 10**6, "p 1..16"),
    ],
)
def test_weak_or_ruinous_scrypt_parameters_in_a_key_file_are_refused(tmp_path: Path, n: int, r: int, p: int, words: str) -> None:
    lab = make_lab(tmp_path, "UK-FSL")
    _reprotect(lab.home / "keys" / "identity.json", n, r, p)
    with pytest.raises(MalformedCardError, match=words):
        load_identity(lab.home, PASSPHRASE)


def test_key_protection_and_card_lifetimes_are_validated_when_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from exchange.keys import IdentityParameters, KeyProtection

    with pytest.raises(UsageError, match="below the floor"):
        KeyProtection(n=2**10)
    for days in (0, -1, 1827):
        with pytest.raises(UsageError, match="1 to 1826 days"):
            IdentityParameters(validity=timedelta(days=days), protection=FAST.protection)
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    base = ["--home", str(tmp_path / "h"), "keys", "init", "--lab", "UK-FSL", "--name", "UK", "--country", "GB"]
    for days in ("0", "-5", "1827", str(10**12)):
        assert cli.main([*base, "--validity-days", days]) == 2
    assert not (tmp_path / "h" / "keys" / "identity.json").exists()


def test_a_partner_card_claiming_a_decade_of_validity_is_refused(tmp_path: Path) -> None:
    from datetime import timedelta

    lab = make_lab(tmp_path, "UK-FSL")
    body = dict(lab.identity.card.body, not_after="2036-01-14T09:30:00Z")
    card = KeyCard(body, lab.identity.signing.sign(b"ballistics key card v1", canonical_json(body)), None)
    with pytest.raises(MalformedCardError, match="longer than 1826 days"):
        KeyCard.from_dict(card.to_dict(), where="card")
    assert lab.identity.card.not_after - lab.identity.card.not_before == timedelta(days=730)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_private_key_files_readable_by_others_are_refused_as_ssh_does(tmp_path: Path, mode: int) -> None:
    from exchange.audit import AuditLog
    from exchange.audit_key import audit_key_path, load_audit_key
    from exchange.errors import InsecureKeyFileError

    lab = make_lab(tmp_path, "UK-FSL")
    AuditLog(lab.home).certify_key(lab.identity, now=T0)
    rotate_identity(lab.home, PASSPHRASE, now=T0, parameters=FAST)
    retired = next((lab.home / "keys" / "retired").iterdir())
    for path in (lab.home / "keys" / "identity.json", retired, audit_key_path(lab.home)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(mode)
        with pytest.raises(InsecureKeyFileError, match=f"permissions {mode:04o} are too open.*chmod 600"):
            load_audit_key(lab.home) if path.parent.name == "audit" else load_identity(lab.home, PASSPHRASE)
        path.chmod(0o600)
    assert load_identity(lab.home, PASSPHRASE).card.predecessor == lab.identity.card.key_id
    assert load_audit_key(lab.home) is not None


def test_an_insecure_key_file_stops_the_command_with_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    lab = make_lab(tmp_path, "UK-FSL")
    (lab.home / "keys" / "identity.json").chmod(0o644)
    assert cli.main(["--home", str(lab.home), "keys", "rotate"]) == 4
    assert "too open" in capsys.readouterr().err


def test_a_fifo_given_as_a_card_is_refused_at_once_not_waited_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``keys trust`` on a named pipe used to block in ``open`` until a writer came (docs/security.md, item 12)."""
    import os
    import signal

    lab = make_lab(tmp_path, "UK-FSL")
    pipe = tmp_path / "FR-IRCGN.card.json"
    os.mkfifo(pipe)

    def hung(_signum: int, _frame: object) -> None:
        raise TimeoutError("keys trust waited on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        code = cli.main(["--home", str(lab.home), "keys", "trust", str(pipe)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {pipe}: ") and "not a regular file" in err and len(err.strip().splitlines()) == 1
