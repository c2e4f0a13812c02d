"""Seconds per comparison of real Fadul pairs: the engine against today's, in the same process.

Ours: ``compare`` as ``ballistics compare`` runs it (both processed scans passed through
preparation, coarse global registration over the full circle, cells around the candidate
angles, both directions). Baseline: the same call with the comparison engine as it was before
it was made faster (``benchmarks/baseline_engine.py``, a verbatim copy), so that both see the
same machine load. The two run alternately on each pair, in alternating order. Each pair's
counts must agree between the two; a disagreement is printed and fails the run.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_compare.py [--pairs 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baseline_engine import baseline_engine  # noqa: E402

from ballistics.compare import Comparison, compare  # noqa: E402
from ballistics.scan import Scan, load_scan  # noqa: E402

FADUL = ROOT.parent / "shared" / "real_scans" / "cartridgeCaseScans" / "fadulProcessed"
T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float, int]:
    """The call's value, its wall time (s) and the peak of the memory it traced (bytes)."""
    tracemalloc.start()
    started = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, elapsed, peak


def pairs_of(names: list[str], count: int) -> list[tuple[str, str]]:
    """A fixed, reproducible mix: the 10 known matches first, then evenly spaced non-matches."""
    matches = [(a, b) for a, b in itertools.combinations(names, 2) if a.split("-")[0] == b.split("-")[0]]
    others = [(a, b) for a, b in itertools.combinations(names, 2) if a.split("-")[0] != b.split("-")[0]]
    return (matches + others[:: max(1, len(others) // count)])[:count]


def run(reference: Scan, questioned: Scan, baseline: bool) -> tuple[Comparison, float, int]:
    if baseline:
        with baseline_engine():
            return timed(lambda: compare(reference, questioned))
    return timed(lambda: compare(reference, questioned))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1, help="timings per pair and engine (the median is kept)")
    args = parser.parse_args()
    if not FADUL.is_dir():
        sys.exit(f"real scans not found at {FADUL}")
    scans = {p.stem: load_scan(p) for p in sorted(FADUL.glob("Fadul *-*.x3p"))}
    pairs = pairs_of(sorted(scans), args.pairs)
    for baseline in (False, True):  # warm-up: imports, FFT plans
        run(scans[pairs[0][0]], scans[pairs[0][1]], baseline)

    times: dict[bool, list[float]] = {False: [], True: []}
    peaks: dict[bool, list[int]] = {False: [], True: []}
    disagreements = 0
    print(f"{'pair':<24}{'CMC':>5}{'High':>6}{'ours s':>9}{'base s':>9}{'ratio':>7}{'ours MB':>9}{'base MB':>9}")
    for k, (a, b) in enumerate(pairs):
        order = (False, True) if k % 2 == 0 else (True, False)
        results: dict[bool, Comparison] = {}
        pair_times: dict[bool, list[float]] = {False: [], True: []}
        pair_peaks: dict[bool, int] = {False: 0, True: 0}
        for _ in range(args.repeat):
            for baseline in order:
                result, elapsed, peak = run(scans[a], scans[b], baseline)
                results[baseline] = result
                pair_times[baseline].append(elapsed)
                pair_peaks[baseline] = max(pair_peaks[baseline], peak)
        for baseline in (False, True):
            times[baseline].append(statistics.median(pair_times[baseline]))
            peaks[baseline].append(pair_peaks[baseline])
        ours, base = results[False], results[True]
        same = (ours.cmc, ours.cmc_original, ours.cmc_high, ours.decision) == (base.cmc, base.cmc_original, base.cmc_high, base.decision)
        disagreements += not same
        print(
            f"{a + ' / ' + b:<24}{ours.cmc:>5}{ours.cmc_high:>6}{times[False][-1]:>9.3f}{times[True][-1]:>9.3f}"
            f"{times[True][-1] / times[False][-1]:>7.2f}{peaks[False][-1] / 2**20:>9.1f}{peaks[True][-1] / 2**20:>9.1f}"
            + ("" if same else f"  DISAGREE: baseline CMC {base.cmc} High {base.cmc_high} {base.decision}")
        )

    ours, base = statistics.median(times[False]), statistics.median(times[True])
    print()
    print(
        f"ours:     median {ours:.3f} s per comparison over {len(pairs)} pairs (max {max(times[False]):.3f} s), peak traced memory {max(peaks[False]) / 2**20:.1f} MB"
    )
    print(
        f"baseline: median {base:.3f} s per comparison over {len(pairs)} pairs (max {max(times[True]):.3f} s), peak traced memory {max(peaks[True]) / 2**20:.1f} MB"
    )
    print(f"speed-up: {base / ours:.2f}x (ratio of the medians); counts and decisions differ on {disagreements} of {len(pairs)} pairs")
    if disagreements:
        sys.exit(1)


if __name__ == "__main__":
    main()
