"""How fast the simulator fires and writes cases, against a plain x3p write of the same surface.

Run by hand: ``python benchmarks/bench_synth.py [cases]`` (default 1,000 cases, about four
minutes on one core). Prints seconds per case for firing (in memory) and for firing and writing
the x3p + PNG, and their ratio to the baseline, ``save_x3p`` of one simulated surface as float64.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ballistics import synth
from ballistics.scan import save_x3p


def per_call(function, repeats: int) -> float:
    start = time.perf_counter()
    for i in range(repeats):
        function(i)
    return (time.perf_counter() - start) / repeats


def main(cases: int) -> None:
    seed = 2026
    firearms = synth.generate_firearms(max(cases // 10, 1), seed)
    shots = -(-cases // len(firearms))
    schedule = [(f, k) for f in firearms for k in range(1, shots + 1)][:cases]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sample = synth.fire(firearms[0], 1, seed)
        baseline = per_call(lambda i: save_x3p(sample.scan, folder / "baseline.x3p"), 10)
        fire = per_call(lambda i: synth.fire(*schedule[i], seed), len(schedule))
        write = per_call(lambda i: synth.write_case(synth.fire(*schedule[i], seed), folder), min(len(schedule), 100))
    side = sample.scan.shape[0]
    print(f"cases: {len(schedule)} from {len(firearms)} firearms, {side} x {side} points each")
    print(f"baseline save_x3p (float64):  {baseline:.3f} s per surface")
    print(f"fire (in memory):             {fire:.3f} s per case   ratio {fire / baseline:.2f}")
    print(f"fire + write x3p + png:       {write:.3f} s per case   ratio {write / baseline:.2f}")
    print(f"1,000 cases written:          {1000 * write / 60:.1f} min")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
