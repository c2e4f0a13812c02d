"""Match records: the JSON document that states one comparison, and its schema validation.

The schema (``schemas/match-record.schema.json``, published as ``docs/match-record.schema.json``)
is the contract between every producer of records (the comparison engine, partner labs) and
every consumer (the store, bundles). :func:`build_record` takes plain values and the
``Comparison.to_dict()`` document, so that this module imports nothing from the engine.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from ballistics.clock import format_time
from ballistics.errors import RecordError
from ballistics.files import write_atomic
from ballistics.json_input import load_json
from ballistics.labs import Lab

SCHEMA_VERSION = 1
#: Records are small; a larger file is refused before it is parsed.
MAX_RECORD_BYTES = 4 * 1024 * 1024

MatchRecord = dict[str, Any]


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The match-record JSON Schema (draft 2020-12) shipped inside the package."""
    return json.loads(resources.files("ballistics").joinpath("schemas/match-record.schema.json").read_text("utf-8"))


@lru_cache(maxsize=64)
def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """A schema ``pattern`` compiled as ECMA-262 reads it: ``$`` is the end of the text, nothing else.

    JSON Schema patterns are ECMA-262 regular expressions, in which ``$`` (without the multiline
    flag) matches only at the very end; Python's ``$`` also matches before a final newline, which
    would let ``"FR-IRCGN\\n"`` pass ``^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$``. Every ``$`` outside a
    character class and not escaped becomes ``\\Z``.
    """
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: object, _schema: Any) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft 2020-12 with ECMA-262 semantics for ``pattern`` (:func:`ecma_pattern`).
RecordValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@lru_cache(maxsize=1)
def _validator() -> Any:
    Draft202012Validator.check_schema(schema())
    return RecordValidator(schema())


def validate_record(doc: object, path: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`RecordError` naming the first violation (deepest path first), in one line."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (-len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        first = errors[0]
        where = "/".join(str(part) for part in first.absolute_path) or "(record)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise RecordError(path, f"not a valid match record: at {where}: {first.message[:300]}{more}")


def parse_record(data: bytes, path: str | os.PathLike[str] | None = None) -> MatchRecord:
    """Decode and validate a record held in memory (as read from a bundle).

    Depth, numbers and keys are bounded (:func:`ballistics.json_input.load_json`): a record nested
    100,000 deep, ``NaN`` or a 5,000-digit integer is a :class:`RecordError` (exit 3).
    """
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(path, f"record larger than {MAX_RECORD_BYTES} bytes")
    try:
        doc = load_json(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(path, f"not UTF-8 JSON within bounds: {exc}") from None
    validate_record(doc, path)
    return doc


def load_record(path: str | os.PathLike[str]) -> MatchRecord:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        raise RecordError(path, f"cannot read: {exc.strerror}") from None
    return parse_record(data, path)


def record_bytes(doc: Mapping[str, Any]) -> bytes:
    """The stored form: UTF-8 JSON, keys sorted, so that equal records hash equal."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_record(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate, then write atomically (temporary file and rename)."""
    target = Path(path)
    validate_record(doc, target)
    write_atomic(target, record_bytes(doc))
    return target


def build_record(
    comparison: Mapping[str, Any],
    *,
    lab: Lab,
    case_id: str,
    exhibits: tuple[str, str],
    examiner: Mapping[str, str],
    class_characteristics: Mapping[str, str] | None = None,
    afte_category: str | None = None,
    likelihood_ratio: float | None = None,
    remarks: str | None = None,
    created: datetime | None = None,
    record_id: str | None = None,
) -> MatchRecord:
    """A validated record from a ``Comparison.to_dict()`` document and the case context."""
    method = dict(comparison["method"])
    scores = {key: comparison[key] for key in ("cmc", "cmc_forward", "cmc_backward", "cells_compared", "ccf", "rotation_deg", "firing_pin")}
    scores["translation_um"] = list(comparison["translation_um"])
    for optional in ("cmc_original", "cmc_high", "high_cmc_passed"):
        if optional in comparison:
            scores[optional] = comparison[optional]
    if likelihood_ratio is not None:
        scores["likelihood_ratio"] = likelihood_ratio
    conclusion: dict[str, Any] = {"decision": comparison["decision"]}
    if afte_category is not None:
        conclusion["afte_category"] = afte_category
    if remarks is not None:
        conclusion["remarks"] = remarks
    record: MatchRecord = {
        "schema_version": SCHEMA_VERSION,
        "record_id": record_id or str(uuid.uuid4()),
        "lab": lab.to_dict(),
        "case_id": case_id,
        "exhibits": {"reference": exhibits[0], "questioned": exhibits[1]},
        "comparison": {
            "method": {"name": method.pop("name"), "parameters": method},
            "software": dict(comparison["software"]),
        },
        "scores": scores,
        "conclusion": conclusion,
        "examiner": dict(examiner),
        "created": format_time(created),
        "scans": {side: _scan_ref(comparison[side]) for side in ("reference", "questioned")},
    }
    if class_characteristics:
        record["class_characteristics"] = dict(class_characteristics)
    validate_record(record, f"record {record['record_id']}")
    return record


def record_lab(record: Mapping[str, Any]) -> Lab:
    """The lab that made a (validated) record."""
    return Lab.from_dict(record["lab"])


def reattribute_record(record: Mapping[str, Any], to: Lab) -> MatchRecord:
    """The same record stated in the name of ``to`` (e.g. one made before ``keys init``), validated.

    Only the ``lab`` object changes; record id, scores, examiner and times stay as they were.
    """
    changed: MatchRecord = {**record, "lab": to.to_dict()}
    validate_record(changed, f"record {record.get('record_id')}")
    return changed


def _scan_ref(scan: Mapping[str, Any]) -> dict[str, str]:
    ref = {"sha256": scan.get("sha256") or ""}
    if scan.get("path"):
        ref["path"] = str(scan["path"])
        ref["name"] = Path(str(scan["path"])).name
    return ref
