"""A minimal bundle reader written from docs/bundle-format.md and docs/exchange.md alone.

It imports only ``cryptography`` and the standard library, never this project's modules, so that
it checks the specification rather than repeating the code: ``tests/test_minimal_reader.py``
runs it over the conformance vectors of ``tests/vectors/`` and requires the outcome, exit class
and step of ``index.json``. It keeps everything in memory (vectors are small) and is not meant
for use.

What it does not do, and so never claims: validate a record against
``docs/match-record.schema.json`` (it requires a record to be UTF-8 JSON and reads its
``lab.id``; no vector holds a record that is JSON but breaks the schema), and step 14 (the
replay ledger needs a store). Chunks are all decrypted at step 6, before the
manifest is parsed: a chunk that fails is refused there (exit 4), where a streaming reader may
meet it later (section 5 allows any of steps 6-11); every vector that fails a chunk fails its
first one, so the step agrees.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import struct
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"\x89BFX\r\n\x1a\n"
CHUNK = 65536
SIGNATURE_BYTES = 64 + 3309
MLDSA_CONTEXT = b"ballistics-exchange-v1"
MAX_INT = 2**53 - 1
MANIFEST_FIELDS = {
    "type",
    "version",
    "suite",
    "bundle_id",
    "header_hash",
    "sender",
    "recipients",
    "sequence",
    "created",
    "expires",
    "files",
}
PREFIX = {"record": "records", "scan": "scans", "receipt": "receipts"}
BASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
HEX32, HEX64 = re.compile(r"[0-9a-f]{32}"), re.compile(r"[0-9a-f]{64}")
CONTENT_NAME = re.compile(r"[0-9A-Fa-f]{64}\.[Xx]3[Pp]")  # a scan base that reads as a SHA-256
SIZE_CAP = {"record": 4 * 2**20, "receipt": 65536}
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
HPKE_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
RULES = {
    1: "header",
    2: "recipient",
    3: "sender",
    4: "stanza",
    5: "length",
    6: "payload",
    7: "manifest-form",
    8: "signature",
    9: "manifest-match",
    10: "time",
    11: "files",
    12: "final",
    13: "content",
    14: "ledger",
}


class Refused(Exception):
    """A refusal: exit class 3 (malformed) or 4 (security), at a step of section 5."""

    def __init__(self, exit_code: int, step: int, reason: str) -> None:
        super().__init__(f"exit {exit_code}, step {step} ({RULES[step]}): {reason}")
        self.exit, self.step, self.rule = exit_code, step, RULES[step]


def canonical(doc: Any) -> bytes:
    """Section 3.6: exactly Python's json.dumps with sorted keys, no spaces, ASCII escapes."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not TIME.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _required_time(text: object) -> datetime:
    moment = parse_time(text)
    if moment is None:
        raise ValueError(f"not a YYYY-MM-DDTHH:MM:SSZ time: {text!r}")
    return moment


def is_int(value: object, low: int = 0, high: int = MAX_INT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def b64(text: str) -> bytes:
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode() != text:
        raise ValueError("base64 not canonical")
    return data


def strict_json(data: bytes) -> Any:
    """JSON with no floats, NaN/Infinity or duplicated keys (raises ValueError)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError("duplicated key")
            out[key] = value
        return out

    def no_float(text: str) -> Any:
        raise ValueError(f"float {text}")

    def no_constant(text: str) -> Any:
        raise ValueError(text)

    return json.loads(data, object_pairs_hook=pairs, parse_float=no_float, parse_constant=no_constant)


# --- keys (docs/exchange.md) ----------------------------------------------------------------------


@dataclass
class Card:
    body: dict[str, Any]
    key_id: bytes
    lab: str
    ed25519: ed25519.Ed25519PublicKey
    ml_dsa_65: mldsa.MLDSA65PublicKey
    not_before: datetime
    not_after: datetime

    def verify(self, domain: bytes, message: bytes, signature: bytes) -> bool:
        data = domain + b"\x00" + message
        try:
            self.ed25519.verify(signature[:64], data)
            self.ml_dsa_65.verify(signature[64:], data, MLDSA_CONTEXT)
        except InvalidSignature:
            return False
        return True


def load_card(doc: dict[str, Any]) -> Card:
    body = doc["body"]
    keys = body["keys"]
    card = Card(
        body,
        hashlib.sha256(canonical(body)).digest(),
        body["lab"]["id"],
        ed25519.Ed25519PublicKey.from_public_bytes(b64(keys["ed25519"])),
        mldsa.MLDSA65PublicKey.from_public_bytes(b64(keys["ml_dsa_65"])),
        _required_time(body["not_before"]),
        _required_time(body["not_after"]),
    )
    own = doc["signatures"]["self"]
    if not card.verify(b"ballistics key card v1", canonical(body), b64(own["ed25519"]) + b64(own["ml_dsa_65"])):
        raise ValueError("card self-signature does not verify")
    return card


@dataclass
class PrivateKeys:
    card: Card
    decryption: hpke.MLKEM768X25519PrivateKey


def load_private(doc: dict[str, Any], passphrase: str) -> PrivateKeys:
    """The private-key file: scrypt, then AES-256-GCM over the 160 seed bytes, key id in the AAD."""
    card = load_card(doc["card"])
    kdf = doc["kdf"]
    key = hashlib.scrypt(passphrase.encode("utf-8"), salt=b64(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"], maxmem=2**31 - 1, dklen=32)
    seeds = AESGCM(key).decrypt(b64(doc["nonce"]), b64(doc["ciphertext"]), b"ballistics private keys v1\x00" + card.key_id)
    ed, ml_dsa, x, ml_kem = seeds[:32], seeds[32:64], seeds[64:96], seeds[96:160]
    mlkem_key, x_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(ml_kem), x25519.X25519PrivateKey.from_private_bytes(x)
    public = {
        "ed25519": ed25519.Ed25519PrivateKey.from_private_bytes(ed).public_key().public_bytes_raw(),
        "ml_dsa_65": mldsa.MLDSA65PrivateKey.from_seed_bytes(ml_dsa).public_key().public_bytes_raw(),
        "x25519": x_key.public_key().public_bytes_raw(),
        "ml_kem_768": mlkem_key.public_key().public_bytes_raw(),
    }
    if public != {name: b64(value) for name, value in card.body["keys"].items()}:
        raise ValueError("private keys do not match the card")
    return PrivateKeys(card, hpke.MLKEM768X25519PrivateKey(mlkem_key, x_key))


def revoked_key_id(doc: dict[str, Any], card: Card) -> bytes:
    """The key id a revocation revokes, after checking it is signed by that key."""
    body = doc["body"]
    signature = doc["signatures"]["self"]
    if bytes.fromhex(body["key_id"]) != card.key_id or not card.verify(
        b"ballistics key revocation v1", canonical(body), b64(signature["ed25519"]) + b64(signature["ml_dsa_65"])
    ):
        raise ValueError("revocation does not verify")
    return card.key_id


@dataclass
class Reader:
    ours: list[PrivateKeys]  # current and retired
    trusted: dict[bytes, Card]
    revoked: set[bytes] = field(default_factory=set)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # bundle id -> manifest of what this lab sent


# --- the reader (section 5) --------------------------------------------------------------------


def read_bundle(
    data: bytes, reader: Reader, now: datetime, manifests: list[dict[str, Any]] | None = None
) -> list[tuple[dict[str, Any], bytes]]:
    """The files of a bundle that passes every check, or :class:`Refused` at the first failure (its manifest appended to ``manifests``)."""
    # 1. header
    if len(data) < 8 or data[:8] != MAGIC:
        raise Refused(3, 1, "bad magic or empty")
    if len(data) < 74:
        raise Refused(3, 1, "ends inside the fixed part")
    version, suite, length, payload_length = struct.unpack_from(">HHIQ", data, 8)
    bundle_id, sender_id = data[24:40], data[40:72]
    (count,) = struct.unpack_from(">H", data, 72)
    if version != 1 or suite != 1:
        raise Refused(3, 1, "unknown version or suite")
    if not 1308 <= length <= 65536 or not 1 <= count <= 16 or not 1 <= payload_length <= 2**40:
        raise Refused(3, 1, "H, N or P outside its cap")
    if len(data) < length:
        raise Refused(3, 1, "ends before H")
    header = data[:length]
    offset, end, stanzas = 74, length - 32, []
    for _ in range(count):
        if offset + 2 > end:
            raise Refused(3, 1, "stanza past the end")
        (size,) = struct.unpack_from(">H", header, offset)
        if size > 2048 or size != 1200 or offset + 2 + size > end:
            raise Refused(3, 1, "stanza length")
        body = header[offset + 2 : offset + 2 + size]
        if stanzas and body[:32] <= stanzas[-1][0]:
            raise Refused(3, 1, "stanzas not strictly increasing")
        stanzas.append((body[:32], body[32:]))
        offset += 2 + size
    if offset != end:
        raise Refused(3, 1, "header does not end at H")
    # 2. our stanza
    mine = next(((kid, wrapped, k) for kid, wrapped in stanzas for k in reader.ours if k.card.key_id == kid), None)
    if mine is None:
        raise Refused(4, 2, "not addressed to this lab")
    # 3. sender
    card = reader.trusted.get(sender_id)
    if card is None:
        raise Refused(4, 3, "untrusted sender")
    if sender_id in reader.revoked:
        raise Refused(4, 3, "revoked sender")
    # 4. stanza and header MAC
    info = b"ballistics-bundle v1\x00" + struct.pack(">HH", 1, 1) + bundle_id + sender_id + mine[0]
    try:
        file_key = HPKE_SUITE.decrypt(mine[1], mine[2].decryption, info=info)
    except (InvalidTag, ValueError):
        raise Refused(4, 4, "stanza does not open") from None
    if len(file_key) != 32:
        raise Refused(4, 4, "file key length")

    def hkdf(label: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=bundle_id, info=b"ballistics-bundle v1 " + label).derive(file_key)

    payload_key, mac_key = hkdf(b"payload"), hkdf(b"header")
    if not hmac.compare_digest(hmac.new(mac_key, header[:-32], hashlib.sha256).digest(), header[-32:]):
        raise Refused(4, 4, "header altered")
    header_hash = hashlib.sha256(header).digest()
    # 5. length
    chunks = math.ceil(payload_length / CHUNK)
    expected = length + payload_length + 16 * chunks
    if len(data) != expected:
        raise Refused(4, 5, "truncated" if len(data) < expected else "trailing bytes")
    # 6. chunks, M, S
    aead, plain = AESGCM(payload_key), bytearray()
    for index in range(chunks):
        start = length + index * (CHUNK + 16)
        chunk = data[start : start + CHUNK + 16] if index < chunks - 1 else data[start:]
        last = index == chunks - 1
        try:
            plain += aead.decrypt(index.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), chunk, header_hash)
        except InvalidTag:
            if last:
                try:
                    aead.decrypt(index.to_bytes(11, "big") + b"\x00", chunk, header_hash)
                    raise Refused(4, 6, "final chunk sealed as not final: truncated at a chunk boundary")
                except InvalidTag:
                    pass
            raise Refused(4, 6, f"chunk {index} does not open") from None

    def ends_before(size: int) -> bool:  # a plaintext shorter than what it announces: manifest mismatch
        return size > len(plain)

    if ends_before(4):
        raise Refused(4, 6, "plaintext ends before M")
    (m,) = struct.unpack_from(">I", plain, 0)
    if not 1 <= m <= 2**20:
        raise Refused(3, 6, "manifest length outside 1..1 MiB")
    if ends_before(4 + m + 2):
        raise Refused(4, 6, "plaintext ends before the manifest and S")
    manifest_bytes = bytes(plain[4 : 4 + m])
    (s,) = struct.unpack_from(">H", plain, 4 + m)
    if s != SIGNATURE_BYTES:
        raise Refused(3, 6, "signature length")
    if ends_before(4 + m + 2 + s):
        raise Refused(4, 6, "plaintext ends inside the signature")
    signature = bytes(plain[4 + m + 2 : 4 + m + 2 + s])
    # 7. the manifest's form
    manifest = manifest_form(manifest_bytes)
    # 8. signatures
    if not card.verify(b"ballistics bundle manifest v1", manifest_bytes, signature):
        raise Refused(4, 8, "bad signature")
    # 9. against the header and our keys
    labs = {k.card.key_id.hex(): k.card.lab for k in reader.ours} | {kid.hex(): c.lab for kid, c in reader.trusted.items()}
    files = manifest["files"]
    if (
        manifest["bundle_id"] != bundle_id.hex()
        or manifest["header_hash"] != header_hash.hex()
        or manifest["sender"]["key_id"] != sender_id.hex()
        or manifest["sender"]["lab"] != card.lab
        or [r["key_id"] for r in manifest["recipients"]] != [kid.hex() for kid, _ in stanzas]
        or any(labs.get(r["key_id"], r["lab"]) != r["lab"] for r in manifest["recipients"])
        or payload_length != 4 + m + 2 + s + sum(f["size"] for f in files)
    ):
        raise Refused(4, 9, "manifest mismatch")
    # 10. time
    created, expires = parse_time(manifest["created"]), parse_time(manifest["expires"])
    assert created is not None and expires is not None
    if not (created <= now + timedelta(minutes=5) and now <= expires) or expires - created > timedelta(days=90):
        raise Refused(4, 10, "expired, not yet valid, or a lifetime above 90 days")
    if not card.not_before <= created <= card.not_after or now > card.not_after + timedelta(days=14):
        raise Refused(4, 10, "sender card not valid at created, or expired more than 14 days ago")
    # 11. files
    out, at = [], 4 + m + 2 + s
    for entry in files:
        content = bytes(plain[at : at + entry["size"]])
        at += entry["size"]
        if len(content) != entry["size"] or hashlib.sha256(content).hexdigest() != entry["sha256"]:
            raise Refused(4, 11, "file hash mismatch")
        if entry["kind"] == "scan" and not content.startswith(b"PK\x03\x04"):
            raise Refused(3, 11, "scan is not a zip")
        if entry["kind"] == "record":
            try:
                record = json.loads(content.decode("utf-8"))
                lab = record["lab"]["id"]
            except (ValueError, KeyError, TypeError):
                raise Refused(3, 11, "record is not a JSON record") from None
            entry = {**entry, "_record_lab": lab}
        if entry["kind"] == "receipt":
            entry = {**entry, "_receipt": receipt_form(content)}
        out.append((entry, content))
    # 12. nothing after the last file (P was compared with the sizes in step 9)
    if at != len(plain):
        raise Refused(4, 12, "bytes after the last file")
    # 13. content
    if any(e.get("_record_lab", card.lab) != card.lab for e, _ in out):
        raise Refused(4, 13, "a record of another lab")
    receipts = [e["_receipt"] for e, _ in out if "_receipt" in e]
    if receipts and len(out) != 1:
        raise Refused(3, 13, "a receipt not alone in its bundle")
    for doc in receipts:
        if not any(doc["sender"] == {"lab": k.card.lab, "key_id": k.card.key_id.hex()} for k in reader.ours):
            raise Refused(4, 13, "a receipt for a bundle this lab did not send")
        if doc["recipient"] != {"lab": card.lab, "key_id": sender_id.hex()}:
            raise Refused(4, 13, "a receipt in the name of another lab or key than the signer's")
        sent = reader.sent.get(doc["bundle_id"])
        if (
            sent is None
            or doc["recipient"]["lab"] not in {r["lab"] for r in sent["recipients"]}
            or (doc["header_hash"], doc["sequence"], doc["sender"]["key_id"])
            != (sent["header_hash"], sent["sequence"], sent["sender"]["key_id"])
            or sorted((f["name"], f["sha256"], f["size"]) for f in doc["files"])
            != sorted((f["name"], f["sha256"], f["size"]) for f in sent["files"])
        ):
            raise Refused(4, 13, "a receipt that does not match what this lab sent")
    if manifests is not None:
        manifests.append(manifest)
    return [({k: v for k, v in e.items() if not k.startswith("_")}, c) for e, c in out]


RECEIPT_FIELDS = {"type", "version", "bundle_id", "header_hash", "sequence", "sender", "recipient", "files", "records", "received"}


def receipt_form(data: bytes) -> dict[str, Any]:
    """docs/import.md, 'Receipts': a well-formed receipt (exit 3 otherwise, at step 11)."""

    def party(value: Any) -> bool:
        return (
            isinstance(value, dict) and set(value) == {"lab", "key_id"} and isinstance(value["lab"], str) and hexes(value["key_id"], HEX64)
        )

    def hexes(value: Any, pattern: re.Pattern[str]) -> bool:
        return isinstance(value, str) and pattern.fullmatch(value) is not None

    def file(value: Any) -> bool:
        return (
            isinstance(value, dict)
            and set(value) == {"name", "sha256", "size"}
            and isinstance(value["name"], str)
            and hexes(value["sha256"], HEX64)
            and is_int(value["size"])
        )

    try:
        if any(not 0x20 <= byte <= 0x7E for byte in data):
            raise ValueError("not ASCII")
        doc = strict_json(data)
    except ValueError:
        raise Refused(3, 11, "receipt is not ASCII JSON") from None
    if not isinstance(doc, dict) or set(doc) != RECEIPT_FIELDS or canonical(doc) != data:
        raise Refused(3, 11, "receipt fields or spelling")
    if not (
        doc["type"] == "ballistics-delivery-receipt"
        and is_int(doc["version"], 1, 1)
        and hexes(doc["bundle_id"], HEX32)
        and hexes(doc["header_hash"], HEX64)
        and is_int(doc["sequence"], 1)
        and party(doc["sender"])
        and party(doc["recipient"])
        and isinstance(doc["files"], list)
        and all(file(f) for f in doc["files"])
        and isinstance(doc["records"], list)
        and all(isinstance(r, str) for r in doc["records"])
        and parse_time(doc["received"]) is not None
    ):
        raise Refused(3, 11, "receipt field forms")
    return doc


def manifest_form(data: bytes) -> dict[str, Any]:
    """Step 7: every check of the manifest's form (exit 3)."""

    def bad(why: str) -> Refused:
        return Refused(3, 7, why)

    if any(not 0x20 <= byte <= 0x7E for byte in data):
        raise bad("not ASCII")
    try:
        doc = strict_json(data)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not isinstance(doc, dict) or set(doc) != MANIFEST_FIELDS:
        raise bad("fields")
    if canonical(doc) != data:
        raise bad("not canonical")
    if doc["type"] != "ballistics-bundle-manifest" or not is_int(doc["version"], 1, 1) or not is_int(doc["suite"], 1, 1):
        raise bad("type, version or suite")
    if not isinstance(doc["bundle_id"], str) or not HEX32.fullmatch(doc["bundle_id"]):
        raise bad("bundle_id")
    if not isinstance(doc["header_hash"], str) or not HEX64.fullmatch(doc["header_hash"]):
        raise bad("header_hash")
    if not isinstance(doc["recipients"], list):
        raise bad("recipients")
    for party in [doc["sender"], *doc["recipients"]]:
        if not (
            isinstance(party, dict)
            and set(party) == {"lab", "key_id"}
            and isinstance(party["lab"], str)
            and isinstance(party["key_id"], str)
            and HEX64.fullmatch(party["key_id"])
        ):
            raise bad("sender or recipient")
    if not is_int(doc["sequence"], 1):
        raise bad("sequence")
    created, expires = parse_time(doc["created"]), parse_time(doc["expires"])
    if created is None or expires is None or not created < expires:
        raise bad("created/expires")
    files = doc["files"]
    if not isinstance(files, list) or len(files) > 10000:
        raise bad("files")
    seen: set[str] = set()
    for entry in files:
        if not isinstance(entry, dict) or set(entry) not in (
            {"name", "kind", "size", "sha256"},
            {"name", "kind", "size", "sha256", "original_name"},
        ):
            raise bad("file entry fields")
        name, kind = entry["name"], entry["kind"]
        if not isinstance(name, str) or not isinstance(kind, str) or not is_int(entry["size"]):
            raise bad("file entry types")
        if not isinstance(entry["sha256"], str) or not HEX64.fullmatch(entry["sha256"]):
            raise bad("sha256")
        prefix, _, base = name.partition("/")
        if kind not in PREFIX or prefix != PREFIX[kind] or not BASE.fullmatch(base):
            raise bad("unsafe member name")
        if kind == "scan" and not base.lower().endswith(".x3p"):
            raise bad("scan not .x3p")
        content_named = kind == "scan" and CONTENT_NAME.fullmatch(base) is not None
        if content_named and base != entry["sha256"] + ".x3p":
            raise bad("scan named by a SHA-256 other than its sha256")
        if "original_name" in entry and (not content_named or not good_original_name(entry["original_name"])):
            raise bad("original_name")
        if name.lower() in seen:
            raise bad("duplicate name")
        seen.add(name.lower())
        if entry["size"] > SIZE_CAP.get(kind, MAX_INT):
            raise bad(f"{kind} over its size cap")
    return doc


def good_original_name(name: object) -> bool:
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or name in (".", "..") or "/" in name or "\\" in name:
        return False
    for char in name:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (category == "Zs" and char != " "):
            return False
    return BASE.fullmatch(name) is None
