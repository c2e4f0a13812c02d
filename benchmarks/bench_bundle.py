"""Bundle export and verification: throughput and peak memory against the raw AEAD.

Each measurement runs in a fresh child process, so its peak resident memory (ru_maxrss) is its
own. The baseline is AES-256-GCM alone over the same number of bytes in 64 KiB chunks, run in
the same invocation. Payloads are a single x3p-like scan of the given size plus one record.

    .venv/bin/python benchmarks/bench_bundle.py                  # 10 MB, 100 MB, 1 GB
    .venv/bin/python benchmarks/bench_bundle.py --sizes 10 100   # quicker
    .venv/bin/python benchmarks/bench_bundle.py --include-2gb    # adds the 2 GB case
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ballistics.labs import Lab  # noqa: E402
from exchange.keys import IdentityParameters, KeyProtection, init_identity, load_identity  # noqa: E402
from exchange.trust import TrustStore  # noqa: E402

MB = 1_000_000
PASSPHRASE = b"benchmark passphrase"
CHEAP = IdentityParameters(protection=KeyProtection(n=2**14))
NOW = datetime.now(UTC).replace(microsecond=0)


def setup(root: Path, size_mb: int) -> None:
    """Two labs that trust each other, one record and one scan of ``size_mb`` MB."""
    from ballistics.records import build_record, write_record

    uk = init_identity(root / "uk", Lab("UK-FSL", "UK lab", "GB"), PASSPHRASE, parameters=CHEAP)
    fr = init_identity(root / "fr", Lab("FR-IRCGN", "IRCGN", "FR"), PASSPHRASE, parameters=CHEAP)
    TrustStore.open(root / "uk").trust(fr.card, fr.card.fingerprint, where="bench")
    TrustStore.open(root / "fr").trust(uk.card, uk.card.fingerprint, where="bench")
    comparison = {
        "reference": {"path": "K1.x3p", "sha256": "a" * 64},
        "questioned": {"path": "Q1.x3p", "sha256": "b" * 64},
        "cmc": 12,
        "cmc_forward": 12,
        "cmc_backward": 13,
        "cells_compared": 40,
        "ccf": 0.5,
        "rotation_deg": 3.0,
        "translation_um": [6.25, 0.0],
        "firing_pin": None,
        "decision": "identification",
        "method": {"name": "cmc"},
        "software": {"name": "ballistics", "version": "bench"},
    }
    record = build_record(
        comparison,
        lab=Lab("UK-FSL", "UK lab", "GB"),
        case_id="BENCH",
        exhibits=("K1", "Q1"),
        examiner={"name": "Bench"},
    )
    write_record(record, root / "record.json")
    block = os.urandom(1 << 20)
    with open(root / "scan.x3p", "wb") as handle:
        handle.write(b"PK\x03\x04")
        remaining = size_mb * MB - 4
        while remaining > 0:
            handle.write(block[: min(len(block), remaining)])
            remaining -= min(len(block), remaining)


def child(task: str, root: Path, size_mb: int) -> dict:
    """One measurement in this (fresh) process; returns seconds and peak RSS."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from exchange.bundle import export_bundle
    from exchange.reader import open_bundle
    from exchange.stream import CHUNK, nonce

    started = time.perf_counter()
    if task == "aead":
        aead, chunk, aad = AESGCM(os.urandom(32)), os.urandom(CHUNK), os.urandom(32)
        for counter in range(-(-size_mb * MB // CHUNK)):
            aead.encrypt(nonce(counter, False), chunk, aad)
    elif task == "export":
        uk = load_identity(root / "uk", PASSPHRASE)
        export_bundle(
            root / "uk",
            uk,
            TrustStore.open(root / "uk"),
            root / "out.bfx",
            recipients=["FR-IRCGN"],
            records=[root / "record.json"],
            scans=[root / "scan.x3p"],
            now=NOW,
        )
    elif task == "verify":
        fr = load_identity(root / "fr", PASSPHRASE)
        open_bundle(root / "out.bfx", fr, TrustStore.open(root / "fr"), now=NOW)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(task: str, root: Path, size_mb: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", task, str(root), str(size_mb)], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["mb_per_s"] = size_mb / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="payload sizes in MB")
    parser.add_argument("--include-2gb", action="store_true", help="also run a 2000 MB payload")
    parser.add_argument("--child", nargs=3, metavar=("TASK", "ROOT", "MB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, root, size = args.child
        print(json.dumps(child(task, Path(root), int(size))))
        return
    sizes = args.sizes + ([2000] if args.include_2gb else [])
    print(f"{'payload':>9} {'task':>7} {'MB/s':>9} {'x AEAD':>7} {'seconds':>8} {'peak RSS MB':>12}")
    for size in sizes:
        with tempfile.TemporaryDirectory(dir=REPO / "benchmarks") as tmp:
            root = Path(tmp)
            setup(root, size)
            rows = {task: measure(task, root, size) for task in ("aead", "export", "verify")}
            bundle_mb = (root / "out.bfx").stat().st_size / MB
        for task, row in rows.items():
            ratio = row["mb_per_s"] / rows["aead"]["mb_per_s"]
            print(f"{size:>6} MB {task:>7} {row['mb_per_s']:>9.1f} {ratio:>7.2f} {row['seconds']:>8.2f} {row['peak_rss_mb']:>12.1f}")
        print(f"{'':>9} bundle {bundle_mb:.1f} MB")


if __name__ == "__main__":
    main()
