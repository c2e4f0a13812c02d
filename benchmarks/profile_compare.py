"""Where a comparison's time goes: cProfile of Fadul comparisons by stage, this engine or today's.

Profiles ``compare`` (as ``ballistics compare`` runs it) on the first ``--pairs`` pairs of
``benchmarks/bench_compare.py``, on one thread (cProfile sees only the thread that calls it,
so ``ballistics.registration.THREADS`` is set to 1), with CPU time as the clock so that the
load of a shared machine does not inflate the figures. Prints CPU milliseconds per comparison
by stage, then the functions that spend the most time themselves.

    PYTHONPATH=. .venv/bin/python benchmarks/profile_compare.py [--baseline] [--pairs 6]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baseline_engine import baseline_engine  # noqa: E402
from bench_compare import FADUL, pairs_of  # noqa: E402

import ballistics.registration  # noqa: E402
from ballistics.compare import compare  # noqa: E402
from ballistics.scan import load_scan  # noqa: E402

#: Stages, by the function whose cumulative time measures them (file name, function name).
STAGES = {
    "preparation (pass-through of processed scans)": ("preprocess.py", "prepare"),
    "coarse registration, 120 angles": (None, "coarse_scores"),
    "cells, both directions": (None, "register_direction"),
    "registered-surface correlation (ccf)": ("compare.py", "registered_correlation"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true", help="profile today's engine (benchmarks/baseline_engine.py)")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args()
    if not FADUL.is_dir():
        sys.exit(f"real scans not found at {FADUL}")
    ballistics.registration.THREADS = 1
    scans = {p.stem: load_scan(p) for p in sorted(FADUL.glob("Fadul *-*.x3p"))}
    pairs = pairs_of(sorted(scans), 20)[: args.pairs]
    with baseline_engine() if args.baseline else nullcontext():
        compare(scans[pairs[0][0]], scans[pairs[0][1]])  # warm-up
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for a, b in pairs:
            compare(scans[a], scans[b])
        profile.disable()
    stats = pstats.Stats(profile)
    raw = stats.stats  # type: ignore[attr-defined]
    per = 1000.0 / len(pairs)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{'baseline' if args.baseline else 'ours'}: CPU ms per comparison over {len(pairs)} Fadul pairs, one thread")
    print(f"  {'total':<48}{total * per:8.0f}")
    for label, (filename, function) in STAGES.items():
        cumulative = sum(
            ct for (file, _, name), (_, _, _, ct, _) in raw.items() if name == function and (filename is None or file.endswith(filename))
        )
        print(f"  {label:<48}{cumulative * per:8.0f}")
    print(f"\n  functions by own time{'':<27}{'ms':>8}")
    for (file, line, name), (_, calls, tottime, _, _) in sorted(raw.items(), key=lambda item: -item[1][2])[: args.top]:
        where = name if file == "~" else f"{Path(file).name}:{line}({name})"
        print(f"  {where[:60]:<60}{tottime * per:8.1f}  ({calls / len(pairs):.0f} calls)")


if __name__ == "__main__":
    main()
