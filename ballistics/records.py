"""Match records: the JSON document that states one comparison, and its schema validation.

The schema (``schemas/match-record.schema.json``, published as ``docs/match-record.schema.json``)
is the contract between every producer of records (the comparison engine, partner labs) and
every consumer (the store, bundles). :func:`build_record` takes plain values and the
``Comparison.to_dict()`` document, so that this module imports nothing from the engine.

Version 2 (written now) adds the likelihood ratio with its calibration's hash, the examiner's own
conclusion apart from the algorithm's decision, and the technical reviewer. Version-1 records
(``schemas/match-record-v1.schema.json``) still validate, import and display: each record is
checked against the schema of the version it names. :func:`migrate_v1` states a version-1 record
as version 2 (docs/store.md, "Match records").
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from jsonschema import Draft202012Validator, ValidationError, validators

from ballistics.clock import format_time
from ballistics.errors import RecordError
from ballistics.files import read_bounded, write_atomic
from ballistics.json_input import load_json
from ballistics.labs import Lab
from ballistics.verbal import SCALE_NAME, Category

SCHEMA_VERSION = 2
#: Every version a record may name, and its schema file in the package.
SCHEMA_FILES = {1: "schemas/match-record-v1.schema.json", 2: "schemas/match-record.schema.json"}
#: Records are small; a larger file is refused before it is parsed.
MAX_RECORD_BYTES = 4 * 1024 * 1024
AfteCategory = Literal["identification", "inconclusive-a", "inconclusive-b", "inconclusive-c", "elimination", "unsuitable"]
AFTE_CATEGORIES: tuple[AfteCategory, ...] = get_args(AfteCategory)

MatchRecord = dict[str, Any]


@dataclass(frozen=True)
class ExaminerConclusion:
    """The examiner's opinion, recorded apart from the algorithm's decision.

    ``afte_category``: the AFTE range of conclusions. ``verbal``: a verbal LR category of the
    ENFSI 2015 scale (:data:`ballistics.verbal.CATEGORIES`) and the proposition it supports.
    """

    afte_category: AfteCategory | None = None
    verbal: tuple[Category, Literal["same source", "different sources", "neither"]] | None = None
    remarks: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.afte_category is not None:
            out["afte_category"] = self.afte_category
        if self.verbal is not None:
            out["verbal"] = {"scale": SCALE_NAME, "category": self.verbal[0], "supports": self.verbal[1]}
        if self.remarks is not None:
            out["remarks"] = self.remarks
        return out


@lru_cache(maxsize=2)
def schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The match-record JSON Schema (draft 2020-12) of ``version``, shipped inside the package."""
    return json.loads(resources.files("ballistics").joinpath(SCHEMA_FILES[version]).read_text("utf-8"))


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


@lru_cache(maxsize=2)
def _validator(version: int) -> Any:
    Draft202012Validator.check_schema(schema(version))
    return RecordValidator(schema(version))


def validate_record(doc: object, path: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`RecordError` naming the first violation (deepest path first), in one line.

    A record is checked against the schema of the version it names (``schema_version`` 1 or 2);
    any other value is checked against the current schema, which refuses it.
    """
    named = doc.get("schema_version") if isinstance(doc, dict) else None
    version = named if isinstance(named, int) and not isinstance(named, bool) and named in SCHEMA_FILES else SCHEMA_VERSION
    errors = sorted(_validator(version).iter_errors(doc), key=lambda e: (-len(e.absolute_path), list(map(str, e.absolute_path))))
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
        data = read_bounded(path, MAX_RECORD_BYTES)
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
    likelihood_ratio: Mapping[str, Any] | None = None,
    examiner_conclusion: ExaminerConclusion | None = None,
    reviewer: Mapping[str, str] | None = None,
    created: datetime | None = None,
    record_id: str | None = None,
) -> MatchRecord:
    """A validated version-2 record from a ``Comparison.to_dict()`` document and the case context.

    ``likelihood_ratio`` is the ``LikelihoodRatio.to_dict()`` block (it names its calibration by
    SHA-256); ``examiner_conclusion`` the examiner's opinion; ``reviewer`` the technical reviewer.
    """
    method = dict(comparison["method"])
    scores = {key: comparison[key] for key in ("cmc", "cmc_forward", "cmc_backward", "cells_compared", "ccf", "rotation_deg", "firing_pin")}
    scores["translation_um"] = list(comparison["translation_um"])
    for optional in ("cmc_original", "cmc_high", "high_cmc_passed"):
        if optional in comparison:
            scores[optional] = comparison[optional]
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
        "conclusion": {"decision": comparison["decision"]},
        "examiner": dict(examiner),
        "created": format_time(created),
        "scans": {side: _scan_ref(comparison[side]) for side in ("reference", "questioned")},
    }
    if class_characteristics:
        record["class_characteristics"] = dict(class_characteristics)
    if likelihood_ratio is not None:
        record["likelihood_ratio"] = dict(likelihood_ratio)
    if examiner_conclusion is not None and examiner_conclusion.to_dict():
        record["examiner_conclusion"] = examiner_conclusion.to_dict()
    if reviewer is not None:
        record["reviewer"] = dict(reviewer)
    validate_record(record, f"record {record['record_id']}")
    return record


def migrate_v1(record: Mapping[str, Any]) -> MatchRecord:
    """A version-1 record stated as version 2, validated (the record id and everything else kept).

    ``conclusion.afte_category`` and ``conclusion.remarks`` move to ``examiner_conclusion`` (in
    version 1 they were the examiner's, beside the algorithm's decision). A version-1
    ``scores.likelihood_ratio`` names no calibration, so it cannot become a version-2
    ``likelihood_ratio`` block: it is kept, in words, in the remarks.
    """
    validate_record(record, f"record {record.get('record_id')}")
    if record["schema_version"] != 1:
        raise RecordError(f"record {record.get('record_id')}", f"not a version-1 record (schema_version {record['schema_version']})")
    changed: MatchRecord = json.loads(json.dumps(record))
    changed["schema_version"] = 2
    old = changed.pop("conclusion")
    changed["conclusion"] = {"decision": old["decision"]}
    remarks = [old["remarks"]] if "remarks" in old else []
    bare_lr = changed["scores"].pop("likelihood_ratio", None)
    if bare_lr is not None:
        remarks.append(f"version-1 record gave a likelihood ratio of {bare_lr:g} without naming a calibration")
    mine = ExaminerConclusion(afte_category=old.get("afte_category"), remarks="; ".join(remarks) or None).to_dict()
    if mine:
        changed["examiner_conclusion"] = mine
    validate_record(changed, f"record {changed['record_id']}")
    return changed


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


def examiner_conclusion(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The examiner's own conclusion stated by a (validated) record of either version; empty when it states none.

    Version 2 keeps it in ``examiner_conclusion`` (``afte_category``, ``verbal``, ``remarks``);
    version 1 kept the AFTE category and remarks in ``conclusion``, beside the algorithm's
    decision (what :func:`migrate_v1` moves). The algorithm's ``conclusion.decision`` is never
    the examiner's.
    """
    if "examiner_conclusion" in record:
        return dict(record["examiner_conclusion"])
    conclusion = record["conclusion"]
    return {key: conclusion[key] for key in ("afte_category", "remarks") if key in conclusion}


def describe_record(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a (validated) record states, as labelled lines, for either schema version.

    Version 1 kept the examiner's AFTE category and remarks in ``conclusion`` and could carry a
    bare ``scores.likelihood_ratio``; version 2 keeps them in ``examiner_conclusion`` and a
    ``likelihood_ratio`` block with its propositions and calibration.
    """
    scores, conclusion = record["scores"], record["conclusion"]
    mine = examiner_conclusion(record)
    rows = [
        ("schema version", str(record["schema_version"])),
        ("lab", f"{record['lab']['name']} ({record['lab']['id']}, {record['lab']['country']})"),
        ("case, exhibits", f"{record['case_id']}: {record['exhibits']['reference']} vs {record['exhibits']['questioned']}"),
        ("method", str(record["comparison"]["method"]["name"])),
        ("algorithm's decision", f"{conclusion['decision']} (CMC {scores['cmc']})"),
    ]
    statement = record.get("likelihood_ratio")
    if statement is not None:
        rows += [
            ("H1 (same source)", statement["propositions"]["same_source"]),
            ("H2 (different sources)", statement["propositions"]["different_source"]),
            ("relevant population", statement["relevant_population"]),
            (
                "likelihood ratio (log10)",
                f"{statement['log10_lr']:+.2f}, interval {statement['interval_log10'][0]:+.2f} .. {statement['interval_log10'][1]:+.2f}, "
                f"bounds {statement['bounds_log10'][0]:+.2f} .. {statement['bounds_log10'][1]:+.2f}",
            ),
            ("in words", f"{statement['verbal']['statement']} ({statement['verbal']['scale']})"),
            ("calibration", f"{statement['calibration']['id']}, SHA-256 {statement['calibration']['sha256']}"),
        ]
    elif scores.get("likelihood_ratio") is not None:
        rows.append(("likelihood ratio", f"{scores['likelihood_ratio']:g} (version 1: no calibration named)"))
    if "afte_category" in mine:
        rows.append(("examiner's conclusion (AFTE)", mine["afte_category"]))
    if "verbal" in mine:
        rows.append(
            (
                "examiner's conclusion (verbal)",
                f"{mine['verbal']['category']} support, {mine['verbal']['supports']} ({mine['verbal']['scale']})",
            )
        )
    if "remarks" in mine:
        rows.append(("remarks", mine["remarks"]))
    rows.append(("examiner", record["examiner"]["name"]))
    if "reviewer" in record:
        rows.append(("technical review", record["reviewer"]["name"]))
    rows.append(("created", record["created"]))
    return rows
