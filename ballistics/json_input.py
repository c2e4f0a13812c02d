"""JSON written by someone else, read with bounds: nesting depth, integers, floats, duplicated keys.

Python's ``json`` recurses once per nesting level (a record nested 100,000 deep raises
``RecursionError``, not a ``ValueError``), turns a 5,000-digit integer into a ``ValueError``
of its own, reads ``NaN``, ``Infinity`` and ``1e400`` as floats that no JSON encoder writes
back, and keeps the last of two equal keys. Every document that crosses a boundary (match
records, manifests, receipts, key cards, audit lines, import journals) is read here instead, so
that each of these is one ``ValueError`` naming the rule, raised before anything uses the value.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Deepest nesting of objects and arrays (a match record uses 5; the schema leaves ``parameters`` open).
MAX_DEPTH = 32
#: The largest integer magnitude: every JSON parser reads it exactly (IEEE 754 double precision).
MAX_INT = 2**53 - 1
#: Longest spelling of one number; a longer one is refused before it is converted.
MAX_NUMBER_CHARS = 32


def load_json(text: str, *, floats: bool = True, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text``; raise ``ValueError`` for anything outside the bounds above.

    ``floats=False`` refuses every number with a fraction or exponent (signed documents are
    integers only). Floats must be finite. Object keys must be unique.
    """

    def integer(spelling: str) -> int:
        if len(spelling) > MAX_NUMBER_CHARS:
            raise ValueError(f"number {spelling[:20]}... is longer than {MAX_NUMBER_CHARS} characters")
        value = int(spelling)
        if abs(value) > MAX_INT:
            raise ValueError(f"integer {spelling} is beyond +-(2^53 - 1)")
        return value

    def real(spelling: str) -> float:
        if not floats:
            raise ValueError(f"number {spelling[:20]} is not an integer (integers only)")
        if len(spelling) > MAX_NUMBER_CHARS:
            raise ValueError(f"number {spelling[:20]}... is longer than {MAX_NUMBER_CHARS} characters")
        value = float(spelling)
        if not math.isfinite(value):
            raise ValueError(f"number {spelling} is not finite")
        return value

    def constant(spelling: str) -> Any:
        raise ValueError(f"{spelling} is not JSON")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        doc = dict(pairs)
        if len(doc) != len(pairs):
            raise ValueError("an object has a duplicated key")
        return doc

    try:
        doc = json.loads(text, parse_int=integer, parse_float=real, parse_constant=constant, object_pairs_hook=unique)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    _check_depth(doc, max_depth)
    return doc


def _check_depth(doc: Any, max_depth: int) -> None:
    """Breadth-first, without recursion, so that the check itself cannot overflow the stack."""
    level: list[Any] = [doc]
    depth = 0
    while level:
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            return
        depth += 1
        if depth > max_depth:
            raise ValueError(f"nested deeper than {max_depth} levels")
        level = [item for c in containers for item in (c.values() if isinstance(c, dict) else c)]
