"""Deterministic encodings shared by key cards, revocations, manifests and receipts.

Everything that is signed or hashed is first encoded as canonical JSON (docs/bundle-format.md,
section 3.6): ASCII bytes only, object keys sorted, no whitespace, every character outside
U+0020..U+007E written as a lower-case ``\\uXXXX`` escape, integers only (no floats, no
booleans where a number is meant). A partner implementation reproduces the exact bytes from the
parsed document.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from os import PathLike
from typing import Any

from ballistics.clock import TIME_FORMAT, format_time
from ballistics.json_input import MAX_INT, load_json
from exchange.errors import MalformedError


def canonical_json(document: Any) -> bytes:
    """The one byte string that is signed and hashed for ``document``."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


#: The largest integer a signed document may carry: every JSON parser reads it exactly.
MAX_JSON_INT = MAX_INT


def is_int(value: object, minimum: int = 0, maximum: int = MAX_JSON_INT) -> bool:
    """An integer in range; ``True`` and ``False`` are not integers here (Python's bool is)."""
    return type(value) is int and minimum <= value <= maximum


def parse_json(
    data: bytes, *, where: str | PathLike[str], what: str, error: type[MalformedError] = MalformedError, ascii_only: bool = True
) -> Any:
    """JSON as signed documents allow it: integers only, no NaN or Infinity, no duplicated keys.

    Nesting depth and number sizes are bounded (:func:`ballistics.json_input.load_json`).

    ``ascii_only`` documents (manifests, receipts) must be ASCII bytes; others (card and
    revocation files, which are re-encoded before their signatures are checked) may be UTF-8.
    Every way the text can be refused is ``error`` (never a bare ``ValueError``).
    """

    try:
        return load_json(data.decode("ascii" if ascii_only else "utf-8"), floats=False)
    except (UnicodeDecodeError, ValueError) as exc:
        kind = "ASCII JSON" if ascii_only else "JSON"
        raise error(where, f"{what} is not {kind}: {exc}") from None


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
