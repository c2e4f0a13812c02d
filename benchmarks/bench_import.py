"""Batch import throughput: bundles and records per second for 200 bundles, and peak memory.

Each bundle holds 3 match records (no scans: scan preparation is the store's cost, measured by
bench_search/bench_preprocess). Baseline, in the same process over the same 200 bundles:
``open_bundle`` alone (what ``bundle verify`` does). The import adds a second decryption while
staging the files, schema parsing, the ledger check and one SQLite transaction per bundle.

    python benchmarks/bench_import.py [--bundles 200]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from exchange_support import introduce, make_lab  # noqa: E402
from test_records import comparison_dict  # noqa: E402

from ballistics.records import build_record, write_record  # noqa: E402
from ballistics.store import Store  # noqa: E402
from exchange.bundle import export_bundle  # noqa: E402
from exchange.importer import import_bundles  # noqa: E402
from exchange.reader import open_bundle  # noqa: E402

RECORDS_PER_BUNDLE = 3


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundles", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        root = Path(tmp)
        uk, fr = make_lab(root, "UK-FSL"), make_lab(root, "FR-IRCGN", "FR")
        introduce(uk, fr)
        inbox = root / "inbox"
        inbox.mkdir()
        lab = uk.identity.card.lab
        started = time.perf_counter()
        for index in range(args.bundles):
            records = [
                write_record(
                    build_record(comparison_dict(), lab=lab, case_id=f"C-{index}", exhibits=("K1", f"Q{n}"), examiner={"name": "A"}),
                    root / f"r{n}.json",
                )
                for n in range(RECORDS_PER_BUNDLE)
            ]
            export_bundle(uk.home, uk.identity, uk.trust, inbox / f"b{index:04d}.bfx", recipients=["FR-IRCGN"], records=records)
        print(
            f"prepared {args.bundles} bundles of {RECORDS_PER_BUNDLE} records in {time.perf_counter() - started:.1f} s; peak RSS {peak_mb():.0f} MB"
        )

        paths = sorted(inbox.glob("*.bfx"))
        trust = fr.trust
        started = time.perf_counter()
        for path in paths:
            open_bundle(path, fr.identity, trust)
        verify_s = time.perf_counter() - started
        verify_peak = peak_mb()

        store = Store.open(fr.home)
        started = time.perf_counter()
        report = import_bundles(fr.home, store, fr.identity, trust, [inbox])
        import_s = time.perf_counter() - started
        assert len(report.of("imported")) == args.bundles, report.to_dict()
        records = args.bundles * RECORDS_PER_BUNDLE

        started = time.perf_counter()
        again = import_bundles(fr.home, store, fr.identity, trust, [inbox])
        duplicate_s = time.perf_counter() - started
        assert len(again.of("duplicate")) == args.bundles

    print(f"{'step':<34}{'bundles/s':>10}{'records/s':>11}{'seconds':>9}")
    print(f"{'verify only (baseline)':<34}{args.bundles / verify_s:>10.1f}{records / verify_s:>11.1f}{verify_s:>9.2f}")
    print(f"{'import (verify, stage, commit)':<34}{args.bundles / import_s:>10.1f}{records / import_s:>11.1f}{import_s:>9.2f}")
    print(f"{'re-import (all duplicates)':<34}{args.bundles / duplicate_s:>10.1f}{records / duplicate_s:>11.1f}{duplicate_s:>9.2f}")
    print(f"import / verify time ratio: {import_s / verify_s:.2f}x")
    print(f"peak RSS: {verify_peak:.0f} MB after verify, {peak_mb():.0f} MB after import")


if __name__ == "__main__":
    main()
