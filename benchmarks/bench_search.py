"""The search funnel on collections of 10^4, 10^5 and 10^6 cases: recall on real scans, time, memory.

What it builds, exactly:

1. **Real cases.** The 115 real scans whose firearm is known (95 Weller cases, 11 firearms; the
   20 Fadul knowns, 10 slides; never the 20 questioned Fadul cases, whose sources are withheld)
   are prepared once and cached on disk (``bench_prepare_cache.py``, ``--cache``). Each is filed
   as an exhibit of its own case (rows, signature and the prepared surface in the store's cache,
   as ``db add`` leaves them) and is also a query: searched against the collection with itself
   left out, a hit is any case of the same firearm.
2. **Fillers**, added until the collection holds each ``--sizes`` (in order, the collection
   growing): distinct firearms made from the simulator **at the signature level**. Preparing a
   simulated scan costs 2-3 s (hours at 10^4 already, weeks at 10^6), so ``--simulated``
   firearms of the simulator (seed ``SIM_SEED``, none of them a query) are fired and prepared
   once; each filler's signature is then a fresh random combination of their signatures, each
   turned by its own random angle, with Gaussian weights: a draw from a Gaussian with the
   simulated firearms' second-order statistics, independent of every other filler and of the
   queries (not a copy of any). It is inserted directly into the database (scan, exhibit and
   signature rows); its prepared surface, needed only if it reaches the full comparison, is that
   of the simulated firearm with the largest weight (a different firearm from every query).
3. **Per size**: the vector index is built from scratch from the stored signatures (``Store.
   reindex``, timed: *index build*); then, in a fresh process whose peak resident memory is
   reported, every real query is searched (``ballistics.search.search``, ``--nearest``,
   ``--shortlist``); the full comparisons of this loop are memoised on disk (``CACHE/pairs.json``,
   by reference scan or simulated firearm and query: a comparison is deterministic), so that
   the recall over all 115 queries costs only the comparisons not made before. Reported:
   recall of a true mate among the nearest (stage 1), in the shortlist (stage 2) and at rank 1
   (after the full comparison); median and maximum seconds of stages 1 and 2; then
   ``--timed-queries`` searches end to end with real comparisons on ``--workers`` processes
   (no memo): the rerank at the comparison engine's speed, with the CPU seconds of the search and
   its worker processes (on a shared, loaded machine wall time says little; on an idle one the
   rerank's wall time is about its CPU time divided by ``--workers``). Last, adding one case: a simulated
   scan filed with ``Store.add_exhibit_scan`` (preparing it, storing it, appending its embedding
   to the index) and the index append alone, timed, with the index's build count checked
   unchanged.

    python benchmarks/bench_prepare_cache.py            # once: real and simulated surfaces
    python benchmarks/bench_search.py --sizes 10000 100000
    python benchmarks/bench_search.py --sizes 10000 100000 1000000 --work /work/bench-cache/run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_prepare_cache import DEFAULT_CACHE, SIM_SEED, real_faces, real_paths, simulated_faces  # noqa: E402

from ballistics import synth  # noqa: E402
from ballistics.files import write_atomic  # noqa: E402
from ballistics.labs import Lab  # noqa: E402
from ballistics.preprocess import BreechFace  # noqa: E402
from ballistics.scan import load_scan, save_x3p, sha256_file  # noqa: E402
from ballistics.schema import cases, exhibits, scans, signatures  # noqa: E402
from ballistics.search import (  # noqa: E402
    DEFAULT_SHORTLIST,
    LARGE_COLLECTION,
    LARGE_SHORTLIST,
    LocalExecutor,
    RerankTask,
    SearchParams,
    search,
    shortlist,
    shortlist_size,
)
from ballistics.signature import signature, signature_bytes, similarity  # noqa: E402
from ballistics.store import Store  # noqa: E402
from ballistics.validate import firearm_from_name  # noqa: E402

LAB = Lab("BENCH", "benchmark lab")
#: Filler scans are named ``FILLER_PREFIX`` + number + simulated firearm (hex), 64 digits like a SHA-256.
FILLER_PREFIX = "f111e7"


class BenchStore(Store):
    """The store, with each filler's prepared surface that of its main simulated firearm."""

    simulated: list[BreechFace]

    def prepared(self, sha256: str) -> BreechFace:
        if sha256.startswith(FILLER_PREFIX):
            return self.simulated[int(sha256[-8:], 16)]
        return super().prepared(sha256)


def filler_sha(number: int, firearm: int) -> str:
    return f"{FILLER_PREFIX}{number:050x}{firearm:08x}"


# --- building --------------------------------------------------------------------------------------


def add_real(store: Store, faces: dict[str, BreechFace]) -> dict[str, str]:
    """File each real scan as its own case (rows, signature, cached surface); SHA-256 by stem."""
    shas = {}
    with store.transaction() as conn:
        store.ensure_lab(LAB, conn=conn)
        for path in real_paths():
            sha = sha256_file(path)
            store.add_scan_file(path, conn=conn, face=faces[path.stem], sha256=sha)
            case_pk = conn.execute(cases.insert().values(lab_id=LAB.id, case_id=path.stem)).inserted_primary_key[0]
            conn.execute(exhibits.insert().values(case_pk=case_pk, exhibit_id="1", scan_sha256=sha, partner=False, added="-"))
            shas[path.stem] = sha
    return shas


def filler_signatures(
    bases: np.ndarray, count: int, rng: np.random.Generator, batch: int = 2048
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``count`` filler signatures in batches (module docstring, step 2): (size, rings, frequencies) complex64, and each one's main simulated firearm."""
    n_base, _, freqs = bases.shape
    k = np.arange(freqs)
    power = float(np.mean(np.sum(np.abs(bases) ** 2, axis=(1, 2))))
    by_k = np.ascontiguousarray(bases.transpose(2, 0, 1))  # (freqs, bases, rings)
    done = 0
    while done < count:
        size = min(batch, count - done)
        weights = rng.normal(size=(size, n_base)).astype(np.float32)
        angles = rng.uniform(0, 2 * np.pi, size=(size, n_base)).astype(np.float32)
        phased = weights[:, :, None] * np.exp(-1j * angles[:, :, None] * k[None, None, :]).astype(np.complex64)  # (size, bases, freqs)
        mixed = np.matmul(phased.transpose(2, 0, 1), by_k).transpose(1, 2, 0)  # (size, rings, freqs)
        mixed[:, :, 0] = 0
        mixed *= np.sqrt(power / np.sum(np.abs(mixed) ** 2, axis=(1, 2)))[:, None, None]
        yield mixed, np.abs(weights).argmax(axis=1)
        done += size


def add_fillers(store: Store, bases: np.ndarray, start: int, count: int, rng: np.random.Generator) -> None:
    """``count`` filler exhibits numbered from ``start`` (module docstring, step 2)."""
    with store.transaction() as conn:
        case_pk = conn.execute(cases.insert().values(lab_id=LAB.id, case_id=f"FILL-{start}")).inserted_primary_key[0]
    number = start
    for mixed, main in filler_signatures(bases, count, rng):
        rows_scan, rows_exhibit, rows_sig = [], [], []
        for i in range(len(mixed)):
            sha = filler_sha(number, int(main[i]))
            rows_scan.append({"sha256": sha, "file": f"fillers/{sha}", "original_name": "filler", "format": "x3p", "size": 0, "added": "-"})
            rows_exhibit.append({"case_pk": case_pk, "exhibit_id": f"F{number}", "scan_sha256": sha, "partner": False, "added": "-"})
            rows_sig.append({"sha256": sha, "key": store.cache_key, "data": signature_bytes(mixed[i])})
            number += 1
        with store.transaction() as conn:
            conn.execute(scans.insert(), rows_scan)
            conn.execute(exhibits.insert(), rows_exhibit)
            conn.execute(signatures.insert(), rows_sig)


# --- searching -------------------------------------------------------------------------------------


@dataclass
class MemoExecutor:
    """Full comparisons memoised on disk by (reference or simulated firearm, query): deterministic, so reused across runs."""

    path: Path
    inner: LocalExecutor
    made: int = 0

    def key(self, task: RerankTask) -> str:
        sha = task[2]["sha256"]
        reference = f"sim{int(sha[-8:], 16)}" if sha.startswith(FILLER_PREFIX) else sha
        return f"{reference}:{task[3]['sha256']}"

    def map(self, tasks: Sequence[RerankTask], progress: Any = None) -> list[dict[str, Any]]:
        memo = json.loads(self.path.read_text()) if self.path.exists() else {}
        todo = [t for t in tasks if self.key(t) not in memo]
        if todo:
            fresh = self.inner.map(todo)
            self.made += len(todo)
            memo = json.loads(self.path.read_text()) if self.path.exists() else {}
            for task, result in zip(todo, fresh, strict=True):
                memo[self.key(task)] = {field: result[field] for field in ("cmc", "decision", "ccf", "rotation_deg")}
            write_atomic(self.path, json.dumps(memo).encode())
        return [dict(memo[self.key(t)]) for t in tasks]


def query_phase(
    home: str, cache: str, nearest: int, keep: int | None, workers: int, timed: int, simulated: int, every: int, out: Any
) -> None:
    """Stages 1-2 for every real query, the full search (memoised comparisons) for every ``every``-th, ``timed`` end to end.

    Run in a process of its own, so that its peak resident memory is the search's alone.
    """
    store = BenchStore.open(home)
    store.simulated = list(simulated_faces(Path(cache), simulated).values())
    by_sha = {}
    for path in real_paths():
        found = store.by_sha256(sha256_file(path))
        assert found is not None
        by_sha[found.sha256] = found
    gun_of = {sha: firearm_from_name(Path(e.case + ".x3p")) for sha, e in by_sha.items()}
    params = SearchParams(top=keep or LARGE_SHORTLIST, shortlist=keep, nearest=nearest)
    memo = MemoExecutor(Path(cache) / "pairs.json", LocalExecutor(workers))
    rows = []
    for n, path in enumerate(real_paths()):
        scan = load_scan(path)
        gun = gun_of[scan.sha256]
        mates = {e.id for sha, e in by_sha.items() if gun_of[sha] == gun and sha != scan.sha256}
        face = store.prepared(scan.sha256)
        cpu = time.process_time()
        kept = shortlist(store, face, {scan.sha256}, params)
        cpu = time.process_time() - cpu
        row = {
            "query": path.stem,
            "in_nearest": bool(mates & set(kept.nearest)),
            "in_shortlist": bool(mates & {e.id for e in kept.exhibits}),
            "fillers_in_shortlist": sum(e.sha256.startswith(FILLER_PREFIX) for e in kept.exhibits),
            "index_s": kept.index_s,
            "correlation_s": kept.correlation_s,
            "stages_1_2_cpu_s": cpu,
        }
        if not row["in_shortlist"]:
            # the best mate's signature correlation against the shortlist's last (a miss at stage 2 is the first below the second)
            mate_sigs = np.stack([s for _, s in store.exhibit_signatures(sorted(mates)).values()])
            best = similarity(signature(face, store.signature_params), mate_sigs, store.signature_params)[0].max()
            row |= {"mate_score": round(float(best), 4), "shortlist_cut": round(kept.scores[-1], 4) if kept.scores else None}
        if n % every == 0:
            result = search(store, scan, params, memo)
            row["rank1"] = gun_of.get(result.candidates[0].exhibit.sha256) == gun
        rows.append(row)
    ends = []
    for path in real_paths()[:: max(1, len(real_paths()) // max(timed, 1))][:timed]:
        before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        result = search(store, load_scan(path), params, LocalExecutor(workers))
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before, strict=True))
        ends.append({"query": path.stem, "elapsed_s": round(result.elapsed_s, 2), "cpu_s": round(cpu_s, 1), **result.stages.to_dict()})
    out.put({"rows": rows, "timed": ends, "compared": memo.made, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def add_one(store: Store, home: Path) -> dict[str, float]:
    """File one new simulated case as ``db add`` does; and time the index append alone."""
    gun = synth.generate_firearms(1, SIM_SEED + 1)[0]
    shot = int(store.exhibit_summary().count)  # a new shot each time
    path = save_x3p(synth.fire(gun, shot, SIM_SEED + 1).scan, home / f"new-{shot}.x3p")
    index = store.case_index()
    builds = index.meta.builds
    started = time.perf_counter()
    added = store.add_exhibit_scan(path, case_id=path.stem, exhibit_id="1", lab=LAB)
    whole = time.perf_counter() - started
    started = time.perf_counter()
    store.index_exhibits([added.exhibit.id])
    append = time.perf_counter() - started
    assert added.added and index.meta.builds == builds, "the case was not added, or adding it rebuilt the index"
    return {"add_case_s": whole, "index_append_s": append}


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--work", type=Path, default=None, help="Where the collection is built (default: under --cache); deleted at the end."
    )
    parser.add_argument("--nearest", type=int, default=2000)
    parser.add_argument(
        "--shortlist",
        type=int,
        default=None,
        help=f"Default: the search's own ({DEFAULT_SHORTLIST}, or {LARGE_SHORTLIST} above {LARGE_COLLECTION:,} exhibits).",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timed-queries", type=int, default=3)
    parser.add_argument("--simulated", type=int, default=32)
    parser.add_argument("--every", type=int, default=1, help="Rank 1 (full comparisons) for every n-th real query (1: all 115).")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    work = args.work or args.cache / f"run-{time.time_ns()}"
    home = work / "home"
    started = time.perf_counter()
    reals = real_faces(args.cache)
    sims = simulated_faces(args.cache, args.simulated)
    print(f"{len(reals)} real and {len(sims)} simulated prepared surfaces read in {time.perf_counter() - started:.0f} s", flush=True)
    store = Store.open(home)
    try:
        add_real(store, reals)
        bases = np.stack([signature(face, store.signature_params) for face in sims.values()])
        held = len(reals)
        for size in args.sizes:
            started = time.perf_counter()
            add_fillers(store, bases, held, size - held, rng)
            fill_s = time.perf_counter() - started
            held = size
            started = time.perf_counter()
            store.reindex()
            build_s = time.perf_counter() - started
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            child = context.Process(
                target=query_phase,
                args=(
                    str(home),
                    str(args.cache),
                    args.nearest,
                    args.shortlist,
                    args.workers,
                    args.timed_queries,
                    args.simulated,
                    args.every,
                    out,
                ),
            )
            child.start()
            report = out.get()
            child.join()
            rows, timed = report["rows"], report["timed"]
            adding = add_one(store, work)
            held += 1
            total = len(rows)

            def count(key: str, subset: str = "", rows: list[dict[str, Any]] = rows) -> str:
                chosen = [r for r in rows if r["query"].startswith(subset) and key in r]
                return f"{sum(r[key] for r in chosen)}/{len(chosen)}"

            print(
                json.dumps(
                    {
                        "size": size,
                        "fillers_s": round(fill_s, 1),
                        "index_build_s": round(build_s, 1),
                        "shortlist": args.shortlist or shortlist_size(size - 1),
                        "queries": total,
                        "in_nearest": count("in_nearest"),
                        "in_shortlist": count("in_shortlist"),
                        "rank1": count("rank1"),
                        "rank1_weller": count("rank1", "TW"),
                        "rank1_fadul": count("rank1", "Fadul"),
                        "missed_shortlist": [r["query"] for r in rows if not r["in_shortlist"]],
                        "missed_rank1": [r["query"] for r in rows if r.get("rank1") is False],
                        "missed_detail": [
                            {k: r[k] for k in ("query", "in_nearest", "mate_score", "shortlist_cut", "fillers_in_shortlist")}
                            for r in rows
                            if not r["in_shortlist"]
                        ],
                        "fillers_in_shortlists": sum(r["fillers_in_shortlist"] for r in rows),
                        "index_s_median": round(statistics.median(r["index_s"] for r in rows), 3),
                        "index_s_max": round(max(r["index_s"] for r in rows), 3),
                        "correlation_s_median": round(statistics.median(r["correlation_s"] for r in rows), 3),
                        "correlation_s_max": round(max(r["correlation_s"] for r in rows), 3),
                        "stages_1_2_cpu_s_median": round(statistics.median(r["stages_1_2_cpu_s"] for r in rows), 3),
                        "stages_1_2_cpu_s_max": round(max(r["stages_1_2_cpu_s"] for r in rows), 3),
                        "comparisons_made": report["compared"],
                        "end_to_end": timed,
                        "query_process_peak_rss_mb": round(report["peak_rss_mb"]),
                        **{k: round(v, 3) for k, v in adding.items()},
                    }
                ),
                flush=True,
            )
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run()
