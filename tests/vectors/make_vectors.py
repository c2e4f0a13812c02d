"""Regenerate the bundle-format conformance vectors of ``tests/vectors/`` (run by hand; outputs committed).

    .venv/bin/python tests/vectors/make_vectors.py

Key material comes from fixed seeds, and every random choice of the writer (bundle id, file key,
scrypt salt, key-file nonce) from a fixed byte stream, so everything but three kinds of bytes is
a function of this script. Those three come from randomness inside ``cryptography`` that its API
does not let a caller fix: the HPKE encapsulation of each key stanza (ephemeral X25519 key and
ML-KEM randomness), and the ML-DSA-65 signatures, which are hedged (the manifest signatures, the
key cards' self-signatures and the revocation's signature). To keep the committed files stable
byte for byte, this script **reuses** those bytes from the committed files whenever they are
still valid for exactly the same inputs: a stanza is reused when it opens, with the recipient's
private key and this bundle's ``info``, to this bundle's file key; a signature when it verifies
over exactly the same message with the same key. Running the script again therefore rewrites
every file with identical bytes (``tests/test_vectors.py`` checks this for the deterministic
parts); only a change of inputs, or deleting a file, makes fresh randomness appear, and then
only in the bytes listed above and in what depends on them (header MAC and hash, the manifest's
``header_hash``, the encrypted payload, and the sha256 of each file in ``index.json``).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from ballistics.labs import Lab  # noqa: E402
from exchange.keys import Identity, KeyMaterial, make_card  # noqa: E402

CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=timezone.utc)
VALIDITY = timedelta(days=730)
LABS = {
    "sender": ("UK-VECTOR", "GB", 0x11),
    "recipient": ("FR-VECTOR", "FR", 0x22),
    "third": ("DE-VECTOR", "DE", 0x33),
    "stranger": ("NL-VECTOR", "NL", 0x44),
}
#: Passphrases of the private-key files (UTF-8, unnormalised; FR's is not ASCII on purpose).
PASSPHRASES = {
    "UK-VECTOR": "vector passphrase UK-VECTOR",
    "FR-VECTOR": "clé de test FR-VECTOR",
    "DE-VECTOR": "vector passphrase DE-VECTOR",
    "NL-VECTOR": "vector passphrase NL-VECTOR",
}
#: scrypt cost of the vector key files: low, so that a test opens them quickly (the floor the format allows).
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
CHUNK = 64 * 1024
#: The size caps of section 3.5: a record's (4 MiB) and a receipt's (64 KiB) content.
MAX_RECORD, MAX_RECEIPT = 4 * 2**20, 64 * 2**10


def seeds(byte: int) -> bytes:
    return hashlib.shake_256(bytes([byte]) * 32).digest(160)


def fixed_rng(label: bytes) -> Callable[[int], bytes]:
    """A deterministic byte stream standing in for os.urandom."""
    state = {"counter": 0}

    def rng(size: int) -> bytes:
        state["counter"] += 1
        return hashlib.shake_256(label + state["counter"].to_bytes(4, "big")).digest(size)

    return rng


def _lab(role: str) -> Lab:
    lab_id, country, _ = LABS[role]
    return Lab(lab_id, f"Vector lab {lab_id}", country)


def identity(role: str, out: Path = HERE) -> Identity:
    """The vector lab's identity; its card is the committed one when that is still valid (same body, verifying)."""
    from exchange.card import KeyCard

    lab_id, _, byte = LABS[role]
    material = KeyMaterial(seeds(byte))
    card = make_card(_lab(role), material, CREATED, VALIDITY)
    committed = out / "keys" / f"{lab_id}.card.json"
    if committed.exists():
        try:
            old = KeyCard.from_dict(json.loads(committed.read_bytes()), where=str(committed))
        except Exception:  # noqa: BLE001 - anything wrong with the old file: make a fresh card
            old = None
        if old is not None and old.body == card.body:
            card = old
    return Identity(card, material)


def record_document(lab_id: str = "UK-VECTOR", record_id: str = "00000000-0000-4000-8000-000000000001") -> dict:
    return {
        "schema_version": 1, "record_id": record_id,
        "lab": {"id": lab_id, "name": f"Vector lab {lab_id}", "country": lab_id[:2].replace("UK", "GB")},
        "case_id": "VECTOR-1", "exhibits": {"reference": "K1", "questioned": "Q1"},
        "comparison": {"method": {"name": "congruent-matching-cells/high-cmc", "parameters": {"cells": 8}},
                       "software": {"name": "ballistics", "version": "0.1.0"}},
        "scores": {"cmc": 14, "cmc_forward": 14, "cmc_backward": 15, "cells_compared": 40, "ccf": 0.5,
                   "rotation_deg": 3.0, "translation_um": [12.5, -6.25], "firing_pin": None},
        "conclusion": {"decision": "identification"}, "examiner": {"name": "Vector Examiner"},
        "created": "2026-01-15T09:00:00Z",
        "scans": {"reference": {"sha256": "0" * 64}, "questioned": {"sha256": "1" * 64}},
    }


def scan_bytes() -> bytes:
    """66,000 bytes that look like an x3p (zip magic), so the payload spans two chunks."""
    return b"PK\x03\x04" + hashlib.shake_256(b"vector scan").digest(66000 - 4)


def small_scan(label: bytes = b"small scan") -> bytes:
    return b"PK\x03\x04" + hashlib.shake_256(label).digest(60)


def entry(name: str, kind: str, data: bytes, **extra: object) -> tuple[dict[str, Any], bytes]:
    return {"name": name, "kind": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}, data


# --- building bundles, reusing the committed randomness ---------------------------------------


@dataclass
class Spec:
    """One bundle as the writer makes it, with the deviations a vector needs."""

    files: list[tuple[dict[str, Any], bytes]]
    sender: str = "sender"
    recipients: tuple[str, ...] = ("recipient",)
    signer: str | None = None  # another lab's keys sign (bad signature)
    created: datetime = NOW
    edit: Callable[[dict[str, Any]], None] | None = None
    encode: Callable[[dict[str, Any]], bytes] | None = None
    sig_xor: tuple[int, int] | None = None  # (offset, mask) flipped in the signature block
    manifest_length: int | None = None  # the u32 M as written, when it lies
    signature_length: int | None = None  # the u16 S as written, when it lies
    cut_at_chunk: bool = False  # header says P = 65536 and only chunk 0 is written, sealed as not final
    rng_label: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _old_parts(path: Path) -> tuple[bytes, bytes] | None:
    """(header, rest) of the committed file, if it parses as a bundle header."""
    from exchange.header import read_header

    if not path.exists():
        return None
    data = path.read_bytes()
    try:
        header = read_header(io.BytesIO(data), "old")
    except Exception:  # noqa: BLE001
        return None
    return header.raw, data[header.length :]


def _old_plaintext(rest: bytes, payload_key: bytes, header_hash: bytes) -> bytes:
    """Whatever chunks of the committed payload open (under either last-chunk flag)."""
    from exchange.stream import nonce

    aead, out = AESGCM(payload_key), b""
    for index, start in enumerate(range(0, len(rest), CHUNK + 16)):
        chunk = rest[start : start + CHUNK + 16]
        for last in (True, False):
            try:
                out += aead.decrypt(nonce(index, last), chunk, header_hash)
                break
            except Exception:  # noqa: BLE001
                continue
        else:
            break
    return out


def build(path: Path, spec: Spec, idents: dict[str, Identity]) -> bytes:
    from exchange.canonical import canonical_json
    from exchange.header import HPKE_SUITE, Stanza, derive_keys, encode_header, parse_header, wrap_file_key, wrap_info
    from exchange.manifest import DOMAIN_MANIFEST, SIGNATURE_BYTES
    from exchange.signing import HybridSignature
    from exchange.stream import StreamWriter, nonce

    rng = fixed_rng(spec.rng_label or path.stem.encode())
    bundle_id, file_key = rng(16), rng(32)
    sender = idents[spec.sender].card
    signer = idents[spec.signer or spec.sender]
    old = _old_parts(path)
    old_stanzas = {s.recipient: s for s in parse_header(old[0], "old").stanzas} if old else {}
    stanzas = []
    for role in spec.recipients:
        card = idents[role].card
        reused = old_stanzas.get(card.fingerprint)
        if reused is not None:
            try:
                info = wrap_info(bundle_id, sender.fingerprint, card.fingerprint)
                if HPKE_SUITE.decrypt(reused.wrapped, idents[role].keys.decryption, info=info) != file_key:
                    reused = None
            except Exception:  # noqa: BLE001
                reused = None
        stanzas.append(reused or wrap_file_key(file_key, bundle_id, sender.fingerprint, card.fingerprint, card.encryption_key))
    payload_key, mac_key = derive_keys(file_key, bundle_id)
    cards = [idents[r].card for r in spec.recipients]
    doc: dict[str, Any] = {
        "type": "ballistics-bundle-manifest", "version": 1, "suite": 1,
        "bundle_id": bundle_id.hex(), "header_hash": "0" * 64,
        "sender": {"lab": sender.lab.id, "key_id": sender.key_id},
        "recipients": sorted(({"lab": c.lab.id, "key_id": c.key_id} for c in cards), key=lambda r: r["key_id"]),
        "sequence": 1, "created": _time(spec.created), "expires": _time(spec.created + timedelta(days=30)),
        "files": [dict(e) for e, _ in spec.files],  # copies: an edit must not reach other vectors
    }
    if spec.edit is not None:
        spec.edit(doc)
    encode = spec.encode or canonical_json
    content = b"".join(data for _, data in spec.files)
    full_length = 4 + len(encode(doc)) + 2 + SIGNATURE_BYTES + len(content)
    payload_length = CHUNK if spec.cut_at_chunk else full_length
    header = encode_header(payload_length, bundle_id, sender.fingerprint, stanzas, mac_key)
    if doc.get("header_hash") == "0" * 64:
        doc["header_hash"] = header.hash.hex()
    manifest = encode(doc)
    message = DOMAIN_MANIFEST + b"\x00" + manifest
    verify = signer.signing.verify_key()

    def undo(block: bytes) -> bytes:
        if spec.sig_xor is None:
            return block
        offset, mask = spec.sig_xor
        return block[:offset] + bytes([block[offset] ^ mask]) + block[offset + 1 :]

    signature = None
    if old is not None and old[0] == header.raw:
        plain = _old_plaintext(old[1], payload_key, header.hash)
        at = 4 + len(manifest) + 2
        if plain[4 : 4 + len(manifest)] == manifest and len(plain) >= at + SIGNATURE_BYTES:
            candidate = HybridSignature.from_bytes(undo(plain[at : at + SIGNATURE_BYTES]), where="old")
            try:
                verify.ed25519.verify(candidate.ed25519, message)
                verify.ml_dsa_65.verify(candidate.ml_dsa_65, message, b"ballistics-exchange-v1")
                signature = candidate
            except Exception:  # noqa: BLE001
                signature = None
    if signature is None:
        signature = signer.signing.sign(DOMAIN_MANIFEST, manifest)
    block = undo(signature.to_bytes())
    plaintext = (
        struct.pack(">I", len(manifest) if spec.manifest_length is None else spec.manifest_length)
        + manifest
        + struct.pack(">H", SIGNATURE_BYTES if spec.signature_length is None else spec.signature_length)
        + block
        + content
    )
    assert len(plaintext) == full_length
    if spec.cut_at_chunk:
        assert len(plaintext) > CHUNK
        body = AESGCM(payload_key).encrypt(nonce(0, False), plaintext[:CHUNK], header.hash)
    else:
        sink = io.BytesIO()
        writer = StreamWriter(sink, payload_key, header.hash, len(plaintext))
        writer.write(plaintext)
        writer.close()
        body = sink.getvalue()
    return header.raw + body


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- byte edits of a built bundle ---------------------------------------------------------------


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def put(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    size = struct.calcsize(fmt)
    return data[:offset] + struct.pack(fmt, value) + data[offset + size :]


def header_length(data: bytes) -> int:
    return int(struct.unpack_from(">I", data, 12)[0])


# --- the vectors -----------------------------------------------------------------------------------


def main(out: Path = HERE) -> None:  # noqa: C901, PLR0915 - one flat list of vectors reads best
    """Write every vector, key file and the index under ``out`` (reusing the randomness committed there)."""
    from ballistics.records import record_bytes
    from exchange.canonical import canonical_json
    from exchange.card import Revocation
    from exchange.keys import KeyProtection, _write_private

    roles = list(LABS)
    idents = {role: identity(role, out) for role in roles}
    keys_dir = out / "keys"
    keys_dir.mkdir(exist_ok=True)
    keys: dict[str, Any] = {}
    for role in roles:
        ident = idents[role]
        lab_id = ident.card.lab.id
        (keys_dir / f"{lab_id}.card.json").write_bytes(json.dumps(ident.card.to_dict(), indent=2, sort_keys=True).encode() + b"\n")
        _write_private(
            keys_dir / f"{lab_id}.identity.json", ident.card, ident.keys, PASSPHRASES[lab_id].encode("utf-8"),
            KeyProtection(**SCRYPT), fixed_rng(b"identity " + lab_id.encode()),
        )
        keys[lab_id] = {
            "card": f"keys/{lab_id}.card.json", "identity": f"keys/{lab_id}.identity.json",
            "passphrase": PASSPHRASES[lab_id], "key_id": ident.card.key_id, "seeds": ident.keys.seeds.hex(),
        }
    # the revocation of UK-VECTOR's key (used only by the "revoked sender" vector)
    uk = idents["sender"]
    revocation_path = keys_dir / "UK-VECTOR.revocation.json"
    revocation = Revocation.create(uk.card, uk.signing, datetime(2026, 1, 10, tzinfo=timezone.utc), "vector: key revoked")
    if revocation_path.exists():
        try:
            old = Revocation.from_dict(json.loads(revocation_path.read_bytes()), where="old")
            old.verify(uk.card, where="old")
            if old.body == revocation.body:
                revocation = old
        except Exception:  # noqa: BLE001
            pass
    revocation_path.write_bytes(revocation.to_bytes())
    keys["UK-VECTOR"]["revocation"] = "keys/UK-VECTOR.revocation.json"

    vectors: list[dict[str, Any]] = []
    files_out: dict[str, bytes] = {}
    fr, de, uk_id = "FR-VECTOR", "DE-VECTOR", "UK-VECTOR"

    def add(name: str, data: bytes | None, *, file: str | None = None, reader: str = fr, trust: tuple[str, ...] = (uk_id, de),
            revoked: tuple[str, ...] = (), now: datetime = NOW, description: str, **expect: Any) -> None:
        file = file or f"{name}.bfx"
        if data is not None:
            files_out[file] = data
        vectors.append({"name": name, "file": file, "description": description, "reader": reader, "trust": list(trust),
                        "revoked": list(revoked), "now": _time(now), **expect})

    def accept(files: list[tuple[dict[str, Any], bytes]]) -> dict[str, Any]:
        return {"expect": "accept", "files": [{"name": e["name"], "kind": e["kind"], "size": e["size"], "sha256": e["sha256"]}
                                              for e, _ in files]}

    def refuse(exit_code: int, step: int, rule: str, error: str) -> dict[str, Any]:
        return {"expect": "refuse", "exit": exit_code, "step": step, "rule": rule, "error": error}

    def built(name: str, spec: Spec) -> bytes:
        return build(out / f"{name}.bfx", spec, idents)

    # -- valid bundles --------------------------------------------------------------------------
    record = entry("records/VECTOR-1.json", "record", record_bytes(record_document()))
    big_scan = entry("scans/scan-K1.x3p", "scan", scan_bytes())
    v1_files = [record, big_scan]
    v1 = built("bundle-v1", Spec(v1_files))
    add("bundle-v1", v1, description="a record and a 66,000-byte scan, UK-VECTOR to FR-VECTOR: two chunks (the last one partial)",
        **accept(v1_files))
    scan = entry("scans/K1.x3p", "scan", small_scan())
    minimal = built("valid-minimal", Spec([scan]))
    add("valid-minimal", minimal, description="one small scan, one recipient: the base of most negative vectors", **accept([scan]))
    add("valid-no-files", built("valid-no-files", Spec([])), description="a manifest with an empty file list (P = 4 + M + 2 + S)",
        **accept([]))
    two = built("valid-two-recipients", Spec([scan], recipients=("recipient", "third")))
    add("valid-two-recipients", two, description="addressed to FR-VECTOR and DE-VECTOR (two stanzas, sorted); read by FR-VECTOR",
        **accept([scan]))
    add("valid-two-recipients-read-by-de", None, file="valid-two-recipients.bfx", reader=de, trust=(uk_id,),
        description="the same bundle read by DE-VECTOR, with its own stanza", **accept([scan]))
    odd = small_scan(b"odd name")
    named = entry(f"scans/{hashlib.sha256(odd).hexdigest()}.x3p", "scan", odd, original_name="Fadul 1-1 \u00e9preuve \U0001f52b.x3p")
    add("valid-original-name", built("valid-original-name", Spec([named])),
        description="a scan whose sender file name is not a safe member name travels as scans/<sha256>.x3p with original_name "
                    "(\\u escapes, a surrogate pair)", **accept([named]))
    plain_named = small_scan(b"content named")
    content_named = entry(f"scans/{hashlib.sha256(plain_named).hexdigest()}.x3p", "scan", plain_named)
    add("valid-content-name", built("valid-content-name", Spec([content_named])),
        description="a scan named scans/<sha256>.x3p by its own content's hash, without original_name", **accept([content_named]))
    two_records = [record, entry("records/VECTOR-2.json", "record", record_bytes(record_document(record_id="00000000-0000-4000-8000-000000000002")))]
    add("valid-two-records", built("valid-two-records", Spec(two_records)), description="two match records of the signing lab",
        **accept(two_records))

    # -- clock and reader state (valid-minimal, other circumstances) --------------------------
    expires = NOW + timedelta(days=30)
    add("time-at-expiry", None, file="valid-minimal.bfx", now=expires, description="now == expires: accepted (inclusive)",
        **accept([scan]))
    add("time-expired", None, file="valid-minimal.bfx", now=expires + timedelta(seconds=1), description="one second after expires",
        **refuse(4, 10, "time", "ExpiredBundleError"))
    add("time-skew-limit", None, file="valid-minimal.bfx", now=NOW - timedelta(minutes=5),
        description="created == now + 5 minutes: accepted (inclusive)", **accept([scan]))
    add("time-not-yet-valid", None, file="valid-minimal.bfx", now=NOW - timedelta(minutes=5, seconds=1),
        description="created one second beyond now + 5 minutes", **refuse(4, 10, "time", "ExpiredBundleError"))
    add("not-addressed-to-reader", None, file="valid-minimal.bfx", reader=de, trust=(uk_id,),
        description="read by DE-VECTOR, which has no stanza", **refuse(4, 2, "recipient", "NotARecipientError"))
    add("untrusted-sender", None, file="valid-minimal.bfx", trust=(de,), description="the reader does not trust UK-VECTOR",
        **refuse(4, 3, "sender", "UntrustedSenderError"))
    add("revoked-sender", None, file="valid-minimal.bfx", revoked=(uk_id,),
        description="the reader trusts UK-VECTOR and holds its revocation (keys/UK-VECTOR.revocation.json)",
        **refuse(4, 3, "sender", "RevokedKeyError"))
    add("unknown-sender", built("unknown-sender", Spec([scan], sender="stranger")),
        description="signed by NL-VECTOR, whose card the reader does not hold", **refuse(4, 3, "sender", "UntrustedSenderError"))

    # -- step 1: the header (exit 3), edits of valid-minimal's header ---------------------------
    h = header_length(minimal)
    head = minimal[:h]
    header_cases: list[tuple[str, bytes, str, str]] = [
        ("header-empty", b"", "an empty file", "MalformedBundleError"),
        ("header-bad-magic", flip(head, 1, 0x20), "magic 89 62 46 58 ...", "MalformedBundleError"),
        ("header-magic-newline-mangled", head[:4] + b"\n" + head[6:], "CR LF of the magic turned into LF", "MalformedBundleError"),
        ("header-short-fixed-part", head[:73], "the file ends inside the 74-byte fixed part", "MalformedBundleError"),
        ("header-short", head[:1000], "the file ends before H bytes", "MalformedBundleError"),
        ("header-version-2", put(head, 8, ">H", 2), "version 2", "MalformedBundleError"),
        ("header-suite-2", put(head, 10, ">H", 2), "suite 2", "MalformedBundleError"),
        ("header-length-below-min", put(head, 12, ">I", 1307), "H = 1307", "HeaderLimitError"),
        ("header-length-above-max", put(head, 12, ">I", 65537), "H = 65537", "HeaderLimitError"),
        ("header-payload-length-zero", put(head, 16, ">Q", 0), "P = 0", "MalformedBundleError"),
        ("header-payload-length-above-max", put(head, 16, ">Q", 2**40 + 1), "P = 2^40 + 1", "MalformedBundleError"),
        ("header-stanza-count-zero", put(head, 72, ">H", 0), "N = 0", "HeaderLimitError"),
        ("header-stanza-count-17", put(head, 72, ">H", 17), "N = 17", "HeaderLimitError"),
        ("header-stanza-length-2049", put(head, 74, ">H", 2049), "a stanza of 2049 bytes (above the cap)", "HeaderLimitError"),
        ("header-stanza-length-1199", put(head, 74, ">H", 1199), "a stanza of 1199 bytes (suite 1 needs 1200)", "MalformedBundleError"),
        ("header-extra-byte", put(head[: h - 32] + b"\x00" + head[h - 32 :], 12, ">I", h + 1),
         "one byte between the last stanza and the MAC (H one larger)", "MalformedBundleError"),
    ]
    h2 = header_length(two)
    first, second = two[74 : 74 + 1202], two[74 + 1202 : 74 + 2404]
    header_cases += [
        ("header-stanzas-duplicated", two[:74] + first + first + two[74 + 2404 : h2], "the same stanza twice", "MalformedBundleError"),
        ("header-stanzas-out-of-order", two[:74] + second + first + two[74 + 2404 : h2], "two stanzas in decreasing key id order",
         "MalformedBundleError"),
    ]
    for name, data, what, error in header_cases:
        add(name, data, description=f"{what} (header only; refused before anything else is read)",
            **refuse(3, 1, "header", error))

    # -- steps 2-6: bytes changed after writing (exit 4) ---------------------------------------
    add("tampered-sender-key-id", flip(minimal, 40), description="a bit of the header's sender key id flipped",
        **refuse(4, 3, "sender", "UntrustedSenderError"))
    add("tampered-bundle-id", flip(minimal, 24), description="a bit of the bundle id flipped: the stanza's HPKE info changes",
        **refuse(4, 4, "stanza", "TamperedError"))
    add("tampered-stanza", flip(minimal, 74 + 2 + 32 + 1120 + 5), description="a bit of the stanza's HPKE ciphertext flipped",
        **refuse(4, 4, "stanza", "TamperedError"))
    add("tampered-stanza-enc", flip(minimal, 74 + 2 + 32 + 1100), description="a bit of the stanza's ephemeral X25519 key flipped",
        **refuse(4, 4, "stanza", "TamperedError"))
    add("tampered-header-mac", flip(minimal, h - 1), description="a bit of the header MAC flipped",
        **refuse(4, 4, "stanza", "TamperedError"))
    add("truncated-last-byte", minimal[:-1], description="the last byte cut off", **refuse(4, 5, "length", "TruncatedError"))
    add("truncated-after-header", minimal[:h], description="the whole payload cut off", **refuse(4, 5, "length", "TruncatedError"))
    add("trailing-byte", minimal + b"\x00", description="one byte appended", **refuse(4, 5, "length", "TamperedError"))
    add("tampered-chunk", flip(minimal, h + 20), description="a bit of the (only) chunk flipped",
        **refuse(4, 6, "payload", "TamperedError"))
    hv = header_length(v1)
    c0, c1 = v1[hv : hv + CHUNK + 16], v1[hv + CHUNK + 16 :]
    add("chunks-swapped", v1[:hv] + c1 + c0, description="bundle-v1 with its two chunks in the other order (same length)",
        **refuse(4, 6, "payload", "TamperedError"))
    add("truncated-at-chunk-boundary", built("truncated-at-chunk-boundary", Spec(v1_files, cut_at_chunk=True)),
        description="made by a writer that stops after chunk 0 (sealed as not final) and declares P = 65536: the final chunk is missing",
        **refuse(4, 6, "payload", "TruncatedError"))
    add("manifest-length-zero", built("manifest-length-zero", Spec([scan], manifest_length=0)),
        description="M = 0 in the plaintext", **refuse(3, 6, "payload", "MalformedBundleError"))
    add("manifest-length-above-max", built("manifest-length-above-max", Spec([scan], manifest_length=2**20 + 1)),
        description="M = 1 MiB + 1 in the plaintext", **refuse(3, 6, "payload", "MalformedBundleError"))
    add("manifest-length-past-payload", built("manifest-length-past-payload", Spec([scan], manifest_length=4096)),
        description="M = 4096, within the cap but past the end of the plaintext", **refuse(4, 6, "payload", "ManifestMismatchError"))
    add("signature-length-3372", built("signature-length-3372", Spec([scan], signature_length=3372)),
        description="S = 3372 in the plaintext", **refuse(3, 6, "payload", "MalformedBundleError"))

    # -- receipts: what a receipt bundle holds (read by UK-VECTOR, which sent bundle-v1 to FR-VECTOR) -----
    de_card, uk_card = idents["third"].card, idents["sender"].card
    fr_card = idents["recipient"].card

    def receipt(**change: Any) -> bytes:
        doc = {
            "type": "ballistics-delivery-receipt", "version": 1, "bundle_id": fixed_rng(b"bundle-v1")(16).hex(),
            "header_hash": hashlib.sha256(v1[:hv]).hexdigest(), "sequence": 1,
            "sender": {"lab": uk_card.lab.id, "key_id": uk_card.key_id}, "recipient": {"lab": fr_card.lab.id, "key_id": fr_card.key_id},
            "files": [{"name": e["name"], "sha256": e["sha256"], "size": e["size"]} for e, _ in v1_files],
            "records": ["00000000-0000-4000-8000-000000000001"], "received": "2026-01-15T09:45:00Z",
        }
        doc.update(change)
        return canonical_json(doc)

    def receipt_entry(data: bytes, name: str = "receipts/receipt-1.json") -> tuple[dict[str, Any], bytes]:
        return entry(name, "receipt", data)

    def from_fr(name: str, files: list[tuple[dict[str, Any], bytes]]) -> bytes:
        return built(name, Spec(files, sender="recipient", recipients=("sender",)))

    def from_de(name: str, files: list[tuple[dict[str, Any], bytes]]) -> bytes:
        return built(name, Spec(files, sender="third", recipients=("sender",)))

    def sized_receipt(size: int) -> bytes:
        """A well-formed receipt of exactly ``size`` bytes: its records list padded with record ids (39 bytes each)."""
        ids = [f"00000000-0000-4000-8000-{i:012x}" for i in range(1, (size - len(receipt(records=[]))) // 39 + 1)]
        data = receipt(records=ids)
        ids[-1] += "0" * (size - len(data))
        data = receipt(records=ids)
        assert len(data) == size
        return data

    other_hash = hashlib.sha256(b"not this scan").hexdigest()

    # -- step 7: the manifest's form (exit 3), validly signed -----------------------------------
    def set_field(key: str, value: object, where: str = "") -> Callable[[dict[str, Any]], None]:
        def change(doc: dict[str, Any]) -> None:
            (doc["files"][0] if where == "file" else doc)[key] = value

        return change

    def drop(key: str) -> Callable[[dict[str, Any]], None]:
        return lambda doc: doc.pop(key)

    def spelled(old: bytes, new: bytes) -> Callable[[dict[str, Any]], bytes]:
        return lambda doc: canonical_json(doc).replace(old, new, 1)

    form_cases: list[tuple[str, Spec, str]] = [
        ("manifest-whitespace", Spec([scan], encode=lambda d: json.dumps(d, sort_keys=True).encode()), "canonical but for spaces"),
        ("manifest-key-order", Spec([scan], encode=lambda d: json.dumps(d, separators=(",", ":")).encode()), "keys not sorted"),
        ("manifest-escaped-slash", Spec([scan], encode=spelled(b'"scans/', b'"scans\\/')), "a name spelled scans\\/K1.x3p"),
        ("manifest-upper-case-escape", Spec([named], encode=spelled(b"\\u00e9", b"\\u00E9")),
         "original_name with \\u00E9 (upper-case hex)"),
        ("manifest-raw-utf8", Spec([named], encode=spelled(b"\\u00e9", "\u00e9".encode())), "original_name with raw UTF-8 bytes"),
        ("manifest-float", Spec([scan], encode=spelled(b'"sequence":1', b'"sequence":1.0')), "sequence 1.0"),
        ("manifest-exponent", Spec([scan], encode=spelled(b'"sequence":1', b'"sequence":1e0')), "sequence 1e0"),
        ("manifest-nan", Spec([scan], encode=spelled(b'"sequence":1', b'"sequence":NaN')), "sequence NaN"),
        ("manifest-duplicated-key", Spec([scan], encode=spelled(b'"sequence":1', b'"sequence":1,"sequence":1')), "sequence twice"),
        ("manifest-version-true", Spec([scan], edit=set_field("version", True)), "version true (boolean as integer)"),
        ("manifest-suite-true", Spec([scan], edit=set_field("suite", True)), "suite true"),
        ("manifest-sequence-true", Spec([scan], edit=set_field("sequence", True)), "sequence true"),
        ("manifest-size-true", Spec([entry("scans/K1.x3p", "scan", b"P")], edit=set_field("size", True, "file")),
         "a file size true (the file is 1 byte)"),
        ("manifest-version-2", Spec([scan], edit=set_field("version", 2)), "version 2"),
        ("manifest-sequence-zero", Spec([scan], edit=set_field("sequence", 0)), "sequence 0"),
        ("manifest-sequence-too-large", Spec([scan], edit=set_field("sequence", 2**53)), "sequence 2^53"),
        ("manifest-missing-field", Spec([scan], edit=drop("expires")), "no expires field"),
        ("manifest-extra-field", Spec([scan], edit=set_field("comment", "x")), "an extra field"),
        ("manifest-wrong-type", Spec([scan], edit=set_field("type", "ballistics-bundle")), "type not ballistics-bundle-manifest"),
        ("manifest-bad-time", Spec([scan], edit=set_field("created", "2026-01-15T09:30:00+00:00")), "created not in the Z form"),
        ("manifest-created-equals-expires", Spec([scan], edit=set_field("expires", _time(NOW))), "created == expires"),
        ("manifest-upper-case-hex", Spec([scan], edit=lambda d: d["files"][0].update(sha256=d["files"][0]["sha256"].upper())),
         "a file sha256 in upper-case hex"),
        ("member-name-traversal", Spec([entry("scans/../K1.x3p", "scan", small_scan())]), "member name scans/../K1.x3p"),
        ("member-name-absolute", Spec([entry("/scans/K1.x3p", "scan", small_scan())]), "member name /scans/K1.x3p"),
        ("member-name-dot-start", Spec([entry("scans/.K1.x3p", "scan", small_scan())]), "member base starting with a dot"),
        ("member-kind-mismatch", Spec([entry("records/K1.x3p", "scan", small_scan())]), "a scan filed under records/"),
        ("member-unknown-kind", Spec([entry("notes/K1.txt", "note", b"hello")]), "kind note"),
        ("member-duplicate-name", Spec([scan, entry("scans/k1.x3p", "scan", small_scan(b"other"))]),
         "scans/K1.x3p and scans/k1.x3p (equal ignoring ASCII case)"),
        ("member-scan-not-x3p", Spec([entry("scans/K1.zip", "scan", small_scan())]), "a scan named K1.zip"),
        ("member-original-name-is-safe", Spec([entry(named[0]["name"], "scan", odd, original_name="K1.x3p")]),
         "original_name that is itself a safe member name"),
        ("member-original-name-control", Spec([entry(named[0]["name"], "scan", odd, original_name="K1\n.x3p")]),
         "original_name with a line feed"),
        ("member-original-name-on-safe-name", Spec([entry("scans/K1.x3p", "scan", small_scan(), original_name="Fadul 1-1.x3p")]),
         "original_name on a scan named scans/K1.x3p (only a scan named by its content's hash may carry one)"),
        ("member-original-name-on-record", Spec([entry(record[0]["name"], "record", record[1], original_name="Dossier 1.json")]),
         "original_name on a record"),
        ("member-content-name-other-hash", Spec([entry(f"scans/{other_hash}.x3p", "scan", small_scan())]),
         "a scan named by a SHA-256 that is not its entry's sha256 (nor its content's)"),
        ("member-content-name-other-hash-original-name",
         Spec([entry(f"scans/{other_hash}.x3p", "scan", small_scan(), original_name="Fadul 1-1.x3p")]),
         "the same with an original_name, as a writer gives it"),
        ("member-content-name-upper-case", Spec([entry(content_named[0]["name"].upper().replace("SCANS/", "scans/"), "scan", plain_named)]),
         "a scan named by its content's SHA-256 in upper-case hex (and .X3P)"),
        ("receipt-over-limit", Spec([receipt_entry(sized_receipt(MAX_RECEIPT + 1))], sender="recipient", recipients=("sender",)),
         f"a receipt of {MAX_RECEIPT + 1:,} bytes (one over the cap), otherwise well-formed"),
        ("record-size-over-limit", Spec([record], edit=lambda d: d["files"][0].update(size=MAX_RECORD + 1)),
         f"a record entry declaring {MAX_RECORD + 1:,} bytes (one over the cap; the bundle carries fewer, which step 9 would also refuse)"),
    ]
    for name, spec, what in form_cases:
        at_uk_if_receipt = {"reader": uk_id, "trust": (fr,)} if spec.sender == "recipient" else {}
        add(name, built(name, spec), description=f"validly signed manifest: {what}", **at_uk_if_receipt,
            **refuse(3, 7, "manifest-form", "MalformedBundleError"))

    # -- step 8: signatures (exit 4) ------------------------------------------------------------
    add("bad-signature-ed25519", built("bad-signature-ed25519", Spec([scan], sig_xor=(3, 0x01))),
        description="a bit of the Ed25519 signature flipped (ML-DSA-65 valid)", **refuse(4, 8, "signature", "BadSignatureError"))
    add("bad-signature-ml-dsa", built("bad-signature-ml-dsa", Spec([scan], sig_xor=(64 + 100, 0x01))),
        description="a bit of the ML-DSA-65 signature flipped (Ed25519 valid)", **refuse(4, 8, "signature", "BadSignatureError"))
    add("signed-by-other-key", built("signed-by-other-key", Spec([scan], signer="third")),
        description="header and manifest name UK-VECTOR, DE-VECTOR's keys signed", **refuse(4, 8, "signature", "BadSignatureError"))

    # -- step 9: manifest against header and keys (exit 4) ------------------------------------
    def recipients_edit(change: Callable[[list[dict[str, str]]], None]) -> Callable[[dict[str, Any]], None]:
        return lambda doc: change(doc["recipients"])

    mismatch_cases: list[tuple[str, Spec, str]] = [
        ("mismatch-bundle-id", Spec([scan], edit=set_field("bundle_id", "00" * 16)), "bundle_id not the header's"),
        ("mismatch-header-hash", Spec([scan], edit=set_field("header_hash", "11" * 32)), "header_hash not the header's"),
        ("mismatch-sender-key-id", Spec([scan], edit=set_field("sender", {"lab": "UK-VECTOR", "key_id": de_card.key_id})),
         "sender key_id not the header's"),
        ("mismatch-sender-lab", Spec([scan], edit=set_field("sender", {"lab": "DE-VECTOR", "key_id": uk_card.key_id})),
         "sender lab not the trusted card's"),
        ("mismatch-recipients", Spec([scan], edit=recipients_edit(lambda r: (r.append({"lab": "DE-VECTOR", "key_id": de_card.key_id}),
                                                                              r.sort(key=lambda x: x["key_id"])))),
         "a recipient listed that has no stanza"),
        ("mismatch-recipient-lab", Spec([scan], edit=recipients_edit(lambda r: r[0].update(lab="DE-VECTOR"))),
         "the reader's own key listed under another lab"),
        ("mismatch-recipient-lab-known-key", Spec([scan], recipients=("recipient", "third"),
                                                  edit=recipients_edit(lambda r: [x.update(lab="XX-OTHER") for x in r if x["key_id"] == de_card.key_id])),
         "a key the reader trusts (DE-VECTOR's) listed under another lab"),
        ("mismatch-recipients-order", Spec([scan], recipients=("recipient", "third"), edit=recipients_edit(lambda r: r.reverse())),
         "both recipients listed, in decreasing key id order"),
        ("mismatch-payload-length", Spec([scan], edit=lambda d: d["files"][0].update(size=d["files"][0]["size"] + 1)),
         "a file size one more than the bytes carried, so P != 4 + M + 2 + S + sum(size)"),
    ]
    for name, spec, what in mismatch_cases:
        add(name, built(name, spec), description=f"validly signed: {what}", **refuse(4, 9, "manifest-match", "ManifestMismatchError"))
    add("record-size-at-limit", built("record-size-at-limit", Spec([record], edit=lambda d: d["files"][0].update(size=MAX_RECORD))),
        description=f"validly signed: a record entry declaring exactly {MAX_RECORD:,} bytes (the cap: passes step 7) while the bundle "
                    "carries fewer, so P differs; a reader refusing it at step 7 has the cap off by one. No vector carries a 4 MiB "
                    "record: that is 4.2 MB of ciphertext, which does not compress (docs/bundle-format.md, section 8)",
        **refuse(4, 9, "manifest-match", "ManifestMismatchError"))
    add("recipient-lab-unknown-key", built("recipient-lab-unknown-key", Spec(
        [scan], recipients=("recipient", "stranger"),
        edit=recipients_edit(lambda r: [x.update(lab="XX-OTHER") for x in r if x["lab"] == "NL-VECTOR"]))),
        description="a recipient key the reader does not know, under any lab name: taken as named", **accept([scan]))

    # -- step 10: card validity (exit 4) -------------------------------------------------------
    early = CREATED - timedelta(days=1)
    add("card-not-valid-at-created", built("card-not-valid-at-created", Spec([scan], created=early)),
        now=early + timedelta(days=1), description="created a day before the sender card's not_before",
        **refuse(4, 10, "time", "KeyValidityError"))

    # -- step 11: the files (exit 4 or 3) ------------------------------------------------------
    wrong = entry("scans/K1.x3p", "scan", small_scan())
    named_wrong = entry(f"scans/{other_hash}.x3p", "scan", small_scan())
    named_wrong[0]["sha256"] = other_hash
    wrong[0]["sha256"] = hashlib.sha256(b"something else").hexdigest()
    add("file-hash-mismatch", built("file-hash-mismatch", Spec([wrong])), description="a file whose SHA-256 is not the manifest's",
        **refuse(4, 11, "files", "ManifestMismatchError"))
    add("scan-not-zip", built("scan-not-zip", Spec([entry("scans/K1.x3p", "scan", b"not a zip archive")])),
        description="a scan that does not start with PK 03 04", **refuse(3, 11, "files", "MalformedBundleError"))
    add("member-content-name-content-differs", built("member-content-name-content-differs", Spec([named_wrong])),
        description="a scan named by the SHA-256 its entry states, carrying other content", **refuse(4, 11, "files", "ManifestMismatchError"))
    add("record-not-json", built("record-not-json", Spec([entry("records/R.json", "record", b"not json")])),
        description="a record that is not JSON", **refuse(3, 11, "files", "RecordError"))

    # -- step 13: content rules (exit 4) --------------------------------------------------------
    foreign = [entry("records/VECTOR-1.json", "record", record_bytes(record_document(lab_id="DE-VECTOR")))]
    add("record-of-another-lab", built("record-of-another-lab", Spec(foreign)),
        description="UK-VECTOR signs a record of lab DE-VECTOR", **refuse(4, 13, "content", "ForeignContentError"))

    # -- receipts (read by UK-VECTOR, which sent bundle-v1 to FR-VECTOR) ---------------------------
    ok = [receipt_entry(receipt())]
    fr_record = entry("records/FR-1.json", "record", record_bytes(record_document(lab_id="FR-VECTOR")))
    at_uk = {"reader": uk_id, "trust": (fr,), "sent": ["bundle-v1.bfx"]}
    add("receipt-valid", from_fr("receipt-valid", ok), description="FR-VECTOR's receipt for bundle-v1, read by its sender UK-VECTOR",
        **at_uk, **accept(ok))
    at_limit = [receipt_entry(sized_receipt(MAX_RECEIPT))]
    add("receipt-at-limit", from_fr("receipt-at-limit", at_limit),
        description=f"a receipt of exactly {MAX_RECEIPT:,} bytes (the cap; its records list padded with record ids)", **at_uk,
        **accept(at_limit))
    add("receipt-not-canonical", from_fr("receipt-not-canonical", [receipt_entry(json.dumps(json.loads(receipt()), indent=1).encode())]),
        description="a receipt pretty-printed", **at_uk, **refuse(3, 11, "files", "MalformedBundleError"))
    add("receipt-missing-field", from_fr("receipt-missing-field", [receipt_entry(canonical_json(
        {k: v for k, v in json.loads(receipt()).items() if k != "received"}))]),
        description="a receipt without its received field", **at_uk, **refuse(3, 11, "files", "MalformedBundleError"))
    add("receipt-beside-record", from_fr("receipt-beside-record", [fr_record, *ok]),
        description="a receipt and a record of the signing lab in one bundle", **at_uk, **refuse(3, 13, "content", "MalformedBundleError"))
    add("receipt-two", from_fr("receipt-two", [*ok, receipt_entry(receipt(received="2026-01-15T09:46:00Z"), "receipts/receipt-2.json")]),
        description="two receipts in one bundle", **at_uk, **refuse(3, 13, "content", "MalformedBundleError"))
    add("receipt-not-our-bundle", from_fr("receipt-not-our-bundle", [receipt_entry(receipt(sender={"lab": de, "key_id": de_card.key_id}))]),
        description="a receipt for a bundle DE-VECTOR sent", **at_uk, **refuse(4, 13, "content", "ForeignContentError"))
    add("receipt-wrong-recipient", from_fr("receipt-wrong-recipient", [receipt_entry(receipt(recipient={"lab": de, "key_id": de_card.key_id}))]),
        description="a receipt in DE-VECTOR's name, signed by FR-VECTOR", **at_uk, **refuse(4, 13, "content", "ForeignContentError"))
    add("receipt-never-sent", from_fr("receipt-never-sent", [receipt_entry(receipt(bundle_id="5e" * 16))]),
        description="a receipt for a bundle id UK-VECTOR never sent", **at_uk, **refuse(4, 13, "content", "ReceiptMismatchError"))
    add("receipt-wrong-header-hash", from_fr("receipt-wrong-header-hash", [receipt_entry(receipt(header_hash="00" * 32))]),
        description="a receipt for bundle-v1 with another header hash", **at_uk, **refuse(4, 13, "content", "ReceiptMismatchError"))
    wrong_file = [{**f, "sha256": "11" * 32} for f in json.loads(receipt())["files"]]
    add("receipt-wrong-file-hash", from_fr("receipt-wrong-file-hash", [receipt_entry(receipt(files=wrong_file))]),
        description="a receipt for bundle-v1 confirming a file with another SHA-256", **at_uk,
        **refuse(4, 13, "content", "ReceiptMismatchError"))
    add("receipt-from-a-lab-not-sent-to", from_de("receipt-from-a-lab-not-sent-to", [receipt_entry(
        receipt(recipient={"lab": de, "key_id": de_card.key_id}))]),
        description="DE-VECTOR's receipt for bundle-v1, which was sent to FR-VECTOR only", reader=uk_id, trust=(fr, de),
        sent=["bundle-v1.bfx"], **refuse(4, 13, "content", "ReceiptMismatchError"))

    # -- write -------------------------------------------------------------------------------------
    for stale in out.glob("*.bfx"):
        if stale.name not in files_out:
            stale.unlink()
    for name, data in files_out.items():
        (out / name).write_bytes(data)
    for vector in vectors:
        vector["sha256"] = hashlib.sha256((out / vector["file"]).read_bytes()).hexdigest()
    index = {
        "description": "Conformance vectors of the bundle format, version 1: see tests/vectors/README.md and "
                       "docs/bundle-format.md, 'Conformance vectors'",
        "keys": keys,
        "not_covered": {
            "12 final": "nothing after the last file is implied by step 9 (P equal to 4 + M + 2 + S + sum(size)) and a missing final "
                        "chunk by step 6: no bundle reaches step 12 with only that wrong",
            "14 ledger": "the replay ledger and stored records depend on the reader's store, not on the bundle: no stateless vector",
        },
        "vectors": vectors,
    }
    (out / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # vectors.json: the description of bundle-v1.bfx that tests/test_bundle.py reads
    rng = fixed_rng(b"bundle-v1")
    bundle_id, file_key = rng(16), rng(32)
    doc = {
        "description": "Bundle format v1 vectors; see docs/bundle-format.md and tests/vectors/make_vectors.py",
        "now": _time(NOW),
        "labs": {role: {"lab": LABS[role][0], "seeds": seeds(LABS[role][2]).hex(), "key_id": idents[role].card.key_id,
                        "card": idents[role].card.to_dict()} for role in ("sender", "recipient")},
        "bundle": {"file": "bundle-v1.bfx", "bundle_id": bundle_id.hex(), "file_key": file_key.hex(),
                   "sha256": hashlib.sha256((out / "bundle-v1.bfx").read_bytes()).hexdigest(),
                   "files": {e["name"]: e["sha256"] for e, _ in v1_files}},
    }
    (out / "vectors.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
