"""Orientation stability: the same pairs compared with the questioned scan turned to many angles.

A cartridge case lies under the microscope at any angle, so a comparison's decision must not
depend on how the questioned scan happens to be oriented in its file. Each questioned case's
working surface (as prepared for the unrotated comparison) is turned as a microscope would have
measured it (``scipy.ndimage.rotate``, linear interpolation, the NaN mask turned alongside and
thresholded at one half), kept in the larger array the turn produces (``--trim``: cut to its
measured area by the ordinary preparation instead) and compared with its reference, at every
orientation of a list: 0, random angles, and a dense set around +-180 degrees.

Pairs (reference, questioned):

- the ten Fadul known same-source pairs (``Fadul s-1`` vs ``Fadul s-2``);
- each questioned Fadul case (``Fadul A`` ... ``Z``, a blind test) against the known case the
  software itself attributes it to: the highest deciding CMC of the unrotated comparisons with
  all 20 known cases. Its source is never read from anywhere else, and nothing is tuned on it;
- at least 30 Weller same-source pairs (firearm from the file name), sampled with a seed;
- a sample of different-source pairs (Fadul known and Weller), which must never become
  identifications.

Reported: per set, the decision agreement rate (share of (pair, orientation) whose decision is
the pair's unrotated one), each pair's CMC spread (largest distance of the deciding count from
its median over orientations), the worst pair, and the largest different-source count.

    PYTHONPATH=. .venv/bin/python benchmarks/rotation_sweep.py --workers 2 --csv sweep.csv

The full run (83 pairs x 26 orientations, about 2,200 comparisons) takes 1-2 s per comparison
with 2 workers on a shared 2-core machine, i.e. about an hour; ``--random``, ``--dense``,
``--weller-pairs``, ``--different`` and ``--sets`` choose a subset.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ballistics.compare import compare_prepared  # noqa: E402
from ballistics.method import DecisionParams  # noqa: E402
from ballistics.preprocess import BreechFace, prepare  # noqa: E402
from ballistics.scan import Scan, load_scan  # noqa: E402
from ballistics.validate import firearm_from_name  # noqa: E402

SCANS = ROOT.parent / "shared" / "real_scans" / "cartridgeCaseScans"
DENSE_180 = [-180.0, -179.5, -179.0, -178.5, -177.0, -175.5, -172.0, 172.0, 175.5, 177.0, 178.5, 179.0, 179.5]
_SCANS: dict[str, Path] = {}
_PREPARED: dict[str, BreechFace] = {}
_TRIM = [False]


def rotate_surface(surface: np.ndarray, angle_deg: float) -> np.ndarray:
    """``surface`` turned by ``angle_deg`` in a larger array, the NaN mask turned alongside."""
    heights = np.asarray(surface, np.float64)
    mask = np.isfinite(heights).astype(np.float64)
    turned = ndimage.rotate(np.where(mask > 0, heights, 0.0), angle_deg, reshape=True, order=1, cval=0.0)
    weight = ndimage.rotate(mask, angle_deg, reshape=True, order=1, cval=0.0)
    return np.where(weight >= 0.5, turned / np.maximum(weight, 1e-9), np.nan)


def _init(scans: dict[str, Path], trim: bool) -> None:
    _SCANS.update(scans)
    _TRIM[0] = trim


def _prepared(name: str) -> BreechFace:
    if name not in _PREPARED:
        _PREPARED[name] = prepare(load_scan(_SCANS[name]))
    return _PREPARED[name]


def _turned(name: str, angle: float, trim: bool) -> BreechFace:
    """The prepared questioned case with its working surface turned, so that orientation is the
    only difference from the unrotated comparison: kept in the larger array the turn produced,
    NaN around the face (as a scan measured turned is stored), or trimmed to its measured area
    by the ordinary preparation (``trim``)."""
    prepared = _prepared(name)
    turned = rotate_surface(prepared.surface, angle)
    if trim:
        scan = Scan(turned, prepared.spacing_m, prepared.spacing_m, kind=prepared.kind)
        return prepare(scan, prepared.params, mode="preprocessed")
    return replace(prepared, surface=turned)


def _compare(job: tuple[str, str, str, bool, float]) -> tuple[str, str, str, bool, float, int, int, str, float, float]:
    group, reference, questioned, same, angle = job
    ref = _prepared(reference)
    qst = _prepared(questioned) if angle == 0 else _turned(questioned, angle, _TRIM[0])
    result = compare_prepared(ref, qst, {"path": reference, "sha256": None}, {"path": questioned, "sha256": None})
    return group, reference, questioned, same, angle, result.cmc, result.cmc_high, result.decision, result.rotation_deg, result.ccf or 0.0


def _attributions(fadul: Path, pool: ProcessPoolExecutor, attribution_csv: Path | None) -> list[tuple[str, str]]:
    """Each questioned case with the known case of its highest unrotated deciding CMC."""
    known = sorted(p.stem for p in fadul.glob("Fadul *.x3p") if re.fullmatch(r"Fadul \d+-\d+", p.stem))
    questioned = sorted(p.stem for p in fadul.glob("Fadul *.x3p") if re.fullmatch(r"Fadul [A-Z]", p.stem))
    scores: dict[tuple[str, str], tuple[int, int]] = {}
    if attribution_csv is not None:  # as written by benchmarks/fadul_blind.py --csv
        with open(attribution_csv, newline="") as stream:
            for row in csv.DictReader(stream):
                scores[row["questioned"], row["known"]] = (int(row["cmc"]), int(row["cmc_high"]))
    else:
        jobs = [("attribution", k, q, False, 0.0) for q in questioned for k in known]
        for _, k, q, _, _, cmc, high, *_ in pool.map(_compare, jobs, chunksize=4):
            scores[q, k] = (cmc, high)
    return [(max(known, key=lambda k, q=q: scores[q, k]), q) for q in questioned]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--csv", type=Path, help="every (pair, orientation) as a row")
    parser.add_argument("--random", type=int, default=12, help="random orientations (uniform on the circle)")
    parser.add_argument("--dense", type=int, default=len(DENSE_180), help=f"how many of the {len(DENSE_180)} angles near +-180 to use")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--weller-pairs", type=int, default=33, help="Weller same-source pairs, sampled with the seed")
    parser.add_argument("--different", type=int, default=20, help="different-source pairs (half Fadul known, half Weller)")
    parser.add_argument("--sets", default="fadul-known,fadul-questioned,weller,different")
    parser.add_argument("--trim", action="store_true", help="trim each turned scan to its measured area (ordinary preparation)")
    parser.add_argument("--attribution-csv", type=Path, help="reuse benchmarks/fadul_blind.py --csv output for the attribution")
    args = parser.parse_args()
    sets = set(args.sets.split(","))
    rng = np.random.default_rng(args.seed)
    fadul, weller = SCANS / "fadulProcessed", SCANS / "wellerProcessed"
    if not fadul.is_dir():
        sys.exit(f"real scans not found at {SCANS}")
    angles = [0.0] + [round(float(a), 2) for a in rng.uniform(-180, 180, args.random)] + DENSE_180[: args.dense]
    scans = {p.stem: p for p in (*fadul.glob("*.x3p"), *weller.glob("*.x3p"))}
    known = sorted(s for s in scans if re.fullmatch(r"Fadul \d+-\d+", s))
    wells = sorted(s for s in scans if s.startswith("TW"))
    by_firearm: dict[str, list[str]] = defaultdict(list)
    for name in wells:
        by_firearm[str(firearm_from_name(Path(name)))].append(name)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(scans, args.trim)) as pool:
        pairs: list[tuple[str, str, str, bool]] = []
        if "fadul-known" in sets:
            pairs += [("fadul-known", f"Fadul {s}-1", f"Fadul {s}-2", True) for s in range(1, 11)]
        if "fadul-questioned" in sets:
            pairs += [("fadul-questioned", k, q, True) for k, q in _attributions(fadul, pool, args.attribution_csv)]
        if "weller" in sets:
            same = [pair for firearm in sorted(by_firearm) for pair in combinations(by_firearm[firearm], 2)]
            pick = rng.choice(len(same), size=min(args.weller_pairs, len(same)), replace=False)
            pairs += [("weller", *same[i], True) for i in sorted(pick)]
        if "different" in sets:
            fadul_diff = [(a, b) for a, b in combinations(known, 2) if firearm_from_name(Path(a)) != firearm_from_name(Path(b))]
            weller_diff = [(a, b) for a, b in combinations(wells, 2) if firearm_from_name(Path(a)) != firearm_from_name(Path(b))]
            half = args.different // 2
            pairs += [("different", *fadul_diff[i], False) for i in sorted(rng.choice(len(fadul_diff), half, replace=False))]
            pairs += [
                ("different", *weller_diff[i], False) for i in sorted(rng.choice(len(weller_diff), args.different - half, replace=False))
            ]
        jobs = [(g, r, q, s, a) for g, r, q, s in pairs for a in angles]
        print(f"{len(pairs)} pairs x {len(angles)} orientations = {len(jobs)} comparisons; angles {angles}", flush=True)
        rows = []
        with open(args.csv or "/dev/null", "w", newline="") as stream:  # rows written as they arrive
            writer = csv.writer(stream)
            writer.writerow(
                ["set", "reference", "questioned", "same_source", "angle_deg", "cmc", "cmc_high", "decision", "rotation_deg", "ccf"]
            )
            for row in pool.map(_compare, jobs, chunksize=1):
                rows.append(row)
                writer.writerow(row)
                stream.flush()
                if len(rows) % 50 == 0:
                    print(f"  {len(rows)}/{len(jobs)} ({time.perf_counter() - started:.0f} s)", flush=True)
    report(rows, time.perf_counter() - started)


def report(rows: list[tuple], elapsed: float) -> None:
    identification = DecisionParams().identification_cmc
    by_pair: dict[tuple[str, str, str], list[tuple]] = defaultdict(list)
    for row in rows:
        by_pair[row[0], row[1], row[2]].append(row)
    print(f"\n{len(rows)} comparisons in {elapsed:.0f} s\n")
    for group in dict.fromkeys(key[0] for key in by_pair):
        keys = [k for k in by_pair if k[0] == group]
        agree = total = 0
        worst: tuple[int, tuple[str, str, str]] = (-1, keys[0])
        lines = []
        for key in keys:
            results = by_pair[key]
            unrotated = next(r for r in results if r[4] == 0)
            counts = np.array([r[5] for r in results])
            agree += sum(r[7] == unrotated[7] for r in results)
            total += len(results)
            spread = int(np.max(np.abs(counts - np.median(counts))))
            worst = max(worst, (spread, key))
            changed = sorted({(r[4], r[5], r[7]) for r in results if r[7] != unrotated[7]})
            lines.append(
                f"  {key[1]:<15} {key[2]:<15} unrotated {unrotated[5]:>2} {unrotated[7]:<14} "
                f"min {counts.min():>2} median {np.median(counts):>4.1f} max {counts.max():>2} spread +-{spread}"
                + (f"  changed: {changed}" if changed else "")
            )
        print(
            f"{group}: {len(keys)} pairs, decision agreement {agree}/{total} = {agree / total:.3f}; worst spread +-{worst[0]} ({worst[1][1]} vs {worst[1][2]})"
        )
        if group == "different":
            top = max(r[5] for k in keys for r in by_pair[k])
            ids = sum(r[5] >= identification for k in keys for r in by_pair[k])
            print(f"  largest different-source CMC {top}; identifications {ids}")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
