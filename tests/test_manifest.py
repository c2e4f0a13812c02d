"""The signed manifest: a typed value that keeps its canonical bytes, and the rules it is parsed by."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from exchange_support import T0

from ballistics.labs import LabKey
from exchange.canonical import canonical_json
from exchange.errors import MalformedBundleError, UnsafeMemberNameError
from exchange.manifest import SIGNATURE_BYTES, FileEntry, Manifest, check_entries, parse_manifest

SHA = "ab" * 32


def a_manifest(**changes) -> Manifest:
    fields = {
        "bundle_id": "01" * 16,
        "header_hash": "cd" * 32,
        "sender": LabKey("UK-FSL", "11" * 32),
        "recipients": (LabKey("DE-BKA", "22" * 32), LabKey("FR-IRCGN", "33" * 32)),
        "sequence": 7,
        "created": T0,
        "expires": T0 + timedelta(days=30),
        "files": (
            FileEntry("records/CASE-42.json", "record", 1200, SHA),
            FileEntry(f"scans/{SHA}.x3p", "scan", 5000, SHA, "Fadul 3-1.x3p"),
        ),
        **changes,
    }
    return Manifest(**fields)


def doc_of(manifest: Manifest) -> dict:
    return json.loads(manifest.encoded)


def test_the_bytes_are_the_canonical_encoding_of_the_fields() -> None:
    manifest = a_manifest()
    assert manifest.encoded == canonical_json(manifest.to_dict())
    doc = doc_of(manifest)
    assert doc["created"] == "2026-01-15T09:30:00Z" and doc["expires"] == "2026-02-14T09:30:00Z"
    assert doc["sender"] == {"lab": "UK-FSL", "key_id": "11" * 32}
    assert doc["files"][0] == {"name": "records/CASE-42.json", "kind": "record", "size": 1200, "sha256": SHA}  # no original_name
    assert doc["files"][1]["original_name"] == "Fadul 3-1.x3p"
    with pytest.raises(ValueError, match="not the canonical encoding"):
        replace(manifest, sequence=8, encoded=manifest.encoded)


def test_parsing_round_trips_and_keeps_the_received_bytes() -> None:
    manifest = a_manifest()
    data = bytes(manifest.encoded)
    parsed = parse_manifest(data, "m")
    assert parsed == manifest and parsed.encoded == data
    assert parsed.recipient_ids == ["22" * 32, "33" * 32] and parsed.files[1].display_name == "Fadul 3-1.x3p"
    assert parsed.files[0].display_name == "CASE-42.json"


def test_binding_the_header_changes_the_bytes_and_the_length_is_known_before() -> None:
    unbound = a_manifest(header_hash="0" * 64)
    bound = unbound.with_header_hash("ef" * 32)
    assert bound.header_hash == "ef" * 32 and bound.encoded != unbound.encoded and len(bound.encoded) == len(unbound.encoded)
    assert bound.payload_length() == unbound.payload_length() == 4 + len(bound.encoded) + 2 + SIGNATURE_BYTES + 1200 + 5000


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: {**d, "extra": 1}, "exactly the fields"),
        (lambda d: {k: v for k, v in d.items() if k != "expires"}, "exactly the fields"),
        (lambda d: {**d, "version": 2}, "version-1"),
        (lambda d: {**d, "sequence": 0}, "sequence"),
        (lambda d: {**d, "sequence": True}, "sequence"),
        (lambda d: {**d, "expires": d["created"]}, "expires"),
        (lambda d: {**d, "created": "2026-1-15T09:30:00Z"}, "form YYYY-MM-DDTHH:MM:SSZ"),  # lenient strptime; one spelling only
        (lambda d: {**d, "bundle_id": "XY" * 16}, "bundle_id"),
        (lambda d: {**d, "sender": {"lab": "UK-FSL", "key_id": "11" * 32, "name": "x"}}, "sender"),
        (lambda d: {**d, "files": [{**d["files"][0], "size": -1}]}, "files entry"),
        (lambda d: {**d, "files": [{**d["files"][1], "original_name": 7}]}, "files entry"),
    ],
)
def test_malformed_manifests_are_refused(mutate, words: str) -> None:
    data = canonical_json(mutate(doc_of(a_manifest())))
    with pytest.raises(MalformedBundleError, match=words):
        parse_manifest(data, "m")


def test_non_canonical_bytes_are_refused() -> None:
    spaced = json.dumps(doc_of(a_manifest()), sort_keys=True).encode("ascii")  # ", " and ": " separators
    with pytest.raises(MalformedBundleError, match="canonical"):
        parse_manifest(spaced, "m")
    with pytest.raises(MalformedBundleError, match="ASCII JSON"):
        parse_manifest(a_manifest().encoded.replace(b"Fadul", "Fädul".encode()), "m")


@pytest.mark.parametrize(
    ("name", "original", "words"),
    [
        ("scans/../x.x3p", None, "'..'"),
        ("scans\\x.x3p", None, "backslash"),
        ("/scans/x.x3p", None, "absolute"),
        ("records/x.x3p", None, "must be under scans/"),
        ("scans/x y.x3p", None, "must be 1-200"),
        (f"scans/{SHA}.x3p", "../../etc/passwd", "path separator"),
        (f"scans/{SHA}.x3p", "..", "path separator"),
        (f"scans/{SHA}.x3p", "K1\u202egnp.x3p", "control or invisible"),
        (f"scans/{SHA}.x3p", "K1\n.x3p", "control or invisible"),
        (f"scans/{SHA}.x3p", "x" * 256, "1-255 characters"),
        (f"scans/{SHA}.x3p", "K1.x3p", "safe name"),
    ],
)
def test_member_and_original_names_are_checked(name: str, original: str | None, words: str) -> None:
    with pytest.raises(UnsafeMemberNameError, match=words):
        check_entries([FileEntry(name, "scan", 1, SHA, original)], "m")
    doc = doc_of(a_manifest())
    doc["files"] = [{"name": name, "kind": "scan", "size": 1, "sha256": SHA, **({"original_name": original} if original else {})}]
    with pytest.raises(UnsafeMemberNameError, match=words):
        parse_manifest(canonical_json(doc), "m")


OTHER = "cd" * 32


@pytest.mark.parametrize(
    ("entry", "error", "words"),
    [
        (FileEntry(f"scans/{OTHER}.x3p", "scan", 1, SHA), UnsafeMemberNameError, "named by a SHA-256 other than its content's"),
        (FileEntry(f"scans/{OTHER}.x3p", "scan", 1, SHA, "K 1.x3p"), UnsafeMemberNameError, "other than its content's"),
        (FileEntry(f"scans/{SHA.upper()}.x3p", "scan", 1, SHA), UnsafeMemberNameError, "or not in lower case"),
        (FileEntry(f"scans/{SHA}.X3P", "scan", 1, SHA), UnsafeMemberNameError, "or not in lower case"),
        (FileEntry("scans/K1.x3p", "scan", 1, SHA, "K 1.x3p"), UnsafeMemberNameError, "only a scan named scans/<sha256>.x3p may"),
        (FileEntry(f"records/{SHA}.json", "record", 1, SHA, "K 1.json"), UnsafeMemberNameError, "only a scan named"),
        (FileEntry("records/R.json", "record", 4 * 2**20 + 1, SHA), MalformedBundleError, "record of 4194305 bytes exceeds 4194304"),
        (FileEntry("receipts/r.json", "receipt", 2**16 + 1, SHA), MalformedBundleError, "receipt of 65537 bytes exceeds 65536"),
    ],
)
def test_content_names_original_names_and_size_caps_are_checked_with_the_manifest(
    entry: FileEntry, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        check_entries([entry], "m")
    doc = doc_of(a_manifest())
    doc["files"] = [entry.to_dict()]
    with pytest.raises(error, match=words):
        parse_manifest(canonical_json(doc), "m")


def test_a_content_name_and_the_size_caps_themselves_are_accepted() -> None:
    check_entries(
        [
            FileEntry(f"scans/{SHA}.x3p", "scan", 1, SHA),
            FileEntry(f"scans/{OTHER}.x3p", "scan", 2**40, OTHER, "K 1.x3p"),  # scans have no cap of their own
            FileEntry("records/R.json", "record", 4 * 2**20, SHA),
            FileEntry("receipts/r.json", "receipt", 2**16, SHA),
            FileEntry(f"records/{OTHER}.json", "record", 1, SHA),  # only a scan's name is read as a hash
        ],
        "m",
    )


def test_names_are_unique_ignoring_case() -> None:
    with pytest.raises(UnsafeMemberNameError, match="duplicate member name"):
        check_entries([FileEntry("scans/K1.x3p", "scan", 1, SHA), FileEntry("scans/k1.X3P", "scan", 1, SHA)], "m")
    check_entries([FileEntry("scans/K1.x3p", "scan", 1, SHA), FileEntry(f"scans/{SHA}.x3p", "scan", 1, SHA, "K 1.x3p")], "m")
