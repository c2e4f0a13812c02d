"""Fuzzing every parser of what crosses a boundary: no exception escapes but the documented ones.

Key cards, match records, delivery receipts, import journals and the audit log are fed random
bytes, real documents with bytes changed, and real documents with a field replaced by any JSON
value (deep nesting and huge numbers included). Each parser may refuse only with the error
family the project documents for it (a :class:`~ballistics.errors.BallisticsError`, exit 3 or
4); a journal that is not one names nothing. The bundle header has its own fuzzer in
``tests/test_bundle.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from exchange_support import make_lab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_receipts import _receipt_doc
from test_records import a_record

from ballistics.errors import BallisticsError, RecordError
from ballistics.records import parse_record, record_bytes
from exchange.audit import audit_session
from exchange.audit_verify import verify_log
from exchange.canonical import canonical_json
from exchange.card import KeyCard, read_document
from exchange.errors import MalformedBundleError
from exchange.importer import _journaled
from exchange.receipts import parse_receipt

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Any JSON value, with the shapes that break naive parsers: deep nesting, long and huge numbers.
NASTY = st.one_of(
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["NaN", "-Infinity", "1e400", "-0", "1.5", str(2**63), str(2**53), "9" * 5000, "true", "null", '"x\\n"', '"\\ud800"']),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


@st.composite
def mutations(draw: st.DrawFn, document: bytes) -> bytes:
    """Random bytes, the document with bytes changed or cut, or one of its values replaced by raw JSON text."""
    how = draw(st.sampled_from(["random", "flip", "replace", "cut"]))
    if how == "random":
        return draw(st.binary(max_size=2048))
    if how == "cut":
        return document[: draw(st.integers(0, len(document)))]
    if how == "flip":
        raw = bytearray(document)
        for _ in range(draw(st.integers(1, 6))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    text = document.decode("utf-8")
    at = draw(st.sampled_from([i for i, c in enumerate(text) if c == ":"]))
    end = next((i for i in range(at + 1, len(text)) if text[i] in ",}"), len(text))
    value = draw(NASTY | JSON_VALUES.map(json.dumps))
    return (text[: at + 1] + value + text[end:]).encode("utf-8")


# --- records ----------------------------------------------------------------------------------------

RECORD = record_bytes(a_record())


@SETTINGS
@given(mutations(RECORD))
def test_record_parser_raises_only_record_errors(data: bytes) -> None:
    try:
        parse_record(data, "fuzz.json")
    except RecordError as exc:
        assert exc.exit_code == 3 and "\n" not in exc.reason


# --- receipts ---------------------------------------------------------------------------------------

RECEIPT = canonical_json(_receipt_doc())


@SETTINGS
@given(mutations(RECEIPT))
def test_receipt_parser_raises_only_malformed_bundle_errors(data: bytes) -> None:
    try:
        parse_receipt(data, "fuzz")
    except MalformedBundleError as exc:
        assert exc.exit_code == 3


# --- key cards --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def card_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    lab = make_lab(tmp_path_factory.mktemp("fuzz-card"), "UK-FSL")
    return json.dumps(lab.identity.card.to_dict(), indent=2).encode()


@SETTINGS
@given(data=st.data())
def test_card_reader_raises_only_documented_errors(card_bytes: bytes, tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "partner.card.json"
    path.write_bytes(data.draw(mutations(card_bytes)))
    try:
        KeyCard.from_dict(read_document(path), where=str(path))
    except BallisticsError as exc:
        assert exc.exit_code in (3, 4)


# --- import journals --------------------------------------------------------------------------------

JOURNAL = json.dumps({"files": [{"sha256": "ab" * 32}, {"sha256": "cd" * 32}]}).encode()


@SETTINGS
@given(data=st.data())
def test_a_journal_is_a_list_of_hashes_or_names_nothing(tmp_path: Path, data: st.DataObject) -> None:
    journal = tmp_path / "x.journal.json"
    journal.write_bytes(data.draw(mutations(JOURNAL)))
    hashes = _journaled(journal)
    assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h in hashes)


# --- the audit log ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lab = make_lab(tmp_path_factory.mktemp("fuzz-audit"), "UK-FSL")
    with audit_session(lab.home) as log:
        log.certify_key(lab.identity)
        log.append("bundle_export", {"bundle_id": "ab" * 16, "recipients": ["FR-IRCGN"]})
        log.append("bundle_rejected", {"path": "/inbox/x.bfx", "error": "TamperedError", "reason": "one byte", "exit_code": 4})
    assert verify_log(lab.home).intact
    return lab.home


@SETTINGS
@given(data=st.data(), target=st.sampled_from(["log", "head"]))
def test_audit_verify_reports_any_damage_and_raises_only_documented_errors(
    audit_home: Path, tmp_path: Path, data: st.DataObject, target: str
) -> None:
    home = tmp_path / "home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(audit_home, home)
    path = home / "audit" / ("audit.jsonl" if target == "log" else "head.json")
    original = path.read_bytes()
    if target == "log":
        lines = original.split(b"\n")
        index = data.draw(st.integers(0, len(lines) - 2))
        lines[index] = data.draw(mutations(lines[index]))
        changed = b"\n".join(lines)
    else:
        changed = data.draw(mutations(original))
    path.write_bytes(changed)
    try:
        report = verify_log(home)
    except BallisticsError as exc:
        assert exc.exit_code in (3, 4)
        return
    if changed != original and target == "log":
        assert not report.intact


@pytest.mark.parametrize("value", [True, [], {}, 7, "not-hex", "AB" * 32])
def test_a_certificate_naming_its_identity_by_anything_but_a_key_id_is_damage_not_a_crash(
    audit_home: Path, tmp_path: Path, value: object
) -> None:
    """Found by the fuzzer above: ``identity_key_id`` of another JSON type reached a dict lookup and a slice."""
    home = tmp_path / "home"
    shutil.copytree(audit_home, home)
    path = home / "audit" / "audit.jsonl"
    lines = path.read_bytes().split(b"\n")
    first = json.loads(lines[0])
    first["details"]["certificate"]["body"]["identity_key_id"] = value
    lines[0] = json.dumps(first, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(b"\n".join(lines))
    report = verify_log(home)
    assert not report.intact
    assert any(p.line == 1 for p in report.problems)
