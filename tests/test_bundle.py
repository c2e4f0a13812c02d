"""Bundles: round trips, HPKE interoperability, fixed vectors, tampering, limits, fuzzing, CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519
from exchange_support import FAST, PASSPHRASE, T0, LabHome, file_entry, introduce, make_lab, signed_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey
from test_records import a_record
from vectors.make_vectors import identity as vector_lab_identity

import cli
from ballistics.clock import now_utc
from ballistics.errors import RecordError, UsageError
from ballistics.labs import DEFAULT_LAB, Lab
from ballistics.records import record_bytes, write_record
from exchange.bundle import export_bundle
from exchange.canonical import parse_time
from exchange.card import KeyCard
from exchange.errors import (
    BadSignatureError,
    BundleContentError,
    ExchangeSecurityError,
    ExpiredBundleError,
    ForeignContentError,
    HeaderLimitError,
    KeyValidityError,
    MalformedBundleError,
    MalformedError,
    ManifestMismatchError,
    NotARecipientError,
    RevokedKeyError,
    TamperedError,
    TruncatedError,
    UnsafeMemberNameError,
    UntrustedRecipientError,
    UntrustedSenderError,
)
from exchange.header import (
    FIXED,
    MAC_BYTES,
    STANZA_BYTES,
    derive_keys,
    encode_header,
    parse_header,
    read_header,
    unwrap_file_key,
    wrap_file_key,
    wrap_info,
)
from exchange.keys import Identity, KeyMaterial, revoke_identity, rotate_identity
from exchange.reader import inspect_bundle, open_bundle
from exchange.stream import CHUNK, TAG, StreamWriter, decrypt_chunks
from exchange.trust import TrustStore

VECTORS = Path(__file__).parent / "vectors"


@dataclass
class World:
    root: Path
    uk: LabHome
    fr: LabHome
    de: LabHome
    record: Path
    scan: Path


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("exchange")
    uk, fr, de = make_lab(root, "UK-FSL"), make_lab(root, "FR-IRCGN", "FR"), make_lab(root, "DE-BKA", "DE")
    introduce(uk, fr)
    introduce(uk, de)
    record = write_record(a_record(), root / "CASE-42.json")
    scan = root / "K1.x3p"
    scan.write_bytes(b"PK\x03\x04" + hashlib.shake_256(b"scan").digest(3 * CHUNK + 1000))
    return World(root, uk, fr, de, record, scan)


def export(world: World, out: Path, to=("FR-IRCGN",), scans=True, now: datetime = T0, sender: LabHome | None = None) -> Path:
    sender = sender or world.uk
    export_bundle(
        sender.home,
        sender.identity,
        sender.trust,
        out,
        recipients=list(to),
        records=[world.record],
        scans=[world.scan] if scans else [],
        now=now,
    )
    return out


def verify(world: World, path: Path, lab: LabHome | None = None, now: datetime = T0):
    lab = lab or world.fr
    return open_bundle(path, lab.identity, lab.trust, now=now)


@pytest.fixture(scope="session")
def small_bundle(world: World, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return export(world, tmp_path_factory.mktemp("small") / "small.bfx", scans=False).read_bytes()


@pytest.fixture(scope="session")
def big_bundle(world: World, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return export(world, tmp_path_factory.mktemp("big") / "big.bfx").read_bytes()


# --- round trips ------------------------------------------------------------------------------


def test_round_trip_one_recipient_extracts_identical_files(world: World, tmp_path: Path) -> None:
    path = export(world, tmp_path / "b.bfx")
    verified = verify(world, path)
    assert [f.name for f in verified.files] == ["records/CASE-42.json", "scans/K1.x3p"]
    assert verified.sender.lab.id == "UK-FSL" and verified.manifest.recipients[0].lab == "FR-IRCGN"
    assert list(tmp_path.iterdir()) == [path]  # verification writes nothing
    out = verified.extract_to(tmp_path / "in")
    assert (out / "records" / "CASE-42.json").read_bytes() == world.record.read_bytes()
    assert (out / "scans" / "K1.x3p").read_bytes() == world.scan.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bfx", "in"]


def test_round_trip_several_recipients_each_can_open(world: World, tmp_path: Path) -> None:
    path = export(world, tmp_path / "b.bfx", to=("FR-IRCGN", "DE-BKA"))
    for lab in (world.fr, world.de):
        assert verify(world, path, lab).manifest.files[1].size == world.scan.stat().st_size
    header = inspect_bundle(path, world.uk.trust, world.uk.identity.card)
    assert sorted(r["lab"] for r in header["recipients"]) == ["DE-BKA", "FR-IRCGN"]
    assert header["sender"]["lab"] == "UK-FSL" and header["length_consistent"]


def test_sequence_numbers_increase_per_sender(world: World, tmp_path: Path) -> None:
    first = verify(world, export(world, tmp_path / "1.bfx", scans=False)).manifest.sequence
    second = verify(world, export(world, tmp_path / "2.bfx", scans=False)).manifest.sequence
    assert second == first + 1


def test_rotation_keeps_bundles_in_flight_readable(tmp_path: Path) -> None:
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    introduce(uk, fr)
    world = World(tmp_path, uk, fr, fr, write_record(a_record(), tmp_path / "r.json"), tmp_path / "none")
    in_flight = export(world, tmp_path / "old.bfx", scans=False)
    rotate_identity(fr.home, PASSPHRASE, now=T0)
    fr.reload()
    assert verify(world, in_flight).manifest.sequence == 1  # addressed to FR's retired key


# --- HPKE interoperability with an independent implementation ---------------------------------


def test_hpke_wrap_interoperates_with_pyhpke_both_ways() -> None:
    info = wrap_info(b"\x01" * 16, b"\x02" * 32, b"\x03" * 32)
    file_key = bytes(range(32))
    ours = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    theirs = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)
    private = x25519.X25519PrivateKey.from_private_bytes(hashlib.sha256(b"recipient").digest())
    their_private = KEMKey.from_pyca_cryptography_key(private)
    their_public = KEMKey.from_pyca_cryptography_key(private.public_key())

    wrapped = ours.encrypt(file_key, private.public_key(), info=info)
    enc, ct = wrapped[:32], wrapped[32:]
    assert theirs.create_recipient_context(enc, their_private, info=info).open(ct) == file_key

    enc, sender = theirs.create_sender_context(their_public, info=info)
    ct = sender.seal(file_key)
    assert ours.decrypt(enc + ct, private, info=info) == file_key
    with pytest.raises(InvalidTag):
        ours.decrypt(enc + ct, private, info=info + b"x")


# --- fixed vectors ----------------------------------------------------------------------------


def vector_identity(doc: dict, role: str) -> Identity:
    lab = doc["labs"][role]
    card = KeyCard.from_dict(lab["card"], where="vector card")
    material = KeyMaterial(bytes.fromhex(lab["seeds"]))
    assert material.public_keys() == {k: base64.b64decode(v) for k, v in card.body["keys"].items()}
    return Identity(card, material)


def test_vector_keys_and_fingerprints_are_reproduced_from_seeds() -> None:
    doc = json.loads((VECTORS / "vectors.json").read_text())
    for role in ("sender", "recipient"):
        assert vector_lab_identity(role).card.key_id == doc["labs"][role]["key_id"]
        assert vector_identity(doc, role).card.key_id == doc["labs"][role]["key_id"]


def test_vector_bundle_decrypts_and_is_reproduced_byte_for_byte(tmp_path: Path) -> None:
    doc = json.loads((VECTORS / "vectors.json").read_text())
    data = (VECTORS / "bundle-v1.bfx").read_bytes()
    assert hashlib.sha256(data).hexdigest() == doc["bundle"]["sha256"]
    sender, recipient = vector_identity(doc, "sender"), vector_identity(doc, "recipient")
    trust = TrustStore.open(tmp_path)
    trust.trust(sender.card, sender.card.fingerprint, where="vector")
    now = parse_time(doc["now"], where="vector")
    verified = open_bundle(VECTORS / "bundle-v1.bfx", recipient, trust, now=now)
    assert {f.name: f.sha256 for f in verified.files} == doc["bundle"]["files"]

    # the stanza opens to the committed file key
    header = read_header(io.BytesIO(data), "vector")
    file_key = bytes.fromhex(doc["bundle"]["file_key"])
    assert header.bundle_id.hex() == doc["bundle"]["bundle_id"]
    assert unwrap_file_key(header, header.stanzas[0], recipient.keys.decryption, "vector") == file_key
    # header: rebuilt from its fields and the committed stanza, byte for byte
    payload_key, mac_key = derive_keys(file_key, header.bundle_id)
    assert encode_header(header.payload_length, header.bundle_id, header.sender, list(header.stanzas), mac_key).raw == header.raw
    # payload: the plaintext re-encrypted under the derived key equals the committed chunks
    plaintext = b"".join(decrypt_chunks(io.BytesIO(data[header.length :]), payload_key, header.hash, "vector"))
    sink = io.BytesIO()
    writer = StreamWriter(sink, payload_key, header.hash, len(plaintext))
    writer.write(plaintext)
    writer.close()
    assert sink.getvalue() == data[header.length :]
    assert len(data) == header.length + len(plaintext) + TAG * 2


# --- tampering --------------------------------------------------------------------------------


def region_of(offset: int, header_length: int) -> tuple[type[Exception], ...]:
    """The refusal expected when the byte at ``offset`` of a one-recipient bundle changes."""
    if offset < 12:
        return (MalformedBundleError,)  # magic, version, suite
    if offset < 16 or 72 <= offset < 76:
        return (MalformedError,)  # header length, stanza count, stanza length
    if offset < 24:
        return (MalformedBundleError, TamperedError)  # payload length: out of range, else MAC
    if offset < 40:
        return (TamperedError,)  # bundle id is in the HPKE info
    if offset < 72:
        return (UntrustedSenderError,)
    if offset < 76 + 32:
        return (NotARecipientError,)
    return (TamperedError,)  # wrapped key, MAC, every chunk


def test_every_byte_flipped_is_refused_with_the_right_error(world: World, small_bundle: bytes, tmp_path: Path) -> None:
    header_length = struct.unpack_from(">I", small_bundle, 12)[0]
    path = tmp_path / "t.bfx"
    reasons = set()
    for offset in range(len(small_bundle)):
        mutated = bytearray(small_bundle)
        mutated[offset] ^= 0x01
        path.write_bytes(mutated)
        with pytest.raises((MalformedError, ExchangeSecurityError)) as caught:
            verify(world, path)
        assert isinstance(caught.value, region_of(offset, header_length)), (offset, caught.value)
        reasons.add(type(caught.value).__name__)
    assert len(small_bundle) > 5000 and {"TamperedError", "NotARecipientError", "UntrustedSenderError"} <= reasons


def test_truncation_at_every_chunk_boundary_and_inside_chunks(world: World, big_bundle: bytes, tmp_path: Path) -> None:
    header_length = struct.unpack_from(">I", big_bundle, 12)[0]
    boundaries = list(range(header_length, len(big_bundle), CHUNK + TAG))
    cuts = boundaries + [b + 1 for b in boundaries] + [b + CHUNK // 2 for b in boundaries] + [len(big_bundle) - 1]
    path = tmp_path / "t.bfx"
    for cut in sorted({c for c in cuts if c < len(big_bundle)}):
        path.write_bytes(big_bundle[:cut])
        with pytest.raises(TruncatedError, match="truncated"):
            verify(world, path)


def chunks_of(data: bytes) -> tuple[bytes, list[bytes]]:
    header_length = struct.unpack_from(">I", data, 12)[0]
    body = data[header_length:]
    return data[:header_length], [body[i : i + CHUNK + TAG] for i in range(0, len(body), CHUNK + TAG)]


def test_stream_detects_cut_at_boundary_even_without_the_length_check(world: World, big_bundle: bytes) -> None:
    header_bytes, chunks = chunks_of(big_bundle)
    header = parse_header(header_bytes, "x")
    file_key = _file_key(world.fr.identity, header)
    payload_key, _ = derive_keys(file_key, header.bundle_id)

    def run(parts: list[bytes]) -> None:
        list(decrypt_chunks(io.BytesIO(b"".join(parts)), payload_key, header.hash, "x"))

    run(chunks)
    with pytest.raises(TruncatedError, match="cut at a chunk boundary"):
        run(chunks[:-1])
    with pytest.raises(TamperedError, match="chunk 1 fails authentication"):
        run([chunks[0], chunks[2], chunks[1], *chunks[3:]])
    with pytest.raises(TamperedError, match="chunk 1 fails authentication"):
        run([chunks[0], *chunks[2:]])  # a dropped chunk


def test_stream_refuses_chunks_appended_after_a_full_final_chunk() -> None:
    key, aad = bytes(32), b"h" * 32
    sink = io.BytesIO()
    writer = StreamWriter(sink, key, aad, 2 * CHUNK)
    writer.write(os.urandom(2 * CHUNK))
    writer.close()
    data = sink.getvalue()
    assert len(b"".join(decrypt_chunks(io.BytesIO(data), key, aad, "x"))) == 2 * CHUNK
    with pytest.raises(TamperedError, match="data follows the final chunk 1"):
        list(decrypt_chunks(io.BytesIO(data + data[: CHUNK + TAG]), key, aad, "x"))


def _file_key(identity: Identity, header) -> bytes:
    stanza = next(s for s in header.stanzas if identity.decryption_key(s.recipient.hex()))
    return unwrap_file_key(header, stanza, identity.decryption_key(stanza.recipient.hex()), "x")


def test_swapped_chunks_and_appended_bytes_are_refused(world: World, big_bundle: bytes, tmp_path: Path) -> None:
    header_bytes, chunks = chunks_of(big_bundle)
    path = tmp_path / "t.bfx"
    path.write_bytes(header_bytes + chunks[0] + chunks[2] + chunks[1] + b"".join(chunks[3:]))
    with pytest.raises(TamperedError, match="chunk 1 fails authentication"):
        verify(world, path)
    path.write_bytes(big_bundle + b"\x00" * 17)
    with pytest.raises(TamperedError, match="17 unexpected bytes after the final chunk"):
        verify(world, path)


def rebuild_header(raw: bytes, stanzas: list[bytes]) -> bytes:
    """Re-pack a header with other stanza bodies, fixing the count and length fields (not the MAC)."""
    fields = list(FIXED.unpack(raw[: FIXED.size]))
    body = b"".join(struct.pack(">H", len(s)) + s for s in stanzas)
    fields[3] = FIXED.size + len(body) + MAC_BYTES
    fields[7] = len(stanzas)
    return FIXED.pack(*fields) + body + raw[-MAC_BYTES:]


def test_stanzas_removed_or_duplicated(world: World, tmp_path: Path) -> None:
    data = export(world, tmp_path / "two.bfx", to=("FR-IRCGN", "DE-BKA"), scans=False).read_bytes()
    header = read_header(io.BytesIO(data), "x")
    payload = data[header.length :]
    bodies = [s.recipient + s.wrapped for s in header.stanzas]
    fr_index = next(i for i, s in enumerate(header.stanzas) if s.recipient == world.fr.identity.card.fingerprint)
    path = tmp_path / "t.bfx"
    path.write_bytes(rebuild_header(header.raw, [bodies[1 - fr_index]]) + payload)
    with pytest.raises(NotARecipientError, match="not to this lab"):
        verify(world, path)
    path.write_bytes(rebuild_header(header.raw, [bodies[fr_index]]) + payload)
    with pytest.raises(TamperedError, match="header MAC"):
        verify(world, path)
    path.write_bytes(rebuild_header(header.raw, [bodies[0], bodies[0], bodies[1]]) + payload)
    with pytest.raises(MalformedBundleError, match="duplicated"):
        verify(world, path)


def test_header_caps_are_enforced_before_reading(world: World, small_bundle: bytes, tmp_path: Path) -> None:
    path = tmp_path / "t.bfx"
    fields = list(FIXED.unpack(small_bundle[: FIXED.size]))
    for index, value, reason in ((3, 70000, "header length 70000"), (7, 17, "17 recipient stanzas"), (7, 0, "0 recipient stanzas")):
        bad = list(fields)
        bad[index] = value
        path.write_bytes(FIXED.pack(*bad) + small_bundle[FIXED.size :])
        with pytest.raises(HeaderLimitError, match=reason):
            verify(world, path)
    path.write_bytes(small_bundle[: FIXED.size] + struct.pack(">H", 4000) + small_bundle[FIXED.size + 2 :])
    with pytest.raises(HeaderLimitError, match="stanza 0 is 4000 bytes"):
        verify(world, path)


def test_bundle_for_another_lab_untrusted_and_revoked_senders(world: World, small_bundle: bytes, tmp_path: Path) -> None:
    path = tmp_path / "b.bfx"
    path.write_bytes(small_bundle)
    with pytest.raises(NotARecipientError, match="not to this lab \\(DE-BKA\\)"):
        verify(world, path, world.de)
    with pytest.raises(UntrustedSenderError, match="not in the trust store"):
        open_bundle(path, world.fr.identity, TrustStore.open(tmp_path / "fresh-home"), now=T0)

    uk, fr = make_lab(tmp_path / "r", "UK-FSL"), make_lab(tmp_path / "r", "FR-IRCGN", "FR")
    introduce(uk, fr)
    w = World(tmp_path, uk, fr, fr, world.record, world.scan)
    signed_before = export(w, tmp_path / "before.bfx", scans=False)
    fr.trust.revoke(revoke_identity(uk.home, PASSPHRASE, "key compromised", now=T0), where="uk.rev")
    with pytest.raises(RevokedKeyError, match="was revoked at"):
        verify(w, signed_before)


def test_expired_and_future_bundles(world: World, small_bundle: bytes, tmp_path: Path) -> None:
    path = tmp_path / "b.bfx"
    path.write_bytes(small_bundle)
    with pytest.raises(ExpiredBundleError, match="expired at"):
        verify(world, path, now=T0 + timedelta(days=31))
    with pytest.raises(ExpiredBundleError, match="in the future"):
        verify(world, path, now=T0 - timedelta(hours=1))


def test_recipient_cannot_rewrap_to_a_third_party(world: World, small_bundle: bytes, tmp_path: Path) -> None:
    """FR decrypts a UK bundle and re-encrypts the signed plaintext to DE in UK's name."""
    header = read_header(io.BytesIO(small_bundle), "x")
    payload_key, _ = derive_keys(_file_key(world.fr.identity, header), header.bundle_id)
    plaintext = b"".join(decrypt_chunks(io.BytesIO(small_bundle[header.length :]), payload_key, header.hash, "x"))
    new_key, sender = os.urandom(32), header.sender
    de_card = world.de.identity.card
    stanza = wrap_file_key(new_key, header.bundle_id, sender, de_card.fingerprint, de_card.encryption_key)
    new_payload_key, new_mac_key = derive_keys(new_key, header.bundle_id)
    forged = encode_header(header.payload_length, header.bundle_id, sender, [stanza], new_mac_key)
    sink = io.BytesIO()
    writer = StreamWriter(sink, new_payload_key, forged.hash, len(plaintext))
    writer.write(plaintext)
    writer.close()
    path = tmp_path / "forwarded.bfx"
    path.write_bytes(forged.raw + sink.getvalue())
    with pytest.raises(ManifestMismatchError, match="header hash, recipients differ"):
        verify(world, path, world.de)


def test_a_forged_manifest_signature_is_refused(world: World, small_bundle: bytes, tmp_path: Path) -> None:
    header = read_header(io.BytesIO(small_bundle), "x")
    file_key = _file_key(world.fr.identity, header)
    payload_key, _ = derive_keys(file_key, header.bundle_id)
    plaintext = bytearray(b"".join(decrypt_chunks(io.BytesIO(small_bundle[header.length :]), payload_key, header.hash, "x")))
    (length,) = struct.unpack_from(">I", plaintext, 0)
    plaintext[4 + length + 2 + 10] ^= 1  # inside the Ed25519 signature
    sink = io.BytesIO()
    writer = StreamWriter(sink, payload_key, header.hash, len(plaintext))
    writer.write(bytes(plaintext))
    writer.close()
    path = tmp_path / "b.bfx"
    path.write_bytes(header.raw + sink.getvalue())
    with pytest.raises(BadSignatureError, match="manifest signature: Ed25519 signature does not verify"):
        verify(world, path)


# --- fuzzing the header parser -----------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_header_parser_raises_only_documented_errors(small_bundle: bytes, data: st.DataObject) -> None:
    header_length = struct.unpack_from(">I", small_bundle, 12)[0]
    base = bytearray(small_bundle[:header_length])
    choice = data.draw(st.sampled_from(["random", "mutate", "truncate"]))
    if choice == "random":
        raw = data.draw(st.binary(max_size=4096))
        raw = (b"\x89BFX\r\n\x1a\n" + raw) if data.draw(st.booleans()) else raw
    elif choice == "mutate":
        for _ in range(data.draw(st.integers(1, 8))):
            base[data.draw(st.integers(0, len(base) - 1))] = data.draw(st.integers(0, 255))
        raw = bytes(base)
    else:
        raw = bytes(base[: data.draw(st.integers(0, len(base)))])
    try:
        header = read_header(io.BytesIO(raw), "fuzz")
    except MalformedError:
        return
    assert header.length <= 65536 and 1 <= len(header.stanzas) <= 16 and all(len(s.wrapped) == STANZA_BYTES - 32 for s in header.stanzas)


# --- export refusals ---------------------------------------------------------------------------


def test_export_refusals_write_nothing(world: World, tmp_path: Path) -> None:
    out = tmp_path / "out.bfx"
    uk = world.uk

    def attempt(**kwargs):
        args = {"recipients": ["FR-IRCGN"], "records": [world.record], "scans": [], "now": T0, **kwargs}
        export_bundle(uk.home, uk.identity, uk.trust, out, **args)

    with pytest.raises(UntrustedRecipientError, match="not in the trust store"):
        attempt(recipients=["NL-NFI"])
    with pytest.raises(KeyValidityError, match="is valid from"):
        attempt(now=T0 + timedelta(days=3 * 365))
    bad = tmp_path / "bad.json"
    bad.write_bytes(record_bytes({**a_record(), "scores": {}}))
    with pytest.raises(RecordError, match="not a valid match record"):
        attempt(records=[bad])
    spaced = tmp_path / "my record.json"
    spaced.write_bytes(world.record.read_bytes())
    with pytest.raises(UnsafeMemberNameError, match="must be 1-200"):
        attempt(records=[spaced])
    (tmp_path / "dup").mkdir()
    twin = tmp_path / "dup" / "case-42.JSON"
    twin.write_bytes(world.record.read_bytes())
    (tmp_path / "dup" / "CASE-42.json").write_bytes(world.record.read_bytes())
    with pytest.raises(UnsafeMemberNameError, match="duplicate member name"):
        attempt(records=[world.record, tmp_path / "dup" / "CASE-42.json"])
    not_x3p = tmp_path / "scan.x3p"
    not_x3p.write_bytes(b"hello")
    with pytest.raises(BundleContentError, match="x3p"):
        attempt(scans=[not_x3p])
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.bfx")]


def test_extraction_of_a_bundle_changed_after_verification_leaves_nothing(world: World, small_bundle: bytes, tmp_path: Path) -> None:
    path = tmp_path / "b.bfx"
    path.write_bytes(small_bundle)
    verified = verify(world, path)
    mutated = bytearray(small_bundle)
    mutated[-5] ^= 1
    path.write_bytes(mutated)
    with pytest.raises(TamperedError):
        verified.extract_to(tmp_path / "in")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bfx"]


# --- command line ------------------------------------------------------------------------------


def test_cli_export_inspect_verify_and_refusals(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    out = tmp_path / "cli.bfx"
    uk, fr = str(world.uk.home), str(world.fr.home)
    code = cli.main(
        ["--home", uk, "bundle", "export", "--to", "FR-IRCGN", "--record", str(world.record), "--scan", str(world.scan), "-o", str(out)]
    )
    assert code == 0 and out.exists()
    capsys.readouterr()
    assert cli.main(["--home", fr, "bundle", "inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sender"]["lab"] == "UK-FSL"
    assert cli.main(["--home", fr, "bundle", "verify", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verified"] and [f["name"] for f in summary["files"]] == ["records/CASE-42.json", "scans/K1.x3p"]

    assert cli.main(["--home", str(world.de.home), "bundle", "verify", str(out)]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {out}: bundle is addressed to key ") and err[-1].endswith("not to this lab (DE-BKA)")
    out.write_bytes(b"not a bundle at all, just some text")
    assert cli.main(["--home", fr, "bundle", "inspect", str(out)]) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {out}: not a ballistics bundle (bad magic bytes)"
    refused = tmp_path / "refused.bfx"
    assert cli.main(["--home", uk, "bundle", "export", "--to", "NL-NFI", "--record", str(world.record), "-o", str(refused)]) == 4
    assert not refused.exists()


def test_cli_keys_trust_flow_and_fingerprint_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", "a long enough passphrase")
    uk, fr = str(tmp_path / "uk"), str(tmp_path / "fr")
    assert cli.main(["--home", uk, "keys", "init", "--lab", "UK-FSL", "--name", "UK lab", "--country", "GB"]) == 0
    assert cli.main(["--home", fr, "keys", "init", "--lab", "FR-IRCGN", "--name", "IRCGN", "--country", "FR"]) == 0
    card = tmp_path / "fr.card"
    assert cli.main(["--home", fr, "keys", "export", "-o", str(card)]) == 0
    capsys.readouterr()
    assert cli.main(["--home", fr, "keys", "fingerprint", str(card)]) == 0
    fingerprint = capsys.readouterr().out.strip()
    wrong = fingerprint[:-1] + ("0" if fingerprint[-1] != "0" else "1")
    assert cli.main(["--home", uk, "keys", "trust", str(card), "--fingerprint", wrong]) == 4
    refusal = capsys.readouterr().err
    assert "does not match" in refusal and fingerprint not in refusal and fingerprint[:9] not in refusal
    assert cli.main(["--home", uk, "keys", "trust", str(card), "--fingerprint", fingerprint]) == 0
    successor = tmp_path / "fr2.card"
    assert cli.main(["--home", fr, "keys", "rotate", "-o", str(successor)]) == 0
    assert cli.main(["--home", uk, "keys", "trust", str(successor)]) == 0
    revocation = tmp_path / "fr.rev"
    assert cli.main(["--home", fr, "keys", "revoke", "-o", str(revocation), "--reason", "test"]) == 0
    assert cli.main(["--home", uk, "keys", "trust", str(revocation)]) == 0
    capsys.readouterr()
    assert cli.main(["--home", uk, "keys", "list", "--json"]) == 0
    statuses = [p["status"] for p in json.loads(capsys.readouterr().out)["partners"]]
    assert sorted(statuses) == ["revoked", "superseded"]
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", "the wrong passphrase")
    assert cli.main(["--home", fr, "keys", "rotate"]) == 4


# --- records belong to the exporting lab ---------------------------------------------------------


def test_export_refuses_a_record_of_another_lab_naming_the_file(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    uk = world.uk
    sequence = uk.home / "exchange" / "sequence.json"
    before = sequence.read_bytes() if sequence.exists() else None
    out = tmp_path / "out.bfx"
    for lab, words in ((Lab(DEFAULT_LAB, DEFAULT_LAB), "made before keys init"), (world.de.identity.card.lab, "only this lab's records")):
        record = write_record({**a_record(), "lab": lab.to_dict()}, tmp_path / f"{lab.id}.json")
        with pytest.raises(UsageError, match=words) as caught:
            export_bundle(uk.home, uk.identity, uk.trust, out, recipients=["FR-IRCGN"], records=[world.record, record], now=T0)
        assert (
            caught.value.exit_code == 2
            and caught.value.path == str(record)
            and f"of lab {lab.id}, not of this lab (UK-FSL)" in caught.value.reason
        )
    assert not out.exists() and (sequence.read_bytes() if sequence.exists() else None) == before
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    local = tmp_path / f"{DEFAULT_LAB}.json"
    assert cli.main(["--home", str(uk.home), "bundle", "export", "--to", "FR-IRCGN", "--record", str(local), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {local}: record ")
    assert not out.exists()


def test_verify_refuses_a_record_of_another_lab_as_the_import_would(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("exchange.bundle.check_own_record", lambda record, ours, path: None)  # a sender that skips the check
    foreign = write_record({**a_record(), "lab": world.de.identity.card.lab.to_dict()}, tmp_path / "de.json")
    path = tmp_path / "b.bfx"
    uk = world.uk
    export_bundle(uk.home, uk.identity, uk.trust, path, recipients=["FR-IRCGN"], records=[foreign], now=T0)
    with pytest.raises(ForeignContentError, match="record of lab DE-BKA in a bundle signed by UK-FSL"):
        verify(world, path)


# --- file names that cannot be member names ------------------------------------------------------


def test_a_scan_named_with_spaces_travels_under_its_hash_with_its_name_signed(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    spaced = tmp_path / "Fadul 3-1.x3p"
    spaced.write_bytes(world.scan.read_bytes())
    accented = tmp_path / "Éprouvé ①.x3p"
    accented.write_bytes(world.scan.read_bytes() + b"other bytes")
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    out = tmp_path / "b.bfx"
    argv = [
        "--home",
        str(world.uk.home),
        "bundle",
        "export",
        "--to",
        "FR-IRCGN",
        "--scan",
        str(spaced),
        "--scan",
        str(accented),
        "-o",
        str(out),
    ]
    assert cli.main(argv) == 0
    verified = verify(world, out, now=now_utc())
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (spaced, accented)}
    assert [(f.name, f.original_name) for f in verified.files] == [
        (f"scans/{sha[spaced]}.x3p", "Fadul 3-1.x3p"),
        (f"scans/{sha[accented]}.x3p", "Éprouvé ①.x3p"),
    ]
    assert b"\\u00c9prouv\\u00e9 \\u2460.x3p" in verified.manifest.encoded  # canonical JSON: ASCII with escapes, signed
    extracted = verified.extract_to(tmp_path / "in")
    assert sorted(p.name for p in (extracted / "scans").iterdir()) == sorted(f"{h}.x3p" for h in sha.values())
    # a name that is safe travels as it is, without original_name (the vectors are unchanged)
    plain = export(world, tmp_path / "plain.bfx")
    assert [f.original_name for f in verify(world, plain).files] == [None, None]


def test_export_sends_a_scan_named_by_its_hash_as_is_and_refuses_one_named_by_another(world: World, tmp_path: Path) -> None:
    data = world.scan.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    uk = world.uk
    hashed = tmp_path / f"{sha.upper()}.X3P"  # the content's own hash, as some tools print it
    hashed.write_bytes(data)
    result = export_bundle(uk.home, uk.identity, uk.trust, tmp_path / "ok.bfx", recipients=["FR-IRCGN"], scans=[hashed], now=T0)
    assert [(f.name, f.original_name) for f in result.manifest.files] == [(f"scans/{sha}.x3p", None)]
    lying = tmp_path / f"{hashlib.sha256(b'another scan').hexdigest()}.x3p"
    lying.write_bytes(data)
    with pytest.raises(BundleContentError, match="named by its own content's"):
        export_bundle(uk.home, uk.identity, uk.trust, tmp_path / "no.bfx", recipients=["FR-IRCGN"], scans=[lying], now=T0)
    assert not (tmp_path / "no.bfx").exists()


def test_export_refuses_a_name_with_control_characters(world: World, tmp_path: Path) -> None:
    sneaky = tmp_path / "K1\u202egnp.x3p"  # a right-to-left override hides the real extension
    sneaky.write_bytes(world.scan.read_bytes())
    uk = world.uk
    with pytest.raises(UnsafeMemberNameError, match="control or invisible"):
        export_bundle(uk.home, uk.identity, uk.trust, tmp_path / "o.bfx", recipients=["FR-IRCGN"], scans=[sneaky], now=T0)
    assert not (tmp_path / "o.bfx").exists()


def test_bundle_lifetimes_are_bounded_when_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--lifetime-days 0, negative, above 90 days or absurdly large: a usage error, nothing written."""
    from exchange.bundle import ExportOptions

    for days in (0, -1, 91):
        with pytest.raises(UsageError, match="at most 90 days"):
            ExportOptions(lifetime=timedelta(days=days))
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", "unused passphrase")
    out = tmp_path / "out.bfx"
    for days in ("0", "-3", "91", str(10**15)):
        args = ["--home", str(tmp_path / "h"), "bundle", "export", "--to", "FR", "--scan", "x.x3p", "-o", str(out)]
        assert cli.main([*args, "--lifetime-days", days]) == 2
    assert not out.exists()


# --- keys judged at the time of import, not only at the sender's claimed time (item 5) ----------


def test_a_backdated_bundle_signed_with_a_superseded_key_imports_only_within_the_grace(tmp_path: Path) -> None:
    """A copy of UK's old key signs a bundle dated before the rotation: accepted for 14 days after FR learnt of it, then refused."""
    uk, fr = make_lab(tmp_path, "UK-FSL"), make_lab(tmp_path, "FR-IRCGN", "FR")
    introduce(uk, fr)
    stolen = uk.identity
    successor = rotate_identity(uk.home, PASSPHRASE, now=T0, parameters=FAST)
    fr.trust.trust(successor.card, None, where="uk2.card", now=T0)  # FR learns of the rotation at T0
    world = World(tmp_path, uk, fr, fr, write_record(a_record(), tmp_path / "r.json"), tmp_path / "none")
    backdated = tmp_path / "backdated.bfx"
    export_bundle(uk.home, stolen, uk.trust, backdated, recipients=["FR-IRCGN"], records=[world.record], now=T0 - timedelta(days=1))
    assert verify(world, backdated, now=T0 + timedelta(days=13)).sender.key_id == stolen.card.key_id  # in flight: accepted
    with pytest.raises(KeyValidityError, match=r"superseded by .* its bundles import for 14 days"):
        verify(world, backdated, now=T0 + timedelta(days=15))


def test_a_backdated_bundle_signed_with_an_expired_key_imports_only_within_the_grace(tmp_path: Path) -> None:
    from exchange.keys import IdentityParameters, init_identity

    short = IdentityParameters(validity=timedelta(days=2), protection=FAST.protection)
    uk = LabHome(tmp_path / "UK-FSL", init_identity(tmp_path / "UK-FSL", Lab("UK-FSL", "UK", "GB"), PASSPHRASE, now=T0, parameters=short))
    fr = make_lab(tmp_path, "FR-IRCGN", "FR")
    introduce(uk, fr)
    world = World(tmp_path, uk, fr, fr, write_record(a_record(), tmp_path / "r.json"), tmp_path / "none")
    bundle = export(world, tmp_path / "b.bfx", scans=False, now=T0 + timedelta(days=1))  # while the key is valid
    expiry = uk.identity.card.not_after
    assert verify(world, bundle, now=expiry + timedelta(days=13)).sender.key_id == uk.identity.card.key_id
    with pytest.raises(KeyValidityError, match=r"expired at .* its bundles import for 14 days"):
        verify(world, bundle, now=expiry + timedelta(days=15))


def test_a_bundle_claiming_a_lifetime_above_90_days_is_refused(world: World, tmp_path: Path) -> None:
    files = [file_entry("records/CASE-42.json", "record", world.record.read_bytes())]

    def lifetime(days: int):
        def edit(doc: dict) -> None:
            doc["expires"] = (T0 + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

        return edit

    at_most = signed_bundle(tmp_path / "90.bfx", world.uk, [world.fr], files, edit=lifetime(90))
    assert verify(world, at_most, now=T0 + timedelta(days=1)).manifest.expires == T0 + timedelta(days=90)
    too_long = signed_bundle(tmp_path / "91.bfx", world.uk, [world.fr], files, edit=lifetime(91))
    with pytest.raises(ExpiredBundleError, match="lifetime above 90 days"):
        verify(world, too_long, now=T0 + timedelta(days=1))
