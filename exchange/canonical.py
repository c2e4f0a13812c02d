"""Deterministic encodings shared by key cards, revocations and manifests.

Everything that is signed or hashed is first encoded as canonical JSON: UTF-8, keys sorted,
no insignificant whitespace, ASCII escapes for anything outside ASCII, integers only (no
floats). A partner implementation reproduces the exact bytes from the parsed document.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from ballistics.clock import TIME_FORMAT, format_time
from exchange.errors import MalformedError


def canonical_json(document: Any) -> bytes:
    """The one byte string that is signed and hashed for ``document``."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, *, where: str, error: type[MalformedError] = MalformedError) -> bytes:
    """Strict standard base64; a sloppy encoding would give two byte strings one meaning."""
    if not isinstance(text, str):
        raise error(where, "expected a base64 string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise error(where, f"invalid base64: {exc}") from None
    if b64encode(data) != text:
        raise error(where, "non-canonical base64")
    return data


def parse_time(text: object, *, where: str, error: type[MalformedError] = MalformedError) -> datetime:
    if not isinstance(text, str):
        raise error(where, "expected an RFC 3339 time string")
    try:
        moment = datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise error(where, f"invalid time {text[:40]!r} (expected YYYY-MM-DDTHH:MM:SSZ)") from None
    if format_time(moment) != text:  # strptime also takes unpadded fields; one time, one spelling
        raise error(where, f"time {text[:40]!r} is not in the form YYYY-MM-DDTHH:MM:SSZ")
    return moment
