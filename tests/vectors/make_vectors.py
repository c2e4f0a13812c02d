"""Regenerate the bundle-format test vectors (run by hand; the outputs are committed).

Key material comes from fixed seeds and every random choice of the writer (bundle id, file
key) from a fixed byte stream, so the header (except the HPKE stanza, whose encapsulation
randomness lives inside the library) and the whole payload (except the ML-DSA signature bytes,
which are hedged) are reproducible. ``tests/test_bundle.py`` rebuilds those parts and compares
them byte for byte with the committed bundle, and decrypts the committed bundle.

    .venv/bin/python tests/vectors/make_vectors.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from ballistics.labs import Lab  # noqa: E402
from exchange.keys import Identity, KeyMaterial, make_card  # noqa: E402
from exchange.trust import TrustStore  # noqa: E402

CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=timezone.utc)
VALIDITY = timedelta(days=730)
LABS = {"sender": ("UK-VECTOR", "GB", 0x11), "recipient": ("FR-VECTOR", "FR", 0x22)}


def seeds(byte: int) -> bytes:
    return hashlib.shake_256(bytes([byte]) * 32).digest(160)


def identity(role: str) -> Identity:
    lab_id, country, byte = LABS[role]
    material = KeyMaterial(seeds(byte))
    return Identity(make_card(Lab(lab_id, f"Vector lab {lab_id}", country), material, CREATED, VALIDITY), material)


def fixed_rng(label: bytes):
    """A deterministic byte stream standing in for os.urandom."""
    state = {"counter": 0}

    def rng(size: int) -> bytes:
        state["counter"] += 1
        return hashlib.shake_256(label + state["counter"].to_bytes(4, "big")).digest(size)

    return rng


def record_document() -> dict:
    return {
        "schema_version": 1, "record_id": "00000000-0000-4000-8000-000000000001",
        "lab": {"id": "UK-VECTOR", "name": "Vector lab UK-VECTOR", "country": "GB"},
        "case_id": "VECTOR-1", "exhibits": {"reference": "K1", "questioned": "Q1"},
        "comparison": {"method": {"name": "congruent-matching-cells/high-cmc", "parameters": {"cells": 8}},
                       "software": {"name": "ballistics", "version": "0.1.0"}},
        "scores": {"cmc": 14, "cmc_forward": 14, "cmc_backward": 15, "cells_compared": 40, "ccf": 0.5,
                   "rotation_deg": 3.0, "translation_um": [12.5, -6.25], "firing_pin": None},
        "conclusion": {"decision": "identification"}, "examiner": {"name": "Vector Examiner"},
        "created": "2026-01-15T09:00:00Z",
        "scans": {"reference": {"sha256": "0" * 64}, "questioned": {"sha256": "1" * 64}},
    }


def scan_bytes() -> bytes:
    """66,000 bytes that look like an x3p (zip magic), so the payload spans two chunks."""
    return b"PK\x03\x04" + hashlib.shake_256(b"vector scan").digest(66000 - 4)


def main() -> None:
    import tempfile

    from ballistics.records import record_bytes
    from exchange.bundle import export_bundle

    sender, recipient = identity("sender"), identity("recipient")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        trust = TrustStore.open(home)
        trust.trust(recipient.card, recipient.card.fingerprint, where="vector", now=NOW)
        (home / "VECTOR-1.json").write_bytes(record_bytes(record_document()))
        (home / "scan-K1.x3p").write_bytes(scan_bytes())
        export_bundle(home, sender, trust, HERE / "bundle-v1.bfx", recipients=["FR-VECTOR"],
                      records=[home / "VECTOR-1.json"], scans=[home / "scan-K1.x3p"], now=NOW, rng=fixed_rng(b"bundle-v1"))
    rng = fixed_rng(b"bundle-v1")
    bundle_id, file_key = rng(16), rng(32)
    doc = {
        "description": "Bundle format v1 vectors; see docs/bundle-format.md and tests/vectors/make_vectors.py",
        "now": "2026-01-15T09:30:00Z",
        "labs": {role: {"lab": LABS[role][0], "seeds": seeds(LABS[role][2]).hex(), "key_id": ident.card.key_id,
                        "card": ident.card.to_dict()} for role, ident in (("sender", sender), ("recipient", recipient))},
        "bundle": {"file": "bundle-v1.bfx", "bundle_id": bundle_id.hex(), "file_key": file_key.hex(),
                   "sha256": hashlib.sha256((HERE / "bundle-v1.bfx").read_bytes()).hexdigest(),
                   "files": {"records/VECTOR-1.json": hashlib.sha256(record_bytes(record_document())).hexdigest(),
                             "scans/scan-K1.x3p": hashlib.sha256(scan_bytes()).hexdigest()}},
    }
    (HERE / "vectors.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
