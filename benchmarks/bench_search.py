"""Search speed and prefilter recall on collections of 1,000 and 10,000 generated cases.

What it does, exactly:

1. Simulates ``--firearms`` firearms (``ballistics.synth``) and fires two cases from each. Shot 1
   of every firearm is added to a collection under a temporary home with the store's API (the
   same path as ``db add``: file copied, surface prepared and cached, signature stored); shot 2
   is that firearm's questioned case. Preparing a raw simulated scan costs ~2.5 s, so distinct
   cases are few.
2. Fills the collection up to 1,000 and then 10,000 exhibits with *filler* cases: each is one of
   the prepared shot-1 or shot-2 surfaces **mirrored** (a mirrored breech face matches no
   firearm: marks are chiral), turned by a random angle and with noise added. Their signatures
   are derived in the spectral domain (a rotation is a phase ramp along the angle axis; noise
   is complex Gaussian at half the signal's rms per coefficient) and inserted directly into the
   database with exhibit and scan rows; their cached prepared surface is a hard link to the
   mirrored surface's cache file, which the full comparison (rotation-invariant) treats like the
   rotated copy.
3. For each size, runs one query end to end (``ballistics.search.search``: prefilter over every
   exhibit read from the database, full CMC comparison of the shortlist on ``--workers``
   processes) and reports prefilter seconds, end-to-end seconds, and the prefilter's recall over
   all ``--firearms`` queries (is the firearm's shot 1 in the shortlist?).
4. Baseline, in the same process: the full comparison of every candidate without prefilter,
   extrapolated from the measured per-comparison time of the shortlist; the ratio is printed.

    python benchmarks/bench_search.py [--firearms 10] [--shortlist 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ballistics import synth  # noqa: E402
from ballistics.labs import Lab  # noqa: E402
from ballistics.preprocess import BreechFace, prepare  # noqa: E402
from ballistics.scan import save_x3p  # noqa: E402
from ballistics.schema import cases, exhibits, scans, signatures  # noqa: E402
from ballistics.search import LocalExecutor, SearchParams, prefilter, search  # noqa: E402
from ballistics.signature import signature, signature_bytes  # noqa: E402
from ballistics.store import Store  # noqa: E402
from ballistics.surface_cache import save_prepared  # noqa: E402

LAB = Lab("BENCH", "benchmark lab")


def mirrored(face: BreechFace) -> BreechFace:
    width = face.surface.shape[1]
    centre = None if face.primer_center_px is None else (width - 1 - face.primer_center_px[0], face.primer_center_px[1])
    return BreechFace(face.surface[:, ::-1].copy(), face.spacing_m, face.mode, centre, face.primer_radius_px, None, face.params)


def add_fillers(store: Store, bases: list[BreechFace], count: int, rng: np.random.Generator) -> None:
    """``count`` filler exhibits derived from mirrored base surfaces (see the module docstring)."""
    params = store.signature_params
    sources = []
    for face in bases:
        flipped = mirrored(face)
        sha = uuid.uuid4().hex * 2
        cache = store.cache_file(sha)
        save_prepared(flipped, cache)
        sources.append((signature(flipped, params), cache))
    k = np.arange(params.frequencies)
    rows_scan, rows_exhibit, rows_sig = [], [], []
    with store.transaction() as conn:
        store.ensure_lab(LAB, conn=conn)
        case_pk = conn.execute(cases.insert().values(lab_id=LAB.id, case_id=f"FILL-{uuid.uuid4().hex[:8]}")).inserted_primary_key[0]
        for n in range(count):
            sig, cache = sources[n % len(sources)]
            angle = rng.uniform(0, 2 * np.pi)
            rms = np.sqrt(np.mean(np.abs(sig) ** 2))
            noise = (rng.normal(size=sig.shape) + 1j * rng.normal(size=sig.shape)) * (0.5 * rms / np.sqrt(2))
            derived = (sig * np.exp(-1j * k * angle)[None] + noise).astype(np.complex64)
            derived[:, 0] = 0
            sha = uuid.uuid4().hex * 2
            link = store.cache_file(sha)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(cache, link)
            rows_scan.append(
                {
                    "sha256": sha,
                    "file": str(link.relative_to(store.home)),
                    "original_name": "filler",
                    "format": "x3p",
                    "size": 0,
                    "added": "-",
                }
            )
            rows_exhibit.append({"case_pk": case_pk, "exhibit_id": f"F{n}", "scan_sha256": sha, "partner": False, "added": "-"})
            rows_sig.append({"sha256": sha, "key": store.cache_key, "data": signature_bytes(derived)})
        conn.execute(scans.insert(), rows_scan)
        conn.execute(exhibits.insert(), rows_exhibit)
        conn.execute(signatures.insert(), rows_sig)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firearms", type=int, default=10)
    parser.add_argument("--shortlist", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        home = Path(tmp)
        store = Store.open(home / "home")
        started = time.perf_counter()
        firearms = synth.generate_firearms(args.firearms, args.seed)
        queries, bases = [], []
        for gun in firearms:
            first, second = (synth.fire(gun, shot, args.seed) for shot in (1, 2))
            path = save_x3p(first.scan, home / f"{gun.id}-1.x3p")
            face = prepare(first.scan)
            store.add_exhibit_scan(path, case_id=gun.id, exhibit_id="1", lab=LAB)
            question = prepare(second.scan)
            queries.append((gun.id, save_x3p(second.scan, home / f"{gun.id}-2.x3p"), question))
            bases += [face, question]
        print(f"{args.firearms} firearms x 2 shots simulated and prepared in {time.perf_counter() - started:.0f} s")
        params = SearchParams(top=5, shortlist=args.shortlist)
        executor = LocalExecutor(args.workers)
        per_comparison = None
        for size in args.sizes:
            add_fillers(store, bases, size - len(store.exhibits()), rng)
            exhibits_now = store.exhibits()
            kept = 0
            for gun_id, _, face in queries:
                scores = prefilter(store, signature(face, store.signature_params), exhibits_now)
                shortlist = {exhibits_now[i].case for i in np.argsort(-scores)[: args.shortlist]}
                kept += gun_id in shortlist
            from ballistics.scan import load_scan

            result = search(store, load_scan(queries[0][1]), params, executor)
            rerank_s = result.elapsed_s - result.prefilter_s
            per_comparison = rerank_s * args.workers / max(result.shortlisted, 1)
            baseline = per_comparison * result.searched / args.workers
            print(
                f"collection {result.searched:>6}: prefilter {result.prefilter_s:6.2f} s, end to end {result.elapsed_s:6.1f} s "
                f"(top-1 {result.candidates[0].exhibit.case}, CMC {result.candidates[0].cmc}); prefilter recall {kept}/{len(queries)} "
                f"at shortlist {args.shortlist}; baseline without prefilter ~{baseline:,.0f} s ({baseline / result.elapsed_s:,.0f}x slower)"
            )
        store.close()


if __name__ == "__main__":
    run()
