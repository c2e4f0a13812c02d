"""The bundle header (docs/bundle-format.md, section 3.1): encoding, bounded parsing, key wrap.

Parsing never trusts a declared length before checking it against a hard cap, and reads the
header with one bounded read, so a hostile file cannot make the reader allocate or loop.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange.errors import HeaderLimitError, MalformedBundleError, TamperedError

MAGIC = b"\x89BFX\r\n\x1a\n"
VERSION = 1
SUITE = 1
FIXED = struct.Struct(">8sHHIQ16s32sH")  # magic, version, suite, H, P, bundle id, sender, N
MAC_BYTES = 32
KEY_ID_BYTES = 32
FILE_KEY_BYTES = 32
HPKE_ENC_BYTES = 1120
HPKE_CT_BYTES = FILE_KEY_BYTES + 16
STANZA_BYTES = KEY_ID_BYTES + HPKE_ENC_BYTES + HPKE_CT_BYTES  # 1200 in suite 1
MAX_STANZA_BYTES = 2048
MAX_STANZAS = 16
MIN_HEADER_BYTES = FIXED.size + 2 + STANZA_BYTES + MAC_BYTES
MAX_HEADER_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 2**40
HPKE_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
WRAP_LABEL = b"ballistics-bundle v1\x00"


@dataclass(frozen=True)
class Stanza:
    recipient: bytes  # key id
    wrapped: bytes  # HPKE enc || ct


@dataclass(frozen=True)
class Header:
    payload_length: int
    bundle_id: bytes
    sender: bytes
    stanzas: tuple[Stanza, ...]
    raw: bytes  # the exact bytes, MAC included

    @property
    def length(self) -> int:
        return len(self.raw)

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    @property
    def recipients(self) -> list[bytes]:
        return [s.recipient for s in self.stanzas]

    def stanza_for(self, key_id: bytes) -> Stanza | None:
        return next((s for s in self.stanzas if s.recipient == key_id), None)

    def check_mac(self, mac_key: bytes, where: str) -> None:
        expected = hmac.new(mac_key, self.raw[:-MAC_BYTES], hashlib.sha256).digest()
        if not hmac.compare_digest(expected, self.raw[-MAC_BYTES:]):
            raise TamperedError(where, "header MAC does not verify: a header byte was changed")


def wrap_info(bundle_id: bytes, sender: bytes, recipient: bytes) -> bytes:
    return WRAP_LABEL + struct.pack(">HH", VERSION, SUITE) + bundle_id + sender + recipient


def derive_keys(file_key: bytes, bundle_id: bytes) -> tuple[bytes, bytes]:
    """(payload_key, mac_key) from the file key, salted with the bundle id."""

    def hkdf(label: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=bundle_id, info=b"ballistics-bundle v1 " + label).derive(file_key)

    return hkdf(b"payload"), hkdf(b"header")


def wrap_file_key(file_key: bytes, bundle_id: bytes, sender: bytes, recipient: bytes, public_key: hpke.MLKEM768X25519PublicKey) -> Stanza:
    return Stanza(recipient, HPKE_SUITE.encrypt(file_key, public_key, info=wrap_info(bundle_id, sender, recipient)))


def unwrap_file_key(header: Header, stanza: Stanza, private_key: hpke.MLKEM768X25519PrivateKey, where: str) -> bytes:
    try:
        file_key = HPKE_SUITE.decrypt(stanza.wrapped, private_key, info=wrap_info(header.bundle_id, header.sender, stanza.recipient))
    except (InvalidTag, ValueError):
        raise TamperedError(where, "the key stanza addressed to this lab does not open (altered or re-addressed)") from None
    if len(file_key) != FILE_KEY_BYTES:
        raise TamperedError(where, "the wrapped file key has the wrong length")
    return file_key


def encode_header(payload_length: int, bundle_id: bytes, sender: bytes, stanzas: list[Stanza], mac_key: bytes) -> Header:
    """Build the header bytes, stanzas sorted by recipient key id, MAC appended."""
    ordered = sorted(stanzas, key=lambda s: s.recipient)
    body = b"".join(struct.pack(">H", len(s.recipient + s.wrapped)) + s.recipient + s.wrapped for s in ordered)
    length = FIXED.size + len(body) + MAC_BYTES
    fixed = FIXED.pack(MAGIC, VERSION, SUITE, length, payload_length, bundle_id, sender, len(ordered))
    unsigned = fixed + body
    raw = unsigned + hmac.new(mac_key, unsigned, hashlib.sha256).digest()
    return parse_header(raw, "header")


def read_header(handle: BinaryIO, where: str) -> Header:
    """Read and parse the header from the start of ``handle``, within the caps."""
    head = handle.read(FIXED.size)
    if not head.startswith(MAGIC[: len(head)]) or not head:
        raise MalformedBundleError(where, "not a ballistics bundle (bad magic bytes)")
    if len(head) < FIXED.size:
        raise MalformedBundleError(where, f"only {len(head)} bytes: too short to be a bundle")
    _check_fixed(head, where)
    length = FIXED.unpack(head)[3]
    rest = handle.read(length - FIXED.size)
    if len(rest) != length - FIXED.size:
        raise MalformedBundleError(where, f"file ends inside the header ({FIXED.size + len(rest)} of {length} bytes)")
    return parse_header(head + rest, where)


def _check_fixed(head: bytes, where: str) -> tuple:
    magic, version, suite, length, payload_length, _, _, count = fields = FIXED.unpack(head)
    if magic != MAGIC:
        raise MalformedBundleError(where, "not a ballistics bundle (bad magic bytes)")
    if version != VERSION:
        raise MalformedBundleError(where, f"unsupported bundle version {version} (this reader knows {VERSION})")
    if suite != SUITE:
        raise MalformedBundleError(where, f"unsupported algorithm suite {suite} (this reader knows {SUITE})")
    if not MIN_HEADER_BYTES <= length <= MAX_HEADER_BYTES:
        raise HeaderLimitError(where, f"declared header length {length} outside {MIN_HEADER_BYTES}..{MAX_HEADER_BYTES} bytes")
    if not 1 <= count <= MAX_STANZAS:
        raise HeaderLimitError(where, f"{count} recipient stanzas (allowed 1..{MAX_STANZAS})")
    if not 1 <= payload_length <= MAX_PAYLOAD_BYTES:
        raise MalformedBundleError(where, f"declared payload length {payload_length} outside 1..{MAX_PAYLOAD_BYTES}")
    return fields


def parse_header(raw: bytes, where: str) -> Header:
    """Parse complete header bytes; every length is checked before it is used."""
    if len(raw) < FIXED.size:
        raise MalformedBundleError(where, "header too short")
    _, _, _, length, payload_length, bundle_id, sender, count = _check_fixed(raw[: FIXED.size], where)
    if len(raw) != length:
        raise MalformedBundleError(where, f"header is {len(raw)} bytes, declared {length}")
    offset, end = FIXED.size, length - MAC_BYTES
    stanzas: list[Stanza] = []
    for index in range(count):
        if offset + 2 > end:
            raise MalformedBundleError(where, f"header ends before stanza {index}")
        (size,) = struct.unpack_from(">H", raw, offset)
        if size > MAX_STANZA_BYTES:
            raise HeaderLimitError(where, f"stanza {index} is {size} bytes (cap {MAX_STANZA_BYTES})")
        if size != STANZA_BYTES:
            raise MalformedBundleError(where, f"stanza {index} is {size} bytes, suite {SUITE} stanzas are {STANZA_BYTES}")
        offset += 2
        if offset + size > end:
            raise MalformedBundleError(where, f"stanza {index} runs past the end of the header")
        body = raw[offset : offset + size]
        stanza = Stanza(body[:KEY_ID_BYTES], body[KEY_ID_BYTES:])
        if stanzas and stanza.recipient <= stanzas[-1].recipient:
            kind = "duplicated" if stanza.recipient == stanzas[-1].recipient else "out of order"
            raise MalformedBundleError(where, f"recipient stanza {index} is {kind} (stanzas must be strictly increasing)")
        stanzas.append(stanza)
        offset += size
    if offset != end:
        raise MalformedBundleError(where, f"{end - offset} unexplained bytes after the stanzas")
    return Header(payload_length, bundle_id, sender, tuple(stanzas), bytes(raw))
