"""Seconds per comparison of real Fadul pairs, against an exhaustive baseline in the same process.

Ours: the full-circle search as `ballistics compare` runs it (coarse global registration, then
cells around the candidate angles, both directions, one process).
Baseline: the straightforward full-circle CMC: rotate the questioned scan in 3-degree steps over
360 degrees and register every cell at every step, both directions, with the same cell engine.

    .venv/bin/python benchmarks/bench_compare.py [--pairs 20] [--baseline-pairs 4]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ballistics.cmc import combine_directions, direction_rules, register_direction  # noqa: E402
from ballistics.compare import compare  # noqa: E402
from ballistics.method import CmcParams  # noqa: E402
from ballistics.scan import load_scan  # noqa: E402

FADUL = ROOT.parent / "shared" / "real_scans" / "cartridgeCaseScans" / "fadulProcessed"


def baseline(reference: np.ndarray, questioned: np.ndarray, spacing_m: float, params: CmcParams) -> int:
    """Exhaustive full-circle CMC: every cell at every 3-degree step, both directions."""
    angles = np.arange(-180.0 + params.angle_step_deg, 180.0 + 1e-9, params.angle_step_deg)
    zero = np.zeros((len(angles), 2))
    ref, qst = (np.asarray(s, np.float32) for s in (reference, questioned))
    forward = register_direction(ref, qst, angles, zero, params)
    backward = register_direction(qst, ref, -angles, zero, params)
    tx = params.translation_um * 1e-6 / spacing_m
    return combine_directions(direction_rules(forward, tx, params), direction_rules(backward, tx, params), params)[0]


def timed(fn):  # type: ignore[no-untyped-def]
    tracemalloc.start()
    started = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--baseline-pairs", type=int, default=4)
    args = parser.parse_args()
    if not FADUL.is_dir():
        sys.exit(f"real scans not found at {FADUL}")
    scans = {p.stem: load_scan(p) for p in sorted(FADUL.glob("Fadul *-*.x3p"))}
    names = sorted(scans)
    # a fixed, reproducible mix: the 10 known matches first, then non-matches
    matches = [(a, b) for a, b in itertools.combinations(names, 2) if a.split("-")[0] == b.split("-")[0]]
    others = [(a, b) for a, b in itertools.combinations(names, 2) if a.split("-")[0] != b.split("-")[0]]
    pairs = (matches + others[:: max(1, len(others) // args.pairs)])[: args.pairs]
    compare(scans[pairs[0][0]], scans[pairs[0][1]])  # warm-up: imports, FFT plans

    ours_times, ours_peaks = [], []
    print(f"{'pair':<24}{'CMC':>5}{'High':>6}{'seconds':>10}{'peak MB':>10}")
    for a, b in pairs:
        result, elapsed, peak = timed(lambda a=a, b=b: compare(scans[a], scans[b]))
        ours_times.append(elapsed)
        ours_peaks.append(peak)
        print(f"{a + ' / ' + b:<24}{result.cmc:>5}{result.cmc_high:>6}{elapsed:>10.3f}{peak / 2**20:>10.1f}")

    base_times, base_peaks = [], []
    params = CmcParams()
    for a, b in pairs[: args.baseline_pairs]:
        ref = compare(scans[a], scans[b]).surfaces
        assert ref is not None
        count, elapsed, peak = timed(lambda ref=ref: baseline(ref[0].surface, ref[1].surface, ref[0].spacing_m, params))
        base_times.append(elapsed)
        base_peaks.append(peak)
        print(f"baseline {a + ' / ' + b:<24} High CMC {count:>3} {elapsed:8.2f} s  peak {peak / 2**20:.1f} MB")

    ours, base = statistics.median(ours_times), statistics.median(base_times)
    print()
    print(
        f"ours:     median {ours:.3f} s per comparison over {len(ours_times)} pairs (max {max(ours_times):.3f} s), peak traced memory {max(ours_peaks) / 2**20:.1f} MB"
    )
    print(f"baseline: median {base:.3f} s per comparison over {len(base_times)} pairs, peak traced memory {max(base_peaks) / 2**20:.1f} MB")
    print(f"speed-up: {base / ours:.1f}x")


if __name__ == "__main__":
    main()
