"""Prepared surfaces for the search benchmark, cached on disk between runs.

Preparing a scan costs seconds (tens under load); ``bench_search.py`` needs the 115 real scans
with known sources (95 Weller cases, the 20 Fadul knowns; never the Fadul questioned cases) and
some simulated firearms. Each is prepared once with the default parameters and saved under
``CACHE/real`` or ``CACHE/sim`` (``ballistics.surface_cache`` format); a run finds them there.

    python benchmarks/bench_prepare_cache.py [--cache /work/bench-cache] [--simulated 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ballistics import synth  # noqa: E402
from ballistics.method import PreprocessParams  # noqa: E402
from ballistics.preprocess import BreechFace, prepare  # noqa: E402
from ballistics.scan import load_scan  # noqa: E402
from ballistics.surface_cache import load_prepared, save_prepared  # noqa: E402
from ballistics.validate import firearm_from_name  # noqa: E402

SCANS = Path("/work/shared/real_scans/cartridgeCaseScans")
DEFAULT_CACHE = Path("/work/bench-cache")
#: Seed of the simulated firearms (distinct from the sample set's).
SIM_SEED = 20260


def real_paths() -> list[Path]:
    """Weller cases and Fadul knowns: the scans whose firearm is known (never the questioned ones)."""
    paths = sorted((SCANS / "wellerProcessed").glob("*.x3p")) + sorted((SCANS / "fadulProcessed").glob("*.x3p"))
    return [p for p in paths if firearm_from_name(p) is not None]


def real_faces(cache: Path) -> dict[str, BreechFace]:
    """Prepared real surfaces by file stem, prepared now where the cache lacks them."""
    out = {}
    for path in real_paths():
        target = cache / "real" / f"{path.stem}.npz"
        if not target.exists():
            save_prepared(prepare(load_scan(path)), target)
        out[path.stem] = load_prepared(target, PreprocessParams())
    return out


def simulated_faces(cache: Path, count: int) -> dict[str, BreechFace]:
    """Shot 1 of ``count`` simulated firearms (seed :data:`SIM_SEED`), prepared."""
    out = {}
    for gun in synth.generate_firearms(count, SIM_SEED):
        target = cache / "sim" / f"{gun.id}.npz"
        if not target.exists():
            save_prepared(prepare(synth.fire(gun, 1, SIM_SEED).scan), target)
        out[gun.id] = load_prepared(target, PreprocessParams())
    return out


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--simulated", type=int, default=32)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"{len(real_faces(args.cache))} real surfaces in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    print(f"{len(simulated_faces(args.cache, args.simulated))} simulated surfaces in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    run()
