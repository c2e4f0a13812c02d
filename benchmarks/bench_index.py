"""The vector index alone at 10^6 cases: build, load, nearest, append, memory (no recall: random embeddings).

``bench_search.py`` measures the whole funnel with real queries but needs every case's signature
in the database (16 KB each); this measures only :class:`ballistics.case_index.CaseIndex` at
sizes where that is too slow to set up: ``--size`` random unit vectors of
:data:`ballistics.embedding.DIMENSIONS` float32 (recall means nothing here), built from scratch
(snapshot written), loaded again as a search does (snapshot read, journal replayed), searched
for the ``--nearest`` nearest of ``--queries`` vectors, then one case appended; CPU seconds and
wall seconds of each, and the peak resident memory of the process.

    python benchmarks/bench_index.py --size 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ballistics.case_index import CaseIndex  # noqa: E402
from ballistics.embedding import DIMENSIONS  # noqa: E402


def timed(step: str, out: dict[str, float], work: object) -> object:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work() if callable(work) else work
    out[f"{step}_s"] = round(time.perf_counter() - wall, 3)
    out[f"{step}_cpu_s"] = round(time.process_time() - cpu, 3)
    return result


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--nearest", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    def batches():  # type: ignore[no-untyped-def]
        for start in range(0, args.size, 50_000):
            count = min(50_000, args.size - start)
            vectors = rng.normal(size=(count, DIMENSIONS)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            yield np.arange(start + 1, start + count + 1, dtype=np.int64), vectors

    report: dict[str, float] = {"size": args.size}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        directory = Path(tmp) / "index"
        timed("build", report, lambda: CaseIndex(directory).build(batches()))
        report["snapshot_mb"] = round((directory / "base-1.faiss").stat().st_size / 2**20, 1)
        index = CaseIndex(directory)
        timed("load", report, index.load)
        queries = rng.normal(size=(args.queries, DIMENSIONS)).astype(np.float32)
        wall, cpu = time.perf_counter(), time.process_time()
        for query in queries:
            index.nearest(query / np.linalg.norm(query), args.nearest)
        report["nearest_s"] = round((time.perf_counter() - wall) / args.queries, 4)
        report["nearest_cpu_s"] = round((time.process_time() - cpu) / args.queries, 4)
        one = queries[:1] / np.linalg.norm(queries[:1])
        timed("append_one", report, lambda: CaseIndex(directory).add(np.array([args.size + 1]), one))
        report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report))


if __name__ == "__main__":
    run()
