"""The STREAM payload (docs/bundle-format.md, section 3.3): 64 KiB AES-256-GCM chunks.

The nonce is an 11-byte chunk counter and a last-chunk flag, and the header hash is the
associated data of every chunk: reordering, dropping, duplicating or appending chunks, cutting
the payload (even exactly at a chunk boundary) or changing the header all make a tag fail.
Memory is bounded by two chunks whatever the payload size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange.errors import TamperedError, TruncatedError

CHUNK = 64 * 1024
TAG = 16
COUNTER_BYTES = 11


def nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(COUNTER_BYTES, "big") + (b"\x01" if last else b"\x00")


def encrypted_length(plaintext_length: int) -> int:
    """Ciphertext bytes for ``plaintext_length`` >= 1 plaintext bytes."""
    return plaintext_length + TAG * (-(-plaintext_length // CHUNK))


class StreamWriter:
    """Encrypt a plaintext of known length, written in pieces of any size."""

    def __init__(self, sink: BinaryIO, key: bytes, header_hash: bytes, plaintext_length: int) -> None:
        self._sink, self._aead, self._aad = sink, AESGCM(key), header_hash
        self._remaining = plaintext_length
        self._buffer = bytearray()
        self._counter = 0

    def write(self, data: bytes | memoryview) -> None:
        if len(data) > self._remaining:
            raise ValueError("more plaintext than declared")
        self._remaining -= len(data)
        self._buffer += data
        while len(self._buffer) >= CHUNK and (len(self._buffer) > CHUNK or self._remaining > 0):
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]

    def close(self) -> None:
        if self._remaining or not self._buffer:
            raise ValueError("plaintext shorter than declared")
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, chunk: bytes, last: bool) -> None:
        self._sink.write(self._aead.encrypt(nonce(self._counter, last), chunk, self._aad))
        self._counter += 1


def decrypt_chunks(source: BinaryIO, key: bytes, header_hash: bytes, where: str) -> Iterator[bytes]:
    """Yield each chunk's plaintext only after its tag has verified; fail without a final chunk."""
    aead = AESGCM(key)
    current = _read_full(source, CHUNK + TAG)
    if not current:
        raise TruncatedError(where, "the payload is missing (bundle cut after its header)")
    counter = 0
    while True:
        following = _read_full(source, CHUNK + TAG) if len(current) == CHUNK + TAG else b""
        last = not following
        yield _open(aead, counter, current, last, header_hash, where)
        if last:
            return
        current, counter = following, counter + 1


def _open(aead: AESGCM, counter: int, chunk: bytes, last: bool, aad: bytes, where: str) -> bytes:
    if len(chunk) <= TAG:
        raise TruncatedError(where, f"chunk {counter} is only {len(chunk)} bytes: the bundle was cut inside it")
    try:
        return aead.decrypt(nonce(counter, last), chunk, aad)
    except InvalidTag:
        pass
    if last and _opens(aead, nonce(counter, False), chunk, aad):
        raise TruncatedError(where, f"the payload ends after chunk {counter}, which is not the final chunk (cut at a chunk boundary)")
    if not last and _opens(aead, nonce(counter, True), chunk, aad):
        raise TamperedError(where, f"data follows the final chunk {counter} (appended chunks)")
    raise TamperedError(where, f"chunk {counter} fails authentication (changed, moved or swapped, or the header changed)")


def _opens(aead: AESGCM, nonce_bytes: bytes, chunk: bytes, aad: bytes) -> bool:
    try:
        aead.decrypt(nonce_bytes, chunk, aad)
    except InvalidTag:
        return False
    return True


def _read_full(source: BinaryIO, size: int) -> bytes:
    parts, remaining = [], size
    while remaining:
        part = source.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
