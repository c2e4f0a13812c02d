"""The Fadul blind test: each questioned case against the 20 known cases, as the software decides.

The source slides of the questioned cases (Fadul A ... Z) are withheld; this script only states
which known slide(s) each one is identified with and the CMC counts, for the examiner or the
study's key holder to score.

    .venv/bin/python benchmarks/fadul_blind.py [--workers 2] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ballistics.compare import compare_prepared, scan_identity  # noqa: E402
from ballistics.preprocess import prepare  # noqa: E402
from ballistics.scan import load_scan  # noqa: E402

FADUL = ROOT.parent / "shared" / "real_scans" / "cartridgeCaseScans" / "fadulProcessed"
_PREPARED: dict = {}


def _init(prepared: dict) -> None:
    _PREPARED.update(prepared)


def _one(pair: tuple[str, str]) -> tuple[str, str, int, int, str]:
    q, k = pair
    (qb, qid), (kb, kid) = _PREPARED[q], _PREPARED[k]
    result = compare_prepared(kb, qb, kid, qid)
    return q, k, result.cmc, result.cmc_high, result.decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    if not FADUL.is_dir():
        sys.exit(f"real scans not found at {FADUL}")
    known = sorted(p for p in FADUL.glob("Fadul *.x3p") if re.fullmatch(r"Fadul \d+-\d+", p.stem))
    questioned = sorted(p for p in FADUL.glob("Fadul *.x3p") if re.fullmatch(r"Fadul [A-Z]", p.stem))
    prepared = {}
    for path in known + questioned:
        scan = load_scan(path)
        prepared[path.stem] = (prepare(scan), scan_identity(scan))
    pairs = [(q.stem, k.stem) for q in questioned for k in known]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(prepared,)) as pool:
        rows = list(pool.map(_one, pairs, chunksize=4))
    elapsed = time.perf_counter() - started
    if args.csv:
        with open(args.csv, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["questioned", "known", "cmc", "cmc_high", "decision"])
            writer.writerows(rows)
    print(f"{len(pairs)} comparisons in {elapsed:.0f} s ({elapsed / len(pairs):.2f} s each with {args.workers} workers)\n")
    print(f"{'questioned':<12}{'identified with (slide: CMC)':<40}{'highest CMC among the others'}")
    for q in questioned:
        mine = [r for r in rows if r[0] == q.stem]
        hits = sorted((r for r in mine if r[4] == "identification"), key=lambda r: -r[2])
        slides = {}
        for r in hits:
            slide = r[1].split()[1].split("-")[0]
            slides[slide] = max(slides.get(slide, 0), r[2])
        rest = max((r[2] for r in mine if r[4] != "identification"), default=0)
        named = ", ".join(f"slide {s}: {c}" for s, c in slides.items()) or "none"
        print(f"{q.stem:<12}{named:<40}{rest}")


if __name__ == "__main__":
    main()
