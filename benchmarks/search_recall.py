"""Whole-set search correctness and prefilter recall on Weller and Fadul (run by hand).

Builds a collection under a temporary home with ``ballistics db add`` (one case per scan, the
file name as case id), then searches every case against all the others (the search leaves the
questioned scan itself out):

* prefilter recall: for shortlists of N, the fraction of queries whose shortlist holds at least
  one same-firearm case, and the mean fraction of all same-firearm cases it holds;
* with ``--rerank``: the rank of the first same-firearm case after the full comparison, for
  every query, and for ``--rotated-every K`` queries (every K-th) the same search with the
  questioned scan rotated by a random angle, whose top candidates must be the same.

    python benchmarks/search_recall.py weller fadul                 # prefilter recall only (seconds)
    python benchmarks/search_recall.py weller fadul --rerank --shortlist 10 --rotated-every 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ballistics.cmc import transform  # noqa: E402
from ballistics.scan import Scan, load_scan  # noqa: E402
from ballistics.search import LocalExecutor, SearchParams, prefilter, search  # noqa: E402
from ballistics.signature import signature  # noqa: E402
from ballistics.store import Store  # noqa: E402
from ballistics.validate import firearm_from_name  # noqa: E402
from cli import main  # noqa: E402

SCANS = REPO.parent / "shared" / "real_scans" / "cartridgeCaseScans"
SETS = {"weller": (SCANS / "wellerProcessed", "TW*.x3p"), "fadul": (SCANS / "fadulProcessed", "Fadul *-*.x3p")}
SHORTLISTS = (1, 3, 5, 10, 15, 20, 30)


def rotated(scan: Scan, angle: float) -> Scan:
    """The scan turned by ``angle`` degrees on a grid large enough to keep all of it."""
    side = int(np.ceil(np.hypot(*scan.shape))) + 2
    heights = transform(np.asarray(scan.heights, np.float32), angle, (0.0, 0.0), (side, side)).astype(np.float64)
    return Scan(heights, scan.spacing_x, scan.spacing_y, scan.kind, scan.metadata, scan.source, None, scan.format)


def build(home: Path, files: list[Path]) -> Store:
    for path in files:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["--home", str(home), "db", "add", str(path), "--case", path.stem, "--exhibit", "1", "--json"])
        if code != 0:
            raise SystemExit(f"db add failed for {path}")
    return Store.open(home)


def prefilter_recall(store: Store, truth: dict[str, str]) -> dict[int, tuple[float, float]]:
    exhibits = store.exhibits()
    hits_any = dict.fromkeys(SHORTLISTS, 0)
    fractions: dict[int, list[float]] = {n: [] for n in SHORTLISTS}
    for query in exhibits:
        others = [e for e in exhibits if e.sha256 != query.sha256]
        scores = prefilter(store, signature(store.prepared(query.sha256), store.signature_params), others)
        same = np.array([truth[e.case] == truth[query.case] for e in others])[np.argsort(-scores, kind="stable")]
        for n in SHORTLISTS:
            hits_any[n] += bool(same[:n].any())
            fractions[n].append(same[:n].sum() / same.sum())
    return {n: (hits_any[n] / len(exhibits), float(np.mean(fractions[n]))) for n in SHORTLISTS}


def rerank_all(store: Store, truth: dict[str, str], shortlist: int, rotated_every: int, workers: int, seed: int) -> None:
    params = SearchParams(top=5, shortlist=shortlist)
    executor = LocalExecutor(workers)
    rng = np.random.default_rng(seed)
    first_ranks, rotation_same, started = [], [], time.perf_counter()
    for i, query in enumerate(store.exhibits()):
        scan = load_scan(query.path)
        result = search(store, scan, params, executor)
        labels = [truth[h.exhibit.case] for h in result.candidates]
        rank = next((k + 1 for k, label in enumerate(labels) if label == truth[query.case]), None)
        first_ranks.append(rank)
        line = f"{query.case:>12}: first same-firearm rank {rank}, top-1 {result.candidates[0].exhibit.case} cmc {result.candidates[0].cmc}"
        if rotated_every and i % rotated_every == 0:
            angle = float(rng.uniform(0, 360))
            turned = search(store, rotated(scan, angle), replace(params, exclude=(query.sha256,)), executor)
            same_top = [h.exhibit.sha256 for h in turned.candidates[:3]] == [h.exhibit.sha256 for h in result.candidates[:3]]
            rotation_same.append((same_top, turned.candidates[0].exhibit.sha256 == result.candidates[0].exhibit.sha256))
            line += f"; rotated {angle:.1f} deg: top-1 {turned.candidates[0].exhibit.case} cmc {turned.candidates[0].cmc}, same top 3: {same_top}"
        print(line, flush=True)
    at_one = sum(r == 1 for r in first_ranks)
    print(f"same-firearm case at rank 1: {at_one}/{len(first_ranks)}; ranks other than 1: {[r for r in first_ranks if r != 1]}")
    if rotation_same:
        print(
            f"rotated queries: same top-1 {sum(b for _, b in rotation_same)}/{len(rotation_same)}, same top-3 {sum(a for a, _ in rotation_same)}/{len(rotation_same)}"
        )
    print(f"elapsed {time.perf_counter() - started:.0f} s (shortlist {shortlist}, {workers} workers)")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", choices=sorted(SETS))
    parser.add_argument("--rerank", action="store_true", help="also run the full searches (minutes)")
    parser.add_argument("--shortlist", type=int, default=10)
    parser.add_argument("--rotated-every", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    for name in args.sets:
        folder, pattern = SETS[name]
        files = sorted(folder.glob(pattern))
        truth = {p.stem: firearm_from_name(p) for p in files}
        with tempfile.TemporaryDirectory(prefix="search-recall-") as tmp:
            started = time.perf_counter()
            store = build(Path(tmp), files)
            print(
                f"{name}: {len(files)} cases, {len(set(truth.values()))} firearms; collection built in {time.perf_counter() - started:.1f} s"
            )
            print(" N   shortlist holds a same-firearm case   mean fraction of same-firearm cases kept")
            for n, (any_kept, fraction) in prefilter_recall(store, truth).items():
                print(f"{n:>2}   {any_kept:>6.3f}                               {fraction:.3f}")
            if args.rerank:
                rerank_all(store, truth, args.shortlist, args.rotated_every, args.workers, args.seed)
            store.close()


if __name__ == "__main__":
    run()
