"""Rules of docs/bundle-format.md that a writer never breaks, checked on validly signed bundles.

Each bundle here is signed by a trusted partner with whatever manifest the test wants
(``exchange_support.signed_bundle``), so what is tested is the reader's rule itself, not the
signature: integers only, one canonical spelling, the manifest version, recipient lab names,
scans that are x3p files, and the receipt rules, through ``open_bundle`` and ``bundle verify``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from exchange_support import PASSPHRASE, T0, LabHome, file_entry, introduce, make_lab, signed_bundle
from hypothesis import given, settings
from hypothesis import strategies as st
from test_receipts import _receipt_doc
from test_records import a_record

import cli
from ballistics.clock import now_utc
from ballistics.errors import RecordError
from ballistics.labs import Lab
from ballistics.records import record_bytes
from exchange.audit import parse_record as audit_record
from exchange.bundle import export_bundle
from exchange.canonical import canonical_json
from exchange.card import DOMAIN_CARD, DOMAIN_REVOCATION, KeyCard, Revocation, check_lab, read_document
from exchange.errors import (
    BundleContentError,
    ExpiredBundleError,
    MalformedBundleError,
    MalformedCardError,
    ManifestMismatchError,
    UnsafeMemberNameError,
)
from exchange.keys import load_identity
from exchange.manifest import is_safe_base
from exchange.reader import open_bundle
from exchange.receipts import parse_receipt

SCAN = b"PK\x03\x04" + hashlib.shake_256(b"scan").digest(2000)


@dataclass
class Labs:
    uk: LabHome
    fr: LabHome
    de: LabHome
    nl: LabHome  # trusted by UK only: FR does not know its key


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Labs:
    root = tmp_path_factory.mktemp("rules")
    uk, fr, de, nl = (
        make_lab(root, "UK-FSL"),
        make_lab(root, "FR-IRCGN", "FR"),
        make_lab(root, "DE-BKA", "DE"),
        make_lab(root, "NL-NFI", "NL"),
    )
    introduce(uk, fr)
    introduce(uk, de)
    introduce(fr, de)
    introduce(uk, nl)
    return Labs(uk, fr, de, nl)


def record() -> tuple[dict[str, object], bytes]:
    return file_entry("records/CASE-42.json", "record", record_bytes(a_record()))


def bundle(labs: Labs, tmp_path: Path, files=None, to=None, **kwargs: Any) -> Path:
    return signed_bundle(tmp_path / "b.bfx", labs.uk, to or [labs.fr], files if files is not None else [record()], **kwargs)


def opened(labs: Labs, path: Path, now=T0):
    return open_bundle(path, labs.fr.identity, labs.fr.trust, now=now)


def test_the_helper_makes_bundles_the_reader_takes(labs: Labs, tmp_path: Path) -> None:
    verified = opened(labs, bundle(labs, tmp_path, files=[record(), file_entry("scans/K1.x3p", "scan", SCAN)]))
    assert [f.name for f in verified.files] == ["records/CASE-42.json", "scans/K1.x3p"]


# --- integers only --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "words"),
    [("version", "not a version-1 suite-1"), ("suite", "not a version-1 suite-1"), ("sequence", "sequence"), ("size", "files entry")],
)
def test_booleans_are_not_integers_in_a_signed_manifest(labs: Labs, tmp_path: Path, field: str, words: str) -> None:
    """``true`` equals 1 to Python; a signed ``"version":true`` must still be refused (integers only)."""

    def change(doc: dict[str, Any]) -> None:
        (doc["files"][0] if field == "size" else doc)[field] = True

    path = bundle(labs, tmp_path, files=[file_entry("scans/K1.x3p", "scan", b"P")], edit=change)
    with pytest.raises(MalformedBundleError, match=words):
        opened(labs, path)


@pytest.mark.parametrize(
    ("spelling", "words"),
    [
        (b'"sequence":1.0', "not an integer"),
        (b'"sequence":1e0', "not an integer"),
        (b'"sequence":NaN', "NaN is not JSON"),
        (b'"sequence":Infinity', "Infinity is not JSON"),
        (b'"sequence":' + b"1" * 5000, "not ASCII JSON"),
        (b'"sequence":9007199254740992', "beyond"),
        (b'"sequence":1,"sequence":1', "duplicated key"),
    ],
)
def test_numbers_that_are_not_integers_are_malformed_never_a_crash(labs: Labs, tmp_path: Path, spelling: bytes, words: str) -> None:
    def encode(doc: dict[str, Any]) -> bytes:
        data = canonical_json(doc)
        return data.replace(b'"sequence":%d' % doc["sequence"], spelling)

    with pytest.raises(MalformedBundleError, match=words):
        opened(labs, bundle(labs, tmp_path, encode=encode))


# --- one spelling: the bytes received must be the canonical encoding --------------------------


@pytest.mark.parametrize(
    ("canonical", "other"),
    [
        (b"\\u00e9", b"\\u00E9"),  # upper-case hex
        (b"<", b"\\u003c"),  # an escape where the character itself is canonical
        (b"scans/", b"scans\\/"),  # an escaped solidus
        (b"\\u00e9", "é".encode()),  # raw UTF-8: not ASCII
    ],
)
def test_other_spellings_of_the_same_manifest_are_refused(labs: Labs, tmp_path: Path, canonical: bytes, other: bytes) -> None:
    sha = hashlib.sha256(SCAN).hexdigest()
    scan = file_entry(f"scans/{sha}.x3p", "scan", SCAN, original_name="Fadul <é>.x3p")
    assert canonical in canonical_json(scan[0])
    path = bundle(labs, tmp_path, files=[scan], encode=lambda doc: canonical_json(doc).replace(canonical, other, 1))
    with pytest.raises(MalformedBundleError, match=r"canonical JSON form|not ASCII JSON"):
        opened(labs, path)


# --- versions, times and names ------------------------------------------------------------------


def test_a_manifest_of_another_version_or_suite_is_malformed(labs: Labs, tmp_path: Path) -> None:
    for change in (lambda d: d.update(version=2), lambda d: d.update(suite=2)):
        with pytest.raises(MalformedBundleError, match="not a version-1 suite-1"):
            opened(labs, bundle(labs, tmp_path, edit=change))


def test_created_must_be_before_expires(labs: Labs, tmp_path: Path) -> None:
    path = bundle(labs, tmp_path, edit=lambda d: d.update(expires=d["created"]))
    with pytest.raises(MalformedBundleError, match="expires"):
        opened(labs, path)


def test_time_limits_are_inclusive(labs: Labs, tmp_path: Path) -> None:
    path = bundle(labs, tmp_path)  # created T0, expires T0 + 30 days
    opened(labs, path, now=T0 - timedelta(minutes=5))  # created exactly 5 minutes ahead of us
    opened(labs, path, now=T0 + timedelta(days=30))  # expires exactly now
    with pytest.raises(ExpiredBundleError, match="in the future"):
        opened(labs, path, now=T0 - timedelta(minutes=5, seconds=1))
    with pytest.raises(ExpiredBundleError, match="expired"):
        opened(labs, path, now=T0 + timedelta(days=30, seconds=1))


def test_a_member_name_prefix_must_match_its_kind(labs: Labs, tmp_path: Path) -> None:
    path = bundle(labs, tmp_path, files=[file_entry("scans/CASE-42.json", "record", record_bytes(a_record()))])
    with pytest.raises(UnsafeMemberNameError, match="must be under records/"):
        opened(labs, path)


def test_a_scan_must_be_an_x3p_file(labs: Labs, tmp_path: Path) -> None:
    with pytest.raises(UnsafeMemberNameError, match="must be an x3p file"):
        opened(labs, bundle(labs, tmp_path, files=[file_entry("scans/K1.zip", "scan", SCAN)]))
    with pytest.raises(MalformedBundleError, match="not"):
        opened(labs, bundle(labs, tmp_path, files=[file_entry("scans/K1.x3p", "scan", b"%PDF-1.7 not a zip")]))
    with pytest.raises(MalformedBundleError, match="not"):
        opened(labs, bundle(labs, tmp_path, files=[file_entry("scans/K1.x3p", "scan", b"PK")]))


# --- recipient lab names -----------------------------------------------------------------------


def _rename(key_id: str, lab: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for party in doc["recipients"]:
            if party["key_id"] == key_id:
                party["lab"] = lab

    return change


def test_our_own_key_named_as_another_lab_is_refused(labs: Labs, tmp_path: Path) -> None:
    path = bundle(labs, tmp_path, edit=_rename(labs.fr.identity.card.key_id, "DE-BKA"))
    with pytest.raises(ManifestMismatchError, match="recipient labs differ"):
        opened(labs, path)


def test_a_known_partner_key_named_as_another_lab_is_refused(labs: Labs, tmp_path: Path) -> None:
    path = bundle(labs, tmp_path, to=[labs.fr, labs.de], edit=_rename(labs.de.identity.card.key_id, "NL-NFI"))
    with pytest.raises(ManifestMismatchError, match="recipient labs differ"):
        opened(labs, path)


def test_a_key_we_do_not_know_is_taken_as_named(labs: Labs, tmp_path: Path) -> None:
    path = bundle(labs, tmp_path, to=[labs.fr, labs.nl])
    assert "NL-NFI" in [r.lab for r in opened(labs, path).manifest.recipients]


# --- receipt rules (section 3.5), the same for open_bundle, bundle verify and bundle import ----


def receipt(doc: dict[str, Any] | None = None, name: str = "receipts/receipt-1.json") -> tuple[dict[str, object], bytes]:
    return file_entry(name, "receipt", canonical_json(doc or _receipt_doc()))


RECEIPT_CASES = [
    ("beside a record", lambda: [receipt(), record()], "holds its receipt and nothing else"),
    ("two receipts", lambda: [receipt(), receipt(name="receipts/receipt-2.json")], "holds its receipt and nothing else"),
    ("over 64 KiB", lambda: [file_entry("receipts/big.json", "receipt", b" " * (64 * 1024 + 1))], "exceeds 65536"),
    ("not JSON", lambda: [file_entry("receipts/r.json", "receipt", b"receipt: yes")], "not ASCII JSON"),
    ("not canonical", lambda: [file_entry("receipts/r.json", "receipt", json.dumps(_receipt_doc()).encode())], "canonical"),
]


@pytest.mark.parametrize(("case", "files", "words"), RECEIPT_CASES, ids=[c[0] for c in RECEIPT_CASES])
def test_receipt_rules_through_open_bundle(labs: Labs, tmp_path: Path, case: str, files, words: str) -> None:
    with pytest.raises(MalformedBundleError, match=words):
        opened(labs, bundle(labs, tmp_path, files=files()))


@pytest.mark.parametrize(("case", "files", "words"), RECEIPT_CASES, ids=[c[0] for c in RECEIPT_CASES])
def test_receipt_rules_through_bundle_verify(
    labs: Labs, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, case: str, files, words: str
) -> None:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    path = bundle(labs, tmp_path, files=files(), now=now_utc().replace(microsecond=0))
    capsys.readouterr()
    assert cli.main(["--home", str(labs.fr.home), "bundle", "verify", str(path)]) == 3
    assert words in capsys.readouterr().err


# --- integers only in the other signed documents -----------------------------------------------


def test_a_validly_signed_card_with_a_boolean_version_is_refused(labs: Labs) -> None:
    card, signing = labs.uk.identity.card, labs.uk.identity.signing
    body = {**card.body, "version": True}
    doc = {"body": body, "signatures": {"self": signing.sign(DOMAIN_CARD, canonical_json(body)).to_dict()}}
    with pytest.raises(MalformedCardError, match="not a version-1 ballistics-key-card"):
        KeyCard.from_dict(doc, where="card")


def test_a_validly_signed_revocation_with_a_boolean_version_is_refused(labs: Labs) -> None:
    card, signing = labs.uk.identity.card, labs.uk.identity.signing
    revocation = Revocation.create(card, signing, T0, "test")
    body = {**revocation.body, "version": True}
    doc = {"body": body, "signatures": {"self": signing.sign(DOMAIN_REVOCATION, canonical_json(body)).to_dict()}}
    with pytest.raises(MalformedCardError, match="not a version-1 ballistics-key-revocation"):
        Revocation.from_dict(doc, where="revocation")


@pytest.mark.parametrize("field", ["version", "sequence", "size"])
def test_a_receipt_with_a_boolean_for_an_integer_is_refused(field: str) -> None:
    doc = _receipt_doc()
    if field == "size":
        doc["files"] = [{"name": "records/x.json", "sha256": "ab" * 32, "size": True}]
    else:
        doc[field] = True
    with pytest.raises(MalformedBundleError, match=r"not a version-1|malformed"):
        parse_receipt(canonical_json(doc), "r")


def test_card_files_with_floats_nan_or_duplicated_keys_are_malformed(tmp_path: Path) -> None:
    for text in ('{"body": 1.5}', '{"body": NaN}', '{"body": 1, "body": 2}', "[" * 60000):
        path = tmp_path / "x.card"
        path.write_text(text)
        with pytest.raises(MalformedCardError, match="not JSON"):
            read_document(path)


def test_a_private_key_file_with_a_boolean_version_or_bad_scrypt_cost_is_malformed(labs: Labs, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(labs.uk.home / "keys", home / "keys")
    path = home / "keys" / "identity.json"
    original = json.loads(path.read_text())
    for change in ({"version": True}, {"kdf": {**original["kdf"], "n": True}}, {"kdf": {**original["kdf"], "n": 1000}}):
        path.write_text(json.dumps({**original, **change}))
        with pytest.raises(MalformedCardError):
            load_identity(home, PASSPHRASE)


# --- the writer never makes what the reader refuses ----------------------------------------------


def test_export_refuses_a_receipt_with_other_files_and_a_manifest_over_its_cap(
    labs: Labs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uk = labs.uk
    one, two = tmp_path / "receipt-1.json", tmp_path / "receipt-2.json"
    for path in (one, two):
        path.write_bytes(canonical_json(_receipt_doc()))
    rec = tmp_path / "CASE-42.json"
    rec.write_bytes(record_bytes(a_record()))
    out = tmp_path / "out.bfx"
    for content in ({"receipts": [one, two]}, {"receipts": [one], "records": [rec]}):
        with pytest.raises(BundleContentError, match="holds its one receipt and nothing else"):
            export_bundle(uk.home, uk.identity, uk.trust, out, recipients=["FR-IRCGN"], now=T0, **content)
    monkeypatch.setattr("exchange.bundle.MAX_MANIFEST_BYTES", 600)
    with pytest.raises(BundleContentError, match="bytes \\(at most 600\\): send fewer files"):
        export_bundle(uk.home, uk.identity, uk.trust, out, recipients=["FR-IRCGN"], records=[rec], now=T0)
    assert not out.exists()


# --- canonical JSON as docs/bundle-format.md section 3.6 spells it out --------------------------

SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def section_3_6(value: object) -> str:
    """An encoder written from the document alone, as a partner would write it."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        out = []
        for char in value:
            if char in SHORT_ESCAPES:
                out.append(SHORT_ESCAPES[char])
            elif " " <= char <= "~":
                out.append(char)
            else:
                units = char.encode("utf-16-be")
                out.extend(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "[" + ",".join(section_3_6(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ",".join(f"{section_3_6(k)}:{section_3_6(value[k])}" for k in sorted(value)) + "}"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(0, 2**53 - 1) | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_the_documented_canonical_form_is_the_code_s(value: object) -> None:
    assert section_3_6(value).encode("ascii") == canonical_json(value)


# --- anchored patterns are full matches: a trailing newline is not part of any name ----------------


def test_a_trailing_newline_is_refused_in_lab_ids_countries_member_names_receipts_and_audit_records(labs: Labs, tmp_path: Path) -> None:
    with pytest.raises(MalformedCardError, match="lab id"):
        check_lab(Lab("FR-IRCGN\n", "IRCGN", "FR"), "card")
    with pytest.raises(MalformedCardError, match="country"):
        check_lab(Lab("FR-IRCGN", "IRCGN", "FR\n"), "card")
    assert not is_safe_base("K1.x3p\n")
    with pytest.raises(UnsafeMemberNameError, match="must be 1-200"):
        opened(labs, bundle(labs, tmp_path, files=[file_entry("records/CASE-42.json\n", "record", record_bytes(a_record()))]))
    for field, value in (("bundle_id", "01" * 16 + "\n"), ("header_hash", "cd" * 32 + "\n")):
        with pytest.raises(MalformedBundleError, match="malformed"):
            parse_receipt(canonical_json({**_receipt_doc(), field: value}), "r")
    line = {"v": 1, "seq": 1, "type": "bundle_import\n", "time": "2026-01-15T09:30:00Z", "actor": {}, "details": {}, "prev": "0" * 64}
    assert audit_record(canonical_json(line)) == "bad event type"
    assert (
        audit_record(canonical_json({**line, "type": "bundle_import", "prev": "0" * 64 + "\n"})) == "prev is not a lower-case hex SHA-256"
    )


def test_a_record_naming_its_case_with_a_trailing_newline_is_refused(labs: Labs, tmp_path: Path) -> None:
    document = a_record()
    document["case_id"] += "\n"
    with pytest.raises(RecordError, match="at case_id"):
        opened(labs, bundle(labs, tmp_path, files=[file_entry("records/CASE-42.json", "record", record_bytes(document))]))
