"""Variants of the search embedding on the real scans of known source, against generated fillers.

For each variant of :func:`ballistics.embedding.embeddings` (unit energy per ring or not; the
power applied to the magnitude of each cross-spectrum value), on the 115 real scans whose
firearm is known (95 Weller, 20 Fadul knowns; never the questioned Fadul cases), each against
the 114 others: how often the nearest embedding is a same-firearm case, how often one is among
the 20 nearest, and each query's best mate's rank among ``--fillers`` generated fillers
(``bench_search.py``'s, same seed) extrapolated to a collection of 10^6 (rank x 10^6 /
fillers); the worst query is printed. The table in docs/search.md ("The embedding") comes
from:

    python benchmarks/bench_prepare_cache.py          # once
    python benchmarks/embedding_variants.py --fillers 100000

``--mates QUERY`` prints instead, for one query and the shipped embedding, each of its mates'
signature correlation (stage 2) and rank by embedding among the other real cases and the fillers
(stage 1): why a query is lost (docs/search.md, TW10-03).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_prepare_cache import DEFAULT_CACHE, real_faces, real_paths, simulated_faces  # noqa: E402
from bench_search import filler_signatures  # noqa: E402

from ballistics.embedding import embeddings  # noqa: E402
from ballistics.signature import signature, similarity  # noqa: E402
from ballistics.validate import firearm_from_name  # noqa: E402

#: (label, unit energy per ring, magnitude power)
VARIANTS = [
    ("version 1", False, 1.0),
    ("rings at unit energy", True, 1.0),
    ("magnitude^(1/2)", False, 0.5),
    ("rings at unit energy, magnitude^(1/2)", True, 0.5),
    ("rings at unit energy, magnitude^(1/4) (version 2)", True, 0.25),
    ("phase only (magnitude^0)", False, 0.0),
]


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--fillers", type=int, default=100_000)
    parser.add_argument("--simulated", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mates", metavar="QUERY", help="one query's mates, by stage (file stem, e.g. TW10-03)")
    args = parser.parse_args()
    names = [p.stem for p in real_paths()]
    guns = [firearm_from_name(p) for p in real_paths()]
    faces = real_faces(args.cache)
    reals = np.stack([signature(faces[n]) for n in names])
    bases = np.stack([signature(f) for f in simulated_faces(args.cache, args.simulated).values()])
    fillers = np.concatenate([batch for batch, _ in filler_signatures(bases, args.fillers, np.random.default_rng(args.seed))])
    mates = [[j for j, g in enumerate(guns) if g == gun and j != i] for i, gun in enumerate(guns)]
    if args.mates:
        i = names.index(args.mates)
        real = embeddings(reals)
        near = real @ real[i]
        filler = np.concatenate([embeddings(fillers[k : k + 20_000]) for k in range(0, len(fillers), 20_000)]) @ real[i]
        correlation = similarity(reals[i], reals)[0]
        print(f"mate of {args.mates} | signature correlation | rank by embedding among the reals and {len(fillers):,} fillers")
        for j in mates[i]:
            rank = 1 + int((filler > near[j]).sum()) + sum(1 for k in range(len(names)) if k not in (i, j) and near[k] > near[j])
            print(f"{names[j]} | {correlation[j]:.4f} | {rank:,}")
        return
    print("variant | nearest is a mate | a mate in the 20 nearest | worst rank of a mate at 10^6 (extrapolated)")
    for label, unit, power in VARIANTS:
        real = embeddings(reals, ring_unit_energy=unit, magnitude_power=power)
        filler = np.concatenate(
            [embeddings(fillers[i : i + 20_000], ring_unit_energy=unit, magnitude_power=power) for i in range(0, len(fillers), 20_000)]
        )
        scores = real @ real.T
        np.fill_diagonal(scores, -np.inf)
        order = np.argsort(-scores, axis=1)
        first = sum(guns[int(row[0])] == gun for row, gun in zip(order, guns, strict=True))
        top20 = sum(any(guns[int(j)] == gun for j in row[:20]) for row, gun in zip(order, guns, strict=True))
        ranks = []
        for i, own in enumerate(mates):
            best = scores[i, own].max()
            others = int((scores[i] > best).sum())
            ranks.append((others + int((filler @ real[i] > best).sum()) * 1e6 / len(fillers), names[i]))
        worst, who = max(ranks)
        print(f"{label} | {first} | {top20} | ~{worst:,.0f} ({who})", flush=True)


if __name__ == "__main__":
    run()
