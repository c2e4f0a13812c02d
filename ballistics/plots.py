"""Diagnostic figures an examiner reads beside the numbers.

The comparison figure follows cmcR's cmcPlot: the reference with its cells, the questioned case
aligned onto it with the same cells where they registered, congruent cells outlined in colour,
and the per-cell registrations (dx, dy, angle) whose agreement is what makes cells congruent.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from ballistics.cmc import transform
from ballistics.compare import Comparison
from ballistics.files import write_atomic
from ballistics.validate import Validation

CONGRUENT = "#1b9e77"
OTHER = "#d95f02"


def _show_surface(ax: plt.Axes, surface: np.ndarray, title: str) -> None:
    finite = surface[np.isfinite(surface)]
    limit = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    ax.imshow(surface * 1e6, cmap="gray", vmin=-limit * 1e6, vmax=limit * 1e6, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _save(fig: plt.Figure, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(Path(path), buffer.getvalue())
    return Path(path)


def comparison_figure(comparison: Comparison, path: Path) -> Path:
    """Aligned surfaces with congruent cells outlined, and the per-cell registration scatter."""
    if comparison.details is None or comparison.surfaces is None:
        raise ValueError("the comparison was made without its details; plot it where it was computed")
    result = comparison.details
    ref, qst = comparison.surfaces
    forward, rules = result.forward, result.forward_rules
    tol = result.params.rotation_deg
    high_decides = comparison.method["decision"]["rule"] == "high" and result.high_cmc_passed
    congruent = rules.high.congruent(tol) if high_decides else rules.original.congruent
    aligned = transform(
        np.asarray(qst.surface, np.float32), comparison.rotation_deg, (result.shift_px[0], result.shift_px[1]), ref.surface.shape
    )
    i = int(np.argmax(rules.high.congruent_at.sum(axis=1))) if rules.high.congruent_at.size else 0
    cdx = forward.dx[i] - np.nanmedian(forward.dx[i][congruent]) if congruent.any() else np.zeros(len(congruent))
    cdy = forward.dy[i] - np.nanmedian(forward.dy[i][congruent]) if congruent.any() else np.zeros(len(congruent))

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
    _show_surface(axes[0], ref.surface, f"reference\n{Path(str(comparison.reference['path'])).name}")
    _show_surface(
        axes[1],
        aligned,
        f"questioned, aligned (rotated {comparison.rotation_deg:.1f} deg)\n{Path(str(comparison.questioned['path'])).name}",
    )
    for k, (y0, x0, y1, x1) in enumerate(forward.cell_box):
        colour, width = (CONGRUENT, 1.6) if congruent[k] else (OTHER, 0.6)
        axes[0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=width))
        dx, dy = (np.nan_to_num(cdx[k]), np.nan_to_num(cdy[k]))
        axes[1].add_patch(Rectangle((x0 + dx, y0 + dy), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=width))

    scatter = axes[2]
    best = np.nanargmax(np.where(np.isfinite(forward.ccf), forward.ccf, -np.inf), axis=0) if forward.ccf.size else np.array([], int)
    cells = np.arange(forward.dx.shape[1])
    spacing_um = ref.spacing_m * 1e6
    points = scatter.scatter(
        forward.dx[best, cells] * spacing_um,
        forward.dy[best, cells] * spacing_um,
        c=forward.angles[best] if best.size else [],
        s=np.clip(np.nan_to_num(forward.ccf[best, cells], nan=0.0), 0.05, 1) * 120,
        cmap="twilight",
        edgecolors=[CONGRUENT if c else OTHER for c in rules.original.congruent],
    )
    fig.colorbar(points, ax=scatter, label="cell's best angle (deg)")
    threshold = result.params.translation_um
    scatter.add_patch(Rectangle((-threshold, -threshold), 2 * threshold, 2 * threshold, fill=False, linestyle="--", edgecolor="grey"))
    scatter.set_xlabel("dx (um)")
    scatter.set_ylabel("dy (um)")
    scatter.set_title(f"per-cell registration (size = correlation)\nCMC {comparison.cmc} ({comparison.decision})", fontsize=9)
    scatter.invert_yaxis()
    return _save(fig, path)


def validation_figure(validation: Validation, path: Path, title: str = "") -> Path:
    """Histograms of known-match and known-non-match CMC counts, with the decision threshold."""
    matches, non_matches = validation.counts(True), validation.counts(False)
    top = int(max(matches.max(initial=0), non_matches.max(initial=0))) + 2
    bins = np.arange(-0.5, top + 0.5, 1.0).tolist()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(non_matches, bins=bins, color=OTHER, alpha=0.75, label=f"known non-match (n={non_matches.size})")
    ax.hist(matches, bins=bins, color=CONGRUENT, alpha=0.75, label=f"known match (n={matches.size})")
    ax.axvline(
        validation.decision.identification_cmc - 0.5,
        color="black",
        linestyle="--",
        label=f"identification at CMC >= {validation.decision.identification_cmc}",
    )
    ax.set_yscale("symlog", linthresh=5)
    ax.set_xlabel("CMC count")
    ax.set_ylabel("pairs")
    ax.set_title(
        f"{title} AUC {validation.auc():.4f}, false identifications {validation.false_identifications}, missed {validation.missed_identifications}".strip(),
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def tippett_figure(llrs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float], path: Path, title: str = "") -> Path:
    """Tippett plot: the share of same-source and of different-source LRs at or above each value.

    ``llrs`` are base-10 log LRs, ``labels`` 1 for same source; the calibration's bounds are drawn
    dotted. Drawn here rather than with ``lir.plotting.tippett``, which spans each curve only
    between that class's smallest and largest LR, so a class whose LRs all sit at one bound (a
    well-separated reference set) would not be drawn at all.
    """
    llrs, labels = np.asarray(llrs, float), np.asarray(labels, int)
    grid = np.linspace(min(bounds[0], llrs.min()) - 0.5, max(bounds[1], llrs.max()) + 0.5, 1000)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, colour, name in ((1, CONGRUENT, "same source (H1)"), (0, OTHER, "different sources (H2)")):
        values = llrs[labels == label]
        share = (values[None, :] >= grid[:, None]).mean(axis=1) * 100
        ax.plot(grid, share, color=colour, label=f"{name}, n={values.size}")
    for bound in bounds:
        ax.axvline(bound, color="grey", linestyle=":", linewidth=1)
    ax.axvline(0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("log10 LR")
    ax.set_ylabel("pairs with log10 LR at or above (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{title} Tippett plot (ELUB bounds dotted)".strip(), fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def ece_figure(llrs: np.ndarray, labels: np.ndarray, path: Path, title: str = "") -> Path:
    """Empirical cross-entropy plot (``lir``): the LRs, the same after PAV, and a system that always says LR = 1."""
    from lir.data.models import LLRData
    from lir.plotting.expected_calibration_error import plot_ece

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    plot_ece(LLRData(features=np.asarray(llrs, float), labels=np.asarray(labels, int)), ax=ax)
    ax.set_title(f"{title} empirical cross-entropy".strip(), fontsize=10)
    return _save(fig, path)
