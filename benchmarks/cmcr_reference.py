"""cmcR's published CMC-count distributions on the 780 Fadul pairs, beside ours.

Reads `../shared/real_scans/cmcRwriteUp/cmcCountData.RData` (the data behind Zemmels,
VanderPlas & Hofmann's cmcR paper) and prints, for the chosen thresholds, the known-match and
known-non-match CMC counts of both decision rules. With `--ours PAIRS.csv` (written by
`ballistics validate ... --pairs-csv`), our counts are printed beside them.

Needs the `bench` extra (`pip install -e '.[bench]'`) for the R data reader.

    .venv/bin/python benchmarks/cmcr_reference.py [--trans 20] [--cor 0.5] [--theta 6] [--ours pairs.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "real_scans" / "cmcRwriteUp" / "cmcCountData.RData"


def describe(counts: np.ndarray, weights: np.ndarray) -> str:
    if weights.sum() == 0:
        return "no pairs"
    values = np.repeat(counts, weights)
    return f"n={values.size:4d}  range {values.min()}-{values.max()}  mean {values.mean():.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trans", type=float, default=20.0, help="translation threshold, px at 6.25 um")
    parser.add_argument("--cor", type=float, default=0.5)
    parser.add_argument("--theta", type=float, default=6.0)
    parser.add_argument("--ours", type=Path, help="pairs CSV from `ballistics validate --pairs-csv`")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"cmcR data not found at {DATA}")
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = rdata.read_rda(str(DATA))["cmcCountData"]
    chosen = frame[
        (frame.transThresh == args.trans)
        & (np.isclose(frame.corThresh, args.cor))
        & (frame.thetaThresh == args.theta)
        & (frame.trendRemoved.astype(bool))
    ]
    print(f"cmcR on Fadul (780 pairs), Tx = Ty = {args.trans:g} px, Tccf = {args.cor:g}, Ttheta = {args.theta:g} deg, trend removed")
    for rule, label in (("originalMethodCMCs", "original rule"), ("highCMCs", "High CMC")):
        for kind in ("match", "non-match"):
            rows = chosen[(chosen.decisionRule == rule) & (chosen.type == kind)]
            print(f"  cmcR {label:<14}{kind:<10} {describe(rows.cmcCount.to_numpy(int), rows.n.to_numpy(int))}")
        auc = chosen[chosen.decisionRule == rule].AUC
        print(f"  cmcR {label:<14}AUC {float(auc.iloc[0]):.3f}" if len(auc) else "")
    if args.ours:
        with open(args.ours, newline="") as stream:
            rows = list(csv.DictReader(stream))
        for field, label in (("cmc_original", "original rule"), ("cmc_high", "High CMC")):
            for same, kind in (("1", "match"), ("0", "non-match")):
                values = np.array([int(r[field]) for r in rows if r["same_source"] == same])
                print(f"  ours {label:<14}{kind:<10} {describe(values, np.ones(values.size, int))}")


if __name__ == "__main__":
    main()
