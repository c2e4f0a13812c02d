"""Seconds per `prepare()` on the raw Fadul scans and a processed one, against a baseline run in
the same process.

Ours: `ballistics.preprocess.prepare` as it ships.
Baseline: the same pipeline with the straightforward building blocks swapped in (defined here):
median regression by IRLS on every point of the region with 30 least-squares passes, float64
SciPy Gaussian filters on the full grid for both band-pass cut-offs, SciPy's iterative hole
filling and opening, and scikit-image's RANSAC (300 trials) for circles. Its output is also
compared with ours (Pearson correlation of the two working surfaces at the best offset within
3 px, fraction of points whose validity differs), so the speed is not bought with a different surface.

    .venv/bin/python benchmarks/bench_preprocess.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import CircleModel, ransac

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ballistics import preprocess, primer  # noqa: E402
from ballistics.method import PreprocessParams  # noqa: E402
from ballistics.preprocess import _trend_surface, prepare  # noqa: E402
from ballistics.primer import Circle  # noqa: E402
from ballistics.scan import load_scan  # noqa: E402

REAL = ROOT.parent / "shared" / "real_scans"
SCANS = {
    "fadul1.1_raw": REAL / "cmcR/converted_x3p/fadul1.1_raw.x3p",
    "fadul1.2_raw": REAL / "cmcR/converted_x3p/fadul1.2_raw.x3p",
    "fadul2.1_raw": REAL / "cmcR/converted_x3p/fadul2.1_raw.x3p",
    "Fadul 1-1 (processed)": REAL / "cartridgeCaseScans/fadulProcessed/Fadul 1-1.x3p",
}


def full_irls_trend(heights: np.ndarray, region: np.ndarray, trend: str, _params: PreprocessParams) -> np.ndarray:
    """Median-regression surface by IRLS on every region point, 30 least-squares passes."""
    ys, xs = np.nonzero(region)
    z = heights[region]
    rows, cols = heights.shape
    scale = max(rows, cols) / 2.0
    u, v = (xs - cols / 2.0) / scale, (ys - rows / 2.0) / scale
    terms = [np.ones_like(u), u, v] + ([u * u, u * v, v * v] if trend == "quadratic" else [])
    design = np.stack(terms, axis=1)
    coef = np.linalg.lstsq(design, z, rcond=None)[0]
    for _ in range(30):
        residual = np.abs(z - design @ coef)
        sqrt_w = np.maximum(residual, 1e-6 * (np.median(residual) + 1e-12)) ** -0.5
        coef = np.linalg.lstsq(design * sqrt_w[:, None], z * sqrt_w, rcond=None)[0]
    return _trend_surface(coef, heights.shape)


def float64_blur(values: np.ndarray, valid: np.ndarray, sigma_px: float, _coarse_sigmas: float) -> np.ndarray:
    """Normalised convolution with float64 SciPy Gaussians on the full grid."""
    numerator = ndi.gaussian_filter(np.where(valid, values, 0.0), sigma_px, mode="constant")
    denominator = ndi.gaussian_filter(valid.astype(np.float64), sigma_px, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-6, numerator / denominator, np.nan)


def skimage_ransac_circle(points: np.ndarray, threshold_px: float) -> Circle | None:
    if len(points) < 10:
        return None
    if len(points) > 3000:
        points = points[np.random.default_rng(0).choice(len(points), 3000, replace=False)]
    model, inliers = ransac(points, CircleModel, min_samples=3, residual_threshold=threshold_px, max_trials=300, rng=0)
    if model is None or inliers is None or inliers.mean() < 0.25:
        return None
    (x, y), r = model.center, model.radius
    return Circle(float(x), float(y), float(r))


def scipy_opening(mask: np.ndarray, iterations: int) -> np.ndarray:
    return ndi.binary_opening(mask, iterations=iterations)


BASELINE = {
    (preprocess, "_robust_trend"): full_irls_trend,
    (preprocess, "_normalised_blur"): float64_blur,
    (preprocess, "fill_holes"): ndi.binary_fill_holes,
    (preprocess, "opening"): scipy_opening,
    (primer, "fill_holes"): ndi.binary_fill_holes,
    (primer, "opening"): scipy_opening,
    (primer, "_ransac_circle"): skimage_ransac_circle,
}


def run(scan, baseline: bool):
    with ExitStack() as stack:
        if baseline:
            for (module, name), replacement in BASELINE.items():
                stack.enter_context(mock.patch.object(module, name, replacement))
        started = time.perf_counter()
        face = prepare(scan)
        return time.perf_counter() - started, face


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Correlation over common valid points, and the fraction of points whose validity differs,
    at the best offset within 3 px (a circle fitted a pixel apart moves the trimmed box)."""
    best = (-2.0, 1.0)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            pa = a[max(0, dy) :, max(0, dx) :]
            pb = b[max(0, -dy) :, max(0, -dx) :]
            rows, cols = min(pa.shape[0], pb.shape[0]), min(pa.shape[1], pb.shape[1])
            pa, pb = pa[:rows, :cols], pb[:rows, :cols]
            both = np.isfinite(pa) & np.isfinite(pb)
            corr = float(np.corrcoef(pa[both], pb[both])[0, 1])
            if corr > best[0]:
                best = (corr, float((np.isfinite(pa) != np.isfinite(pb)).mean()))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'scan':24s} {'ours s':>8s} {'baseline s':>10s} {'ratio':>6s} {'corr':>6s} {'mask diff':>9s}")
    for label, path in SCANS.items():
        scan = load_scan(path)
        run(scan, False)  # warm-up (imports, caches)
        ours = [run(scan, False) for _ in range(args.repeats)]
        base = [run(scan, True) for _ in range(args.repeats)]
        t_ours = statistics.median(t for t, _ in ours)
        t_base = statistics.median(t for t, _ in base)
        corr, diff = agreement(ours[0][1].surface, base[0][1].surface)
        print(f"{label:24s} {t_ours:8.3f} {t_base:10.3f} {t_base / t_ours:6.1f} {corr:6.3f} {diff:9.4f}")


if __name__ == "__main__":
    main()
