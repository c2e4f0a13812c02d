"""The numbers of the limits table in docs/bundle-format.md (section 6), computed from the code's constants.

Run it to print them (``python tests/test_limits.py``); the test fails when the document and the
code disagree, so the table cannot drift from the caps again.
"""

from __future__ import annotations

import hashlib
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ballistics.labs import LabKey
from exchange.header import FIXED, MAC_BYTES, MAX_HEADER_BYTES, MAX_STANZA_BYTES, MAX_STANZAS, MIN_HEADER_BYTES, STANZA_BYTES
from exchange.manifest import MAX_FILES, MAX_MANIFEST_BYTES, MAX_ORIGINAL_NAME, MAX_RECEIPT_BYTES, FileEntry, Manifest
from exchange.receipts import encode_receipt, receipt_for
from exchange.stream import CHUNK, TAG

DOC = Path(__file__).resolve().parents[1] / "docs" / "bundle-format.md"
T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
LONGEST_LAB = "L" * 64  # a card's lab id is at most 64 characters
MAX_SIZE = 2**40  # no file is larger than the payload


def header_bytes(stanzas: int, stanza_body: int = STANZA_BYTES) -> int:
    return FIXED.size + stanzas * (2 + stanza_body) + MAC_BYTES


def manifest_of(entries: list[FileEntry], recipients: int = MAX_STANZAS) -> Manifest:
    return Manifest(
        bundle_id="ff" * 16,
        header_hash="ff" * 32,
        sender=LabKey(LONGEST_LAB, "ff" * 32),
        recipients=tuple(LabKey(LONGEST_LAB, f"{i:064x}") for i in range(recipients)),
        sequence=2**53 - 1,
        created=T0,
        expires=T0 + timedelta(days=30),
        files=tuple(entries),
    )


def manifest_bytes(entries: list[FileEntry], recipients: int = MAX_STANZAS) -> int:
    return len(manifest_of(entries, recipients).encoded)


def receipt_bytes(entries: list[FileEntry]) -> int:
    """The delivery receipt for these entries, signed by a lab with a 64-character id; a record entry's id is a UUID."""
    records = [f"{i:08x}-0000-4000-8000-{i:012x}" for i, e in enumerate(entries) if e.kind == "record"]
    return len(encode_receipt(receipt_for(manifest_of(entries), LabKey(LONGEST_LAB, "ff" * 32), records, T0)))


def fitting(entry_of, cap: int = MAX_MANIFEST_BYTES, size=manifest_bytes) -> int:
    """How many entries ``entry_of(i)`` fit in a document (``size``: manifest or receipt) of at most ``cap`` bytes (bisection)."""
    low, high = 0, MAX_FILES
    while low < high:
        middle = (low + high + 1) // 2
        if size([entry_of(i) for i in range(middle)]) <= cap:
            low = middle
        else:
            high = middle - 1
    return low


SHA = hashlib.sha256(b"").hexdigest()


def smallest(i: int) -> FileEntry:
    return FileEntry(f"records/{i}", "record", 0, SHA)


def typical(i: int) -> FileEntry:
    return FileEntry(f"scans/CASE-2026-{i:04d}-K1-Q1-land-3.x3p", "scan", 25_000_000, SHA)


def content_named(i: int) -> FileEntry:
    return FileEntry(f"scans/{i:064x}.x3p", "scan", 25_000_000, SHA)


def record(i: int) -> FileEntry:
    return FileEntry(f"records/CASE-2026-{i:04d}-K1-Q1.json", "record", 3_000, SHA)


def largest(i: int) -> FileEntry:
    # a content-named scan whose original name is 255 characters outside the BMP: 12 bytes each, escaped
    return FileEntry(f"scans/{i:064x}.x3p", "scan", MAX_SIZE, SHA, "\U0001f52b" * (MAX_ORIGINAL_NAME - 1) + " ")


def numbers() -> dict[str, int]:
    return {
        "header_min": MIN_HEADER_BYTES,
        "header_16": header_bytes(MAX_STANZAS),
        "header_16_at_stanza_cap": header_bytes(MAX_STANZAS, MAX_STANZA_BYTES),
        "manifest_no_files": manifest_bytes([]),
        "entry_smallest": manifest_bytes([smallest(10_000)]) - manifest_bytes([]),
        "entry_largest": manifest_bytes([largest(0), largest(1)]) - manifest_bytes([largest(0)]),
        "fit_smallest": fitting(smallest),
        "fit_typical": fitting(typical),
        "fit_largest": fitting(largest),
        "max_files_smallest_bytes": manifest_bytes([smallest(i) for i in range(MAX_FILES)]),
        "receipt_no_files": receipt_bytes([]),
        "receipt_fit_typical": fitting(typical, MAX_RECEIPT_BYTES, receipt_bytes),
        "receipt_fit_content_named": fitting(content_named, MAX_RECEIPT_BYTES, receipt_bytes),
        "receipt_fit_record": fitting(record, MAX_RECEIPT_BYTES, receipt_bytes),
        "chunk_overhead_ppm": TAG * 1_000_000 // CHUNK,
    }


def test_the_limits_table_states_the_computed_numbers() -> None:
    text = DOC.read_text()
    table = text[text.index("## 6. Limits") : text.index("## 7.")]
    values = numbers()
    assert values["header_min"] == 1308 and MAX_HEADER_BYTES == 65536
    for name, value in values.items():
        if name == "chunk_overhead_ppm":
            continue
        assert f"{value:,}" in table, f"{name} = {value:,} is not in the limits table"
    assert values["fit_smallest"] < MAX_FILES < values["max_files_smallest_bytes"]  # the manifest cap binds first
    # a receipt lists every file: for ordinary files its cap binds long before the manifest's (section 6)
    assert values["receipt_fit_content_named"] < values["receipt_fit_record"] < values["receipt_fit_typical"] < values["fit_typical"] // 10
    assert re.search(r"0\.02 %", table) and values["chunk_overhead_ppm"] == 244


if __name__ == "__main__":
    for key, value in numbers().items():
        print(f"{key:28} {value:,}")
