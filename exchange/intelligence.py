"""The documents of ballistic intelligence: correlation requests, correlation responses, hit notifications.

Each travels as one file of an ordinary bundle (docs/bundle-format.md, section 3.7), signed and
encrypted like any other: a **correlation request** (kind ``request``) beside the scans it asks a
partner to search; a **correlation response** (kind ``response``) alone, the partner's answer; a
**hit notification** (kind ``notification``) beside the match record an examiner made when
confirming a lead. They are canonical JSON (section 3.6): integers only, so scores and
likelihood ratios are written as decimal strings with three places (``"0.612"``, ``"-1.250"``).

This module is the documents alone: their typed values, their bytes and parsing one received.
Who sends them and what an import does with them is :mod:`exchange.correlate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ballistics.characteristics import ClassCharacteristics, FiringPinShape
from exchange.canonical import canonical_json, is_int, parse_json, parse_time
from exchange.errors import MalformedBundleError
from exchange.manifest import MAX_DOCUMENT_BYTES

REQUEST_TYPE = "ballistics-correlation-request"
RESPONSE_TYPE = "ballistics-correlation-response"
NOTIFICATION_TYPE = "ballistics-hit-notification"
DOCUMENT_VERSION = 1
#: Bundle kinds (docs/bundle-format.md, section 3.7), as the replay ledger and the import report name them.
CORRELATION_REQUEST, CORRELATION_RESPONSE, HIT_NOTIFICATION = "correlation-request", "correlation-response", "hit-notification"
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX64 = re.compile(r"[0-9a-f]{64}")
DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,5})\.[0-9]{3}")
#: Case and exhibit ids, as the collection stores them (at most 128 characters, printable).
MAX_ID = 128


def decimal(value: float | None) -> str | None:
    """A score or log10 LR as the documents write it: three decimal places, or None."""
    return None if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class RequestedScan:
    """One scan of a request: its SHA-256 (and so its bundle member), exhibit and class characteristics."""

    sha256: str
    exhibit: str
    characteristics: ClassCharacteristics = ClassCharacteristics()

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "exhibit": self.exhibit, "class_characteristics": self.characteristics.to_dict()}


@dataclass(frozen=True)
class CorrelationRequest:
    """A lab's request that partners search these scans of its case against their collections."""

    request_id: str  # 32 lower-case hex digits, chosen by the requester
    lab: str  # the requesting lab (its id), which signs the bundle
    case_id: str  # the requesting lab's case reference
    scans: tuple[RequestedScan, ...]
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": REQUEST_TYPE,
            "version": DOCUMENT_VERSION,
            "request_id": self.request_id,
            "lab": self.lab,
            "case_id": self.case_id,
            "scans": [s.to_dict() for s in self.scans],
            "created": self.created,
        }

    @property
    def member(self) -> str:
        return f"request-{self.request_id}.json"


@dataclass(frozen=True)
class Candidate:
    """One exhibit of the responder's collection that a requested scan identified (a lead on its side)."""

    scan_sha256: str  # the requester's scan
    case_id: str  # the responder's case and exhibit
    exhibit: str
    cmc: int
    ccf: str | None
    log10_lr: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scan_sha256": self.scan_sha256,
            "case_id": self.case_id,
            "exhibit": self.exhibit,
            "cmc": self.cmc,
            "ccf": self.ccf,
            "log10_lr": self.log10_lr,
        }


@dataclass(frozen=True)
class CorrelationResponse:
    """A partner's answer to a request: what it searched, against how much, and the candidates (maybe none)."""

    request_id: str
    bundle_id: str  # of the request bundle answered
    requester: str
    responder: str
    searched: tuple[str, ...]  # SHA-256 of every requested scan searched
    collection_size: int  # exhibits of the responder's own collection searched
    candidates: tuple[Candidate, ...]
    answered: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": RESPONSE_TYPE,
            "version": DOCUMENT_VERSION,
            "request_id": self.request_id,
            "bundle_id": self.bundle_id,
            "requester": self.requester,
            "responder": self.responder,
            "searched": list(self.searched),
            "collection_size": self.collection_size,
            "candidates": [c.to_dict() for c in self.candidates],
            "answered": self.answered,
        }

    @property
    def member(self) -> str:
        return f"response-{self.request_id}.json"


@dataclass(frozen=True)
class HitNotification:
    """An examiner of the notifying lab confirmed that a scan the recipient sent matches one of its exhibits.

    ``bundle_id`` is the bundle that carried the recipient's scan (a request, or findings);
    ``request_id`` the request, when it was one. The match record travels beside it.
    """

    bundle_id: str
    request_id: str | None
    scan_sha256: str  # the recipient's scan
    case_id: str  # the notifying lab's case and exhibit
    exhibit: str
    record_id: str
    log10_lr: str | None
    examiner: str
    confirmed: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": NOTIFICATION_TYPE,
            "version": DOCUMENT_VERSION,
            "bundle_id": self.bundle_id,
            "request_id": self.request_id,
            "scan_sha256": self.scan_sha256,
            "case_id": self.case_id,
            "exhibit": self.exhibit,
            "record_id": self.record_id,
            "log10_lr": self.log10_lr,
            "examiner": self.examiner,
            "confirmed": self.confirmed,
        }

    @property
    def member(self) -> str:
        return f"hit-{self.record_id}.json"


IntelligenceDocument = CorrelationRequest | CorrelationResponse | HitNotification
#: The bundle kind a document makes its bundle.
BUNDLE_KINDS: dict[type, str] = {
    CorrelationRequest: CORRELATION_REQUEST,
    CorrelationResponse: CORRELATION_RESPONSE,
    HitNotification: HIT_NOTIFICATION,
}

#: The manifest file kind of each document.
FILE_KINDS: dict[type, str] = {CorrelationRequest: "request", CorrelationResponse: "response", HitNotification: "notification"}


def encode_document(document: IntelligenceDocument) -> bytes:
    """The document's bytes: canonical JSON, so its SHA-256 is reproducible."""
    data = canonical_json(document.to_dict())
    if len(data) > MAX_DOCUMENT_BYTES:
        raise MalformedBundleError(type(document).__name__, f"{len(data):,} bytes, over the {MAX_DOCUMENT_BYTES:,}-byte cap of a document")
    return data


# --- parsing ----------------------------------------------------------------------------------------


def parse_document(kind: str, data: bytes, where: str) -> IntelligenceDocument:
    """The document of a bundle file of ``kind`` (request, response, notification), checked in form."""
    parsers: dict[str, Callable[[dict[str, Any], str], IntelligenceDocument]] = {
        "request": _request,
        "response": _response,
        "notification": _notification,
    }
    parser = parsers[kind]
    expected = {"request": REQUEST_TYPE, "response": RESPONSE_TYPE, "notification": NOTIFICATION_TYPE}[kind]
    if len(data) > MAX_DOCUMENT_BYTES:
        raise MalformedBundleError(where, f"{kind} larger than {MAX_DOCUMENT_BYTES} bytes")
    doc = parse_json(data, where=where, what=kind, error=MalformedBundleError)
    if not isinstance(doc, dict) or doc.get("type") != expected or not is_int(doc.get("version")) or doc["version"] != DOCUMENT_VERSION:
        raise MalformedBundleError(where, f"not a version-{DOCUMENT_VERSION} {expected}")
    if canonical_json(doc) != data:
        raise MalformedBundleError(where, f"{kind} is not in canonical JSON form")
    try:
        return parser(doc, where)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBundleError(where, f"{kind} is malformed: {type(exc).__name__} {exc}") from None


def _fields(doc: Mapping[str, Any], names: set[str], where: str, what: str) -> None:
    if set(doc) != names | {"type", "version"}:
        raise MalformedBundleError(where, f"{what} must have exactly the fields {', '.join(sorted(names | {'type', 'version'}))}")


def _text(value: object, where: str, name: str, limit: int = MAX_ID) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit or not value.isprintable():
        raise MalformedBundleError(where, f"{name} must be 1-{limit} printable characters")
    return value


def _hex(value: object, pattern: re.Pattern[str], where: str, name: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedBundleError(where, f"{name} must be lower-case hexadecimal of its fixed length")
    return value


def _decimal(value: object, where: str, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not DECIMAL.fullmatch(value):
        raise MalformedBundleError(where, f"{name} must be null or a decimal with three places")
    return value


def _time(value: object, where: str) -> str:
    parse_time(value, where=where, error=MalformedBundleError)
    return str(value)


def _characteristics(doc: object, where: str) -> ClassCharacteristics:
    if not isinstance(doc, dict) or not set(doc) <= {"calibre", "firing_pin_shape", "ejector_position"}:
        raise MalformedBundleError(where, "class_characteristics holds only calibre, firing_pin_shape and ejector_position")
    shape = doc.get("firing_pin_shape")
    if shape is not None and shape not in {s.value for s in FiringPinShape}:
        raise MalformedBundleError(where, f"firing_pin_shape must be one of {', '.join(s.value for s in FiringPinShape)}")
    return ClassCharacteristics(
        _text(doc["calibre"], where, "calibre", 64) if "calibre" in doc else None,
        FiringPinShape(shape) if shape else None,
        _text(doc["ejector_position"], where, "ejector_position", 64) if "ejector_position" in doc else None,
    )


def _request(doc: dict[str, Any], where: str) -> CorrelationRequest:
    _fields(doc, {"request_id", "lab", "case_id", "scans", "created"}, where, "a correlation request")
    scans = doc["scans"]
    if not isinstance(scans, list) or not scans:
        raise MalformedBundleError(where, "a correlation request lists at least one scan")
    parsed = []
    for item in scans:
        if not isinstance(item, dict) or set(item) != {"sha256", "exhibit", "class_characteristics"}:
            raise MalformedBundleError(where, "each requested scan has exactly sha256, exhibit and class_characteristics")
        parsed.append(
            RequestedScan(
                _hex(item["sha256"], HEX64, where, "sha256"),
                _text(item["exhibit"], where, "exhibit"),
                _characteristics(item["class_characteristics"], where),
            )
        )
    if len({s.sha256 for s in parsed}) != len(parsed):
        raise MalformedBundleError(where, "a correlation request lists a scan twice")
    return CorrelationRequest(
        _hex(doc["request_id"], HEX32, where, "request_id"),
        _text(doc["lab"], where, "lab", 64),
        _text(doc["case_id"], where, "case_id"),
        tuple(parsed),
        _time(doc["created"], where),
    )


def _response(doc: dict[str, Any], where: str) -> CorrelationResponse:
    _fields(
        doc,
        {"request_id", "bundle_id", "requester", "responder", "searched", "collection_size", "candidates", "answered"},
        where,
        "a correlation response",
    )
    if not isinstance(doc["searched"], list) or not isinstance(doc["candidates"], list) or not is_int(doc["collection_size"]):
        raise MalformedBundleError(where, "searched and candidates must be lists, collection_size an integer")
    candidates = []
    for item in doc["candidates"]:
        if not isinstance(item, dict) or set(item) != {"scan_sha256", "case_id", "exhibit", "cmc", "ccf", "log10_lr"}:
            raise MalformedBundleError(where, "each candidate has exactly scan_sha256, case_id, exhibit, cmc, ccf and log10_lr")
        if not is_int(item["cmc"]):
            raise MalformedBundleError(where, "a candidate's cmc is a non-negative integer")
        candidates.append(
            Candidate(
                _hex(item["scan_sha256"], HEX64, where, "scan_sha256"),
                _text(item["case_id"], where, "case_id"),
                _text(item["exhibit"], where, "exhibit"),
                item["cmc"],
                _decimal(item["ccf"], where, "ccf"),
                _decimal(item["log10_lr"], where, "log10_lr"),
            )
        )
    searched = tuple(_hex(s, HEX64, where, "searched") for s in doc["searched"])
    if any(c.scan_sha256 not in searched for c in candidates):
        raise MalformedBundleError(where, "a candidate names a scan the response did not search")
    return CorrelationResponse(
        _hex(doc["request_id"], HEX32, where, "request_id"),
        _hex(doc["bundle_id"], HEX32, where, "bundle_id"),
        _text(doc["requester"], where, "requester", 64),
        _text(doc["responder"], where, "responder", 64),
        searched,
        doc["collection_size"],
        tuple(candidates),
        _time(doc["answered"], where),
    )


def _notification(doc: dict[str, Any], where: str) -> HitNotification:
    _fields(
        doc,
        {"bundle_id", "request_id", "scan_sha256", "case_id", "exhibit", "record_id", "log10_lr", "examiner", "confirmed"},
        where,
        "a hit notification",
    )
    return HitNotification(
        _hex(doc["bundle_id"], HEX32, where, "bundle_id"),
        None if doc["request_id"] is None else _hex(doc["request_id"], HEX32, where, "request_id"),
        _hex(doc["scan_sha256"], HEX64, where, "scan_sha256"),
        _text(doc["case_id"], where, "case_id"),
        _text(doc["exhibit"], where, "exhibit"),
        _text(doc["record_id"], where, "record_id"),
        _decimal(doc["log10_lr"], where, "log10_lr"),
        _text(doc["examiner"], where, "examiner", 200),
        _time(doc["confirmed"], where),
    )
