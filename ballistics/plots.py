"""Diagnostic figures an examiner reads beside the numbers.

The comparison figure follows cmcR's cmcPlot: the reference with its cells, the questioned case
aligned onto it with the same cells where they registered, congruent cells outlined in colour,
and the per-cell registrations (dx, dy, angle) whose agreement is what makes cells congruent.
Given the scans, it opens with what was compared: each scan as received, with the primer's edge,
the crop and the firing-pin zone removed drawn over it (:func:`crop_panel`), so that a bad crop
shows at a glance. Figures are written at :data:`DPI` dots per inch.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Polygon, Rectangle
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from scipy import ndimage as ndi

from ballistics.cmc import transform
from ballistics.compare import Comparison
from ballistics.files import write_atomic
from ballistics.preprocess import BreechFace
from ballistics.scan import Scan
from ballistics.validate import Validation

CONGRUENT = "#1b9e77"
OTHER = "#d95f02"
PRIMER = "#e7298a"
ZONE = "#ffb000"
#: Resolution of every figure written, dots per inch (print quality).
DPI = 200
#: Scale-bar lengths tried, micrometres: the longest one under a quarter of the picture's width.
SCALE_BARS_UM = (50, 100, 200, 500, 1000, 2000, 5000)


def _show_surface(ax: plt.Axes, surface: np.ndarray, title: str) -> None:
    finite = surface[np.isfinite(surface)]
    limit = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    ax.imshow(surface * 1e6, cmap="gray", vmin=-limit * 1e6, vmax=limit * 1e6, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _save(fig: plt.Figure, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    write_atomic(Path(path), buffer.getvalue())
    return Path(path)


def _display_values(scan: Scan) -> tuple[np.ndarray, str]:
    """What to show of a scan: heights less their least-squares plane (µm), or grey level (0-255)."""
    if scan.kind == "image":
        return scan.heights / scan.spacing_x * 255.0, "grey level (0-255)"
    heights = scan.heights * 1e6
    valid = np.isfinite(heights)
    ys, xs = np.nonzero(valid)
    step = max(1, xs.size // 50_000)
    design = np.stack([np.ones(xs.size), xs, ys], axis=1)[::step]
    coef = np.linalg.lstsq(design, heights[valid][::step], rcond=None)[0]
    yy, xx = np.indices(heights.shape)
    return heights - (coef[0] + coef[1] * xx + coef[2] * yy), "height less its plane (µm)"


def _scale_bar(ax: plt.Axes, width_px: float, spacing_um: float) -> None:
    fitting = [length for length in SCALE_BARS_UM if length / spacing_um <= width_px / 4]
    length = fitting[-1] if fitting else SCALE_BARS_UM[0]
    bar = AnchoredSizeBar(
        ax.transData, length / spacing_um, f"{length} µm", "lower right", pad=0.3, color="black", frameon=True, size_vertical=width_px / 150
    )
    bar.patch.set_facecolor("white")
    bar.patch.set_alpha(0.8)
    bar.patch.set_edgecolor("none")
    ax.add_artist(bar)


def crop_panel(fig: plt.Figure, ax: plt.Axes, scan: Scan, face: BreechFace, title: str) -> None:
    """One scan as received, with what its comparison used drawn over it.

    The breech face kept (green, outlined), the primer's edge (solid) and the crop inside it
    (dashed), and the firing-pin zone removed with its margin (hatched); a colour bar in µm, a
    scale bar and a legend under the picture.
    """
    values, unit = _display_values(scan)
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, (1, 99)) if finite.size else (0.0, 1.0)
    image = ax.imshow(values, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    colourbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    colourbar.set_label(unit, fontsize=8)
    colourbar.ax.tick_params(labelsize=7)
    handles: list[Patch | Line2D] = []
    crop = face.crop
    if crop is not None:
        kept = np.isfinite(face.surface)
        overlay = np.zeros((*kept.shape, 4))
        overlay[kept] = (0.11, 0.62, 0.47, 0.35)
        ax.imshow(overlay, extent=crop.surface_extent, interpolation="nearest")
        outline = ndi.binary_fill_holes(kept).astype(float)  # the region's edges, not every unmeasured speck
        ax.contour(outline, levels=[0.5], colors=CONGRUENT, linewidths=0.8, extent=crop.surface_extent, origin="upper")
        handles.append(Patch(facecolor=CONGRUENT, alpha=0.5, edgecolor=CONGRUENT, label="breech face compared"))
        if crop.primer is not None:
            x, y, r = crop.primer
            ax.add_patch(Circle((x, y), r, fill=False, edgecolor=PRIMER, linewidth=1.2))
            name = "primer edge" if face.mode == "raw" else "circle around the processed face"
            handles.append(Line2D([], [], color=PRIMER, linewidth=1.2, label=f"{name} (radius {r * scan.spacing_x * 1e3:.2f} mm)"))
            if crop.kept_radius_px is not None:
                ax.add_patch(Circle((x, y), crop.kept_radius_px, fill=False, edgecolor=PRIMER, linewidth=1.0, linestyle="--"))
                handles.append(Line2D([], [], color=PRIMER, linewidth=1.0, linestyle="--", label="crop (exterior offset)"))
        if crop.firing_pin_zone is not None:
            ax.add_patch(Polygon(crop.firing_pin_zone, closed=True, fill=False, edgecolor=ZONE, hatch="////", linewidth=1.2))
            handles.append(Patch(facecolor="none", edgecolor=ZONE, hatch="////", label="firing-pin zone removed"))
    ax.set_xlim(-0.5, values.shape[1] - 0.5)
    ax.set_ylim(values.shape[0] - 0.5, -0.5)
    _scale_bar(ax, values.shape[1], scan.spacing_x * 1e6)
    ax.set_axis_off()
    mode = "processed, passed through" if face.mode == "preprocessed" else "raw, cropped here"
    ax.set_title(f"{title}\n{scan.kind}, {scan.spacing_x * 1e6:.3g} µm per pixel, {mode}", fontsize=9)
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, fontsize=7, frameon=False)


def crop_figure(items: list[tuple[Scan, BreechFace, str]], path: Path) -> Path:
    """One :func:`crop_panel` per (scan, prepared face, title), side by side."""
    fig, axes = plt.subplots(1, len(items), figsize=(6.2 * len(items), 6.6), squeeze=False)
    for ax, (scan, face, title) in zip(axes[0], items, strict=True):
        crop_panel(fig, ax, scan, face, title)
    return _save(fig, path)


def comparison_figure(comparison: Comparison, path: Path, scans: tuple[tuple[Scan, str], tuple[Scan, str]] | None = None) -> Path:
    """Aligned surfaces with congruent cells outlined, and the per-cell registration scatter.

    With ``scans`` (each scan as loaded and its name for the examiner: file or CASE/EXHIBIT) the
    figure opens with a row showing both scans with their crops (:func:`crop_panel`).
    """
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

    if scans is None:
        fig, grid = plt.subplots(1, 3, figsize=(15, 5.2))
        axes = list(grid)
    else:
        fig = plt.figure(figsize=(15, 12.4))
        top = fig.add_gridspec(2, 2, height_ratios=(1.25, 1), hspace=0.25)
        for k, ((scan, label), face, side) in enumerate(zip(scans, (ref, qst), ("reference", "questioned"), strict=True)):
            crop_panel(fig, fig.add_subplot(top[0, k]), scan, face, f"{side}: {label}")
        bottom = top[1, :].subgridspec(1, 3, wspace=0.25)
        axes = [fig.add_subplot(bottom[0, k]) for k in range(3)]
    _show_surface(axes[0], ref.surface, f"reference\n{Path(str(comparison.reference['path'])).name}")
    _show_surface(
        axes[1],
        aligned,
        f"questioned, aligned (rotated {comparison.rotation_deg:.1f}°)\n{Path(str(comparison.questioned['path'])).name}",
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
    fig.colorbar(points, ax=scatter, label="cell's best angle (°)")
    threshold = result.params.translation_um
    scatter.add_patch(Rectangle((-threshold, -threshold), 2 * threshold, 2 * threshold, fill=False, linestyle="--", edgecolor="grey"))
    scatter.set_xlabel("dx (µm)")
    scatter.set_ylabel("dy (µm)")
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
