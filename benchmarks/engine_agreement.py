"""The comparison engine against today's, pair by pair: same decisions, same counts?

Every pair is compared twice on the same prepared surfaces, by the engine
(:func:`ballistics.compare.compare_prepared`) and by today's engine kept verbatim in
``benchmarks/baseline_engine.py``; the decisions, the deciding, original-rule and High CMC
counts, the rotation and the registered correlation are written side by side.

Sets (``--sets``):

- ``fadul-known``: all 190 pairs of the 20 known Fadul cases (never the questioned ones);
- ``weller``: all 370 same-source pairs of the 95 Weller cases and ``--weller-different``
  different-source pairs drawn with ``--seed`` (``all``: the 4,095 of them), compared in an
  order shuffled with the seed, so that a run cut short (rows are written as they come) is a
  random sample of both kinds; ``--limit N`` keeps the first N pairs of each set.

    PYTHONPATH=. .venv/bin/python benchmarks/engine_agreement.py --workers 2 --csv agreement.csv

Today's engine is the slow half of the work and never changes: ``--baseline-csv`` takes its
values from an earlier run's CSV for the pairs found there, so that a changed engine is checked
again at the cost of its own comparisons only.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baseline_engine import baseline_engine  # noqa: E402

import ballistics.registration  # noqa: E402
from ballistics.compare import Comparison, compare_prepared  # noqa: E402
from ballistics.preprocess import BreechFace, prepare  # noqa: E402
from ballistics.scan import load_scan  # noqa: E402
from ballistics.validate import firearm_from_name  # noqa: E402

SCANS = ROOT.parent / "shared" / "real_scans" / "cartridgeCaseScans"
FIELDS = ("decision", "cmc", "cmc_original", "cmc_high", "rotation_deg", "ccf", "elapsed_s")
_PATHS: dict[str, Path] = {}
_PREPARED: dict[str, BreechFace] = {}


@dataclass(frozen=True)
class Row:
    group: str
    reference: str
    questioned: str
    same_source: bool
    ours: tuple[object, ...]
    baseline: tuple[object, ...]


def _init(paths: dict[str, Path], threads: int) -> None:
    _PATHS.update(paths)
    ballistics.registration.THREADS = threads


def _prepared(name: str) -> BreechFace:
    if name not in _PREPARED:
        _PREPARED[name] = prepare(load_scan(_PATHS[name]))
    return _PREPARED[name]


def _values(result: Comparison) -> tuple[object, ...]:
    return tuple(getattr(result, name) for name in FIELDS)


def _compare(job: tuple[str, str, str, bool, tuple[object, ...] | None]) -> Row:
    group, a, b, same, known = job
    ids = {"path": a, "sha256": None}, {"path": b, "sha256": None}
    ours = compare_prepared(_prepared(a), _prepared(b), *ids)
    if known is not None:  # today's engine does not change: its answer from an earlier run stands
        return Row(group, a, b, same, _values(ours), known)
    with baseline_engine():
        base = compare_prepared(_prepared(a), _prepared(b), *ids)
    return Row(group, a, b, same, _values(ours), _values(base))


def earlier_baseline(path: Path | None) -> dict[tuple[str, str], tuple[object, ...]]:
    """The baseline's values per pair from an earlier run's CSV (``--baseline-csv``)."""
    if path is None:
        return {}
    convert: tuple[Callable[[str], object], ...] = (str, int, int, int, float, lambda v: float(v) if v else None, float)
    with open(path, newline="") as stream:
        return {
            (row["reference"], row["questioned"]): tuple(f(row[f"baseline_{name}"]) for f, name in zip(convert, FIELDS, strict=True))
            for row in csv.DictReader(stream)
        }


def jobs(sets: set[str], weller_different: str, seed: int, limit: int | None = None) -> list[tuple[str, str, str, bool]]:
    out: list[tuple[str, str, str, bool]] = []
    same = lambda a, b: firearm_from_name(Path(a)) == firearm_from_name(Path(b))  # noqa: E731
    if "fadul-known" in sets:
        known = sorted(p.stem for p in (SCANS / "fadulProcessed").glob("*.x3p") if re.match(r"Fadul \d+-\d+$", p.stem))
        out += [("fadul-known", a, b, same(a, b)) for a, b in list(combinations(known, 2))[:limit]]
    if "weller" in sets:
        wells = sorted(p.stem for p in (SCANS / "wellerProcessed").glob("*.x3p"))
        pairs = list(combinations(wells, 2))
        different = [p for p in pairs if not same(*p)]
        if weller_different != "all":
            different = sorted(random.Random(seed).sample(different, min(int(weller_different), len(different))))
        chosen = sorted({p for p in pairs if same(*p)} | set(different))
        random.Random(seed).shuffle(chosen)  # a run cut short is still a random sample of both kinds
        out += [("weller", a, b, same(a, b)) for a, b in chosen[:limit]]
    return out


def report(rows: list[Row], elapsed: float) -> None:
    print(f"\n{len(rows)} pairs in {elapsed:.0f} s")
    index = {name: k for k, name in enumerate(FIELDS)}
    for group in dict.fromkeys(r.group for r in rows):
        mine = [r for r in rows if r.group == group]
        decisions = sum(r.ours[index["decision"]] != r.baseline[index["decision"]] for r in mine)
        print(f"{group}: {len(mine)} pairs ({sum(r.same_source for r in mine)} same source); decisions changed {decisions}")
        for name in ("cmc", "cmc_original", "cmc_high"):
            deltas = [int(r.ours[index[name]]) - int(r.baseline[index[name]]) for r in mine]  # type: ignore[call-overload]
            changed = [d for d in deltas if d]
            print(f"  {name}: changed on {len(changed)} pairs" + (f", by {min(changed):+d} to {max(changed):+d}" if changed else ""))
        rotation = max(abs(float(r.ours[index["rotation_deg"]]) - float(r.baseline[index["rotation_deg"]])) for r in mine)  # type: ignore[arg-type]
        ccf = max(abs(float(r.ours[index["ccf"]] or 0) - float(r.baseline[index["ccf"]] or 0)) for r in mine)  # type: ignore[arg-type]
        print(f"  largest change of rotation_deg {rotation:.3g} degrees, of ccf {ccf:.3g}")
        ours, base = (sum(float(getattr(r, side)[index["elapsed_s"]]) for r in mine) for side in ("ours", "baseline"))
        print(f"  time in the engines: ours {ours:.0f} s, baseline {base:.0f} s (ratio {base / ours:.2f})")
        for r in mine:
            if r.ours[:4] != r.baseline[:4]:
                print(f"  {r.reference} vs {r.questioned}: ours {r.ours[:4]} baseline {r.baseline[:4]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker process for the engine")
    parser.add_argument("--sets", default="fadul-known,weller")
    parser.add_argument("--weller-different", default="all", help="different-source Weller pairs: a number, or all")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--csv", type=Path, help="one row per pair, both engines side by side")
    parser.add_argument("--baseline-csv", type=Path, help="reuse the baseline's values of an earlier run's --csv")
    parser.add_argument("--limit", type=int, help="compare only the first LIMIT pairs of each set (Weller's in its shuffled order)")
    args = parser.parse_args()
    if not SCANS.is_dir():
        sys.exit(f"real scans not found at {SCANS}")
    paths = {p.stem: p for p in SCANS.glob("*/*.x3p")}
    known = earlier_baseline(args.baseline_csv)
    todo = [(*job, known.get((job[1], job[2]))) for job in jobs(set(args.sets.split(",")), args.weller_different, args.seed, args.limit)]
    print(
        f"{len(todo)} pairs ({sum(job[4] is not None for job in todo)} with the baseline from {args.baseline_csv}), {args.workers} worker processes",
        flush=True,
    )
    started = time.perf_counter()
    rows: list[Row] = []
    with (
        open(args.csv or "/dev/null", "w", newline="") as stream,
        ProcessPoolExecutor(args.workers, initializer=_init, initargs=(paths, args.threads)) as pool,
    ):
        writer = csv.writer(stream)
        writer.writerow(
            ["set", "reference", "questioned", "same_source", *(f"ours_{f}" for f in FIELDS), *(f"baseline_{f}" for f in FIELDS)]
        )
        for row in pool.map(_compare, todo, chunksize=4):
            rows.append(row)
            writer.writerow([row.group, row.reference, row.questioned, row.same_source, *row.ours, *row.baseline])
            stream.flush()
            if len(rows) % 50 == 0:
                print(f"  {len(rows)}/{len(todo)} ({time.perf_counter() - started:.0f} s)", flush=True)
    report(rows, time.perf_counter() - started)


if __name__ == "__main__":
    main()
