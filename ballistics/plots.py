"""Figures an examiner reads beside the numbers, fit to print in a statement.

The comparison figure follows cmcR's cmcPlot: the reference with its cells, the questioned case
aligned onto it with the same cells where they registered, congruent cells outlined in colour,
and the per-cell registrations (dx, dy, angle) whose agreement is what makes cells congruent.
It opens with what was compared: each scan as received, with the primer's edge, the crop and the
firing-pin zone removed drawn over it (:func:`crop_panel`), so that a bad crop shows at a
glance, and shows the registered surfaces in shaded relief under a virtual oblique light
(:mod:`ballistics.relief`), as under a comparison microscope.

Every figure is titled with the case and exhibit identifiers (:class:`Identifiers`; file names
only where nothing else is known), carries a scale bar in µm or mm, a colour bar with its unit,
a legend for every colour and line style, integer ticks on counts and the decision thresholds
drawn, uses constrained layout so that no label overlaps another, and is written at :data:`DPI`
dots per inch: as SVG when the file name ends in ``.svg``, else as PNG (:func:`figure_format`).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Polygon, Rectangle
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from scipy import ndimage as ndi

from ballistics.compare import Comparison
from ballistics.errors import UsageError
from ballistics.files import write_atomic
from ballistics.identifiers import Identifiers
from ballistics.preprocess import BreechFace
from ballistics.registration import wrap_deg
from ballistics.relief import AZIMUTH_DEG, ELEVATION_DEG, shade
from ballistics.scan import Scan
from ballistics.validate import Validation

CONGRUENT = "#1b9e77"
OTHER = "#d95f02"
PRIMER = "#e7298a"
ZONE = "#ffb000"
UNMEASURED = "#d9dde3"
#: Resolution of every figure written, dots per inch (print quality).
DPI = 300
#: Figure formats by the output file's extension.
FORMATS = {".png": "png", ".svg": "svg"}
#: Scale-bar lengths tried, micrometres: the longest one under a quarter of the picture's width.
SCALE_BARS_UM = (50, 100, 200, 500, 1000, 2000, 5000)
#: Colour range of a cell's best angle less the registration's rotation (degrees), the same in
#: every figure; cells beyond it take the end colours (the colour bar's arrows).
ANGLE_RANGE_DEG = 15.0
ANGLE_CMAP = "coolwarm"

plt.rcParams["svg.hashsalt"] = "ballistics"  # the same SVG for the same figure


def figure_format(path: Path) -> str:
    """The format a figure is written in, by its file's extension: ``png`` or ``svg``.

    Raises
    ------
    UsageError
        Any other extension (checked before the work of making the figure).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(path, f"a figure is written as PNG (.png) or SVG (.svg), not {suffix or 'a file without extension'!r}")
    return FORMATS[suffix]


def _figure(width: float, height: float) -> Figure:
    return plt.figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` at :data:`DPI` as PNG or SVG (:func:`figure_format`), atomically."""
    fmt = figure_format(path)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
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
    """A bar of a round length (µm, or mm from 1000 µm) under a quarter of the picture's width, lower right."""
    fitting = [length for length in SCALE_BARS_UM if length / spacing_um <= width_px / 4]
    length = fitting[-1] if fitting else SCALE_BARS_UM[0]
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length} µm"
    bar = AnchoredSizeBar(
        ax.transData, length / spacing_um, label, "lower right", pad=0.3, color="black", frameon=True, size_vertical=width_px / 150
    )
    bar.patch.set_facecolor("white")
    bar.patch.set_alpha(0.8)
    bar.patch.set_edgecolor("none")
    ax.add_artist(bar)


def _height_colourbar(fig: Figure | SubFigure, image: ScalarMappable, ax: plt.Axes, unit: str) -> None:
    colourbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    colourbar.set_label(unit, fontsize=8)
    colourbar.ax.tick_params(labelsize=7)


def crop_panel(fig: Figure | SubFigure, ax: plt.Axes, scan: Scan, face: BreechFace, title: str) -> None:
    """One scan as received, with what its comparison used drawn over it.

    The breech face kept (green, outlined), the primer's edge (solid) and the crop inside it
    (dashed), and the firing-pin zone removed with its margin (hatched); a colour bar in µm, a
    scale bar and a legend under the picture.
    """
    values, unit = _display_values(scan)
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, (1, 99)) if finite.size else (0.0, 1.0)
    image = ax.imshow(values, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    _height_colourbar(fig, image, ax, unit)
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
    """Write :func:`draw_crops` to ``path`` (PNG or SVG, :func:`figure_format`)."""
    return _save(draw_crops(items), path)


def draw_crops(items: list[tuple[Scan, BreechFace, str]]) -> Figure:
    """One :func:`crop_panel` per (scan, prepared face, title: CASE/EXHIBIT or file name), side by side."""
    fig = _figure(6.2 * len(items), 6.8)
    axes = fig.subplots(1, len(items), squeeze=False)
    for ax, (scan, face, title) in zip(axes[0], items, strict=True):
        crop_panel(fig, ax, scan, face, title)
    return fig


def _height_panel(fig: Figure | SubFigure, ax: plt.Axes, face: BreechFace, title: str) -> None:
    """A prepared working surface as a height map (µm), with its colour bar and scale bar."""
    heights = face.surface * 1e6
    finite = heights[np.isfinite(heights)]
    limit = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    image = ax.imshow(heights, cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
    _height_colourbar(fig, image, ax, "height (µm)")
    _scale_bar(ax, heights.shape[1], face.spacing_m * 1e6)
    ax.set_axis_off()
    ax.set_title(f"{title}\nprepared surface, {face.spacing_m * 1e6:.3g} µm per pixel", fontsize=9)


def _relief_panel(ax: plt.Axes, surface: np.ndarray, spacing_m: float, title: str) -> None:
    """A working surface in shaded relief (light from :data:`ballistics.relief.AZIMUTH_DEG`), with a scale bar."""
    cmap = matplotlib.colormaps["gray"].with_extremes(bad=UNMEASURED)
    ax.imshow(np.ma.masked_invalid(shade(surface, spacing_m)), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    _scale_bar(ax, surface.shape[1], spacing_m * 1e6)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def comparison_figure(
    comparison: Comparison,
    path: Path,
    scans: tuple[tuple[Scan, str], tuple[Scan, str]] | None = None,
    identifiers: Identifiers | None = None,
) -> Path:
    """Write :func:`draw_comparison` to ``path`` (PNG or SVG, :func:`figure_format`)."""
    return _save(draw_comparison(comparison, scans, identifiers), path)


def draw_comparison(
    comparison: Comparison,
    scans: tuple[tuple[Scan, str], tuple[Scan, str]] | None = None,
    identifiers: Identifiers | None = None,
) -> Figure:
    """The comparison, fit to print: what was compared, the registered relief with its cells, and the counts.

    Top row: with ``scans`` (each scan as loaded and its name for the examiner) both scans with
    their crops (:func:`crop_panel`), else both prepared surfaces as height maps; each with a
    colour bar in µm and a scale bar. Bottom row: the reference and the questioned case
    registered onto it in shaded relief, congruent and other cells outlined; the per-cell
    registrations (dx, dy in µm, colour the cell's best angle less the registration's rotation
    on the fixed range ±:data:`ANGLE_RANGE_DEG`, the translation tolerance dashed); and the CMC
    counts against the identification and elimination thresholds. ``identifiers`` name the
    case and exhibits in the titles (default: the scans' file names).
    """
    if comparison.details is None or comparison.surfaces is None:
        raise ValueError("the comparison was made without its details; plot it where it was computed")
    names = identifiers or Identifiers.from_comparison(comparison)
    ref, qst = comparison.surfaces
    _, aligned = comparison.registered_surfaces()
    cells = comparison.cell_outlines()

    fig = _figure(17, 13.5)
    fig.suptitle(
        f"{names.title()}\nCMC {comparison.cmc} ({comparison.method['decision']['rule']} rule): {comparison.decision}",
        fontsize=12,
    )
    top, bottom = fig.subfigures(2, 1, height_ratios=(1.15, 1))  # type: ignore[misc]  # an array of two subfigures
    top_axes = top.subplots(1, 2)
    for ax, face, side, name, k in zip(
        top_axes, (ref, qst), ("reference", "questioned"), (names.reference, names.questioned), (0, 1), strict=True
    ):
        if scans is not None:
            crop_panel(top, ax, scans[k][0], face, f"{side}: {name}")
        else:
            _height_panel(top, ax, face, f"{side}: {name}")

    grid = bottom.add_gridspec(2, 3, width_ratios=(1, 1, 1.05), height_ratios=(1.7, 1))
    ref_ax, qst_ax = bottom.add_subplot(grid[:, 0]), bottom.add_subplot(grid[:, 1])
    scatter, counts = bottom.add_subplot(grid[0, 2]), bottom.add_subplot(grid[1, 2])
    light = f"shaded relief, light from {AZIMUTH_DEG:.0f}° at {ELEVATION_DEG:.0f}° elevation"
    _relief_panel(ref_ax, ref.surface, ref.spacing_m, f"reference: {names.reference}\n{light}")
    _relief_panel(
        qst_ax,
        aligned,
        ref.spacing_m,
        f"questioned: {names.questioned}\nregistered onto the reference (rotated {comparison.rotation_deg:.1f}°)",
    )
    congruent = cells.congruent
    for ax, boxes in ((ref_ax, cells.reference), (qst_ax, cells.questioned)):
        for (x0, y0, x1, y1), is_congruent in zip(boxes, congruent, strict=True):
            colour, width = (CONGRUENT, 1.6) if is_congruent else (OTHER, 0.6)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=width))
    rule = cells.rule
    cell_handles = [
        Patch(
            facecolor="none",
            edgecolor=CONGRUENT,
            linewidth=1.6,
            label=f"congruent cell ({int(congruent.sum())} of the reference's, {rule} rule)",
        ),
        Patch(facecolor="none", edgecolor=OTHER, linewidth=0.6, label=f"cell not congruent ({int((~congruent).sum())})"),
    ]
    bottom.legend(handles=cell_handles, loc="outside lower left", ncol=2, fontsize=8, frameon=False)
    _registration_scatter(bottom, scatter, comparison)
    _counts_panel(counts, comparison)
    return fig


def _registration_scatter(fig: Figure | SubFigure, ax: plt.Axes, comparison: Comparison) -> None:
    """Each cell at its best angle (original rule): displacement, angle offset (fixed colour range) and correlation (size)."""
    assert comparison.details is not None and comparison.surfaces is not None
    result = comparison.details
    forward, rules = result.forward, result.forward_rules
    spacing_um = comparison.surfaces[0].spacing_m * 1e6
    scored = np.isfinite(forward.ccf).any(axis=0)
    best = np.argmax(np.where(np.isfinite(forward.ccf), forward.ccf, -np.inf), axis=0)
    cells = np.arange(forward.dx.shape[1])
    dx, dy = forward.dx[best, cells] * spacing_um, forward.dy[best, cells] * spacing_um
    ccf = np.clip(np.nan_to_num(forward.ccf[best, cells], nan=0.0), 0.05, 1)
    offset = np.asarray(wrap_deg(rules.original.cell_angle - comparison.rotation_deg))
    congruent = rules.original.congruent
    points = ax.scatter(
        dx[scored],
        dy[scored],
        c=offset[scored],
        s=ccf[scored] * 110,
        cmap=ANGLE_CMAP,
        norm=Normalize(-ANGLE_RANGE_DEG, ANGLE_RANGE_DEG),
        edgecolors=[CONGRUENT if c else OTHER for c in congruent[scored]],
        linewidths=1.4,
    )
    colourbar = fig.colorbar(points, ax=ax, extend="both")
    colourbar.set_label("cell's best angle less\nthe rotation found (°)", fontsize=8)
    colourbar.ax.tick_params(labelsize=7)
    tolerance = result.params.translation_um
    centre = (float(np.median(dx[scored])), float(np.median(dy[scored]))) if scored.any() else (0.0, 0.0)
    ax.add_patch(
        Rectangle(
            (centre[0] - tolerance, centre[1] - tolerance), 2 * tolerance, 2 * tolerance, fill=False, linestyle="--", edgecolor="grey"
        )
    )
    ax.set_xlabel("dx (µm)", fontsize=8)
    ax.set_ylabel("dy (µm)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.invert_yaxis()
    ax.set_title("per-cell registration at each cell's best angle (size: correlation)", fontsize=9)
    handles = [
        Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor=CONGRUENT, markeredgewidth=1.4,
               label="congruent (original rule)"),
        Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor=OTHER, markeredgewidth=1.4,
               label="not congruent"),
        Line2D([], [], color="grey", linestyle="--", label=f"tolerance ±{tolerance:g} µm around the cells' median"),
    ]  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)


def _counts_panel(ax: plt.Axes, comparison: Comparison) -> None:
    """The CMC counts (cells) of both rules and directions, with the identification and elimination thresholds."""
    decision = comparison.method["decision"]
    labels = ["deciding", "original rule", "High CMC", "deciding, forward", "deciding, backward"]
    values = [comparison.cmc, comparison.cmc_original, comparison.cmc_high, comparison.cmc_forward, comparison.cmc_backward]
    ax.barh(labels, values, color=["#4d4d4d", *["#9a9a9a"] * 4])
    ax.invert_yaxis()
    ax.axvline(decision["identification_cmc"] - 0.5, color="black", linestyle="--", linewidth=1.2)
    ax.axvline(decision["elimination_cmc"] + 0.5, color="black", linestyle=":", linewidth=1.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max([*values, decision["identification_cmc"]]) + 2)
    ax.set_xlabel(f"CMC count (cells, of {comparison.cells_compared} compared)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(
        handles=[
            Line2D([], [], color="black", linestyle="--", label=f"identification at CMC ≥ {decision['identification_cmc']}"),
            Line2D([], [], color="black", linestyle=":", label=f"elimination at CMC ≤ {decision['elimination_cmc']}"),
        ],
        fontsize=7,
        loc="lower right",
    )


def validation_figure(validation: Validation, path: Path, title: str = "") -> Path:
    """Write :func:`draw_validation` to ``path`` (PNG or SVG, :func:`figure_format`)."""
    return _save(draw_validation(validation, title), path)


def draw_validation(validation: Validation, title: str = "") -> Figure:
    """Histograms of known-match and known-non-match CMC counts, with the decision thresholds.

    ``title`` names the validation set. Counts (x) and pairs (y, symmetric-log) have integer ticks.
    """
    matches, non_matches = validation.counts(True), validation.counts(False)
    top = int(max(matches.max(initial=0), non_matches.max(initial=0))) + 2
    bins = np.arange(-0.5, top + 0.5, 1.0).tolist()
    fig = _figure(8, 4.8)
    ax = fig.subplots()
    ax.hist(non_matches, bins=bins, color=OTHER, alpha=0.75, label=f"known non-match (n={non_matches.size})")
    ax.hist(matches, bins=bins, color=CONGRUENT, alpha=0.75, label=f"known match (n={matches.size})")
    ident, elim = validation.decision.identification_cmc, validation.decision.elimination_cmc
    ax.axvline(ident - 0.5, color="black", linestyle="--", label=f"identification at CMC ≥ {ident}")
    ax.axvline(elim + 0.5, color="black", linestyle=":", label=f"elimination at CMC ≤ {elim}")
    ax.set_yscale("symlog", linthresh=5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(matplotlib.ticker.SymmetricalLogLocator(base=10, linthresh=5, subs=[1.0, 2.0, 5.0]))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:.0f}"))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(f"CMC count (cells, {validation.decision.rule} rule)")
    ax.set_ylabel("pairs (symmetric log scale)")
    heading = f"{title.rstrip(': ')}: " if title else ""
    ax.set_title(
        f"{heading}AUC {validation.auc():.4f}, false identifications {validation.false_identifications}, "
        f"missed identifications {validation.missed_identifications}",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return fig


def tippett_figure(llrs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float], path: Path, title: str = "") -> Path:
    """Write :func:`draw_tippett` to ``path`` (PNG or SVG, :func:`figure_format`)."""
    return _save(draw_tippett(llrs, labels, bounds, title), path)


def draw_tippett(llrs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float], title: str = "") -> Figure:
    """Tippett plot: the share of same-source and of different-source LRs at or above each value.

    ``llrs`` are base-10 log LRs, ``labels`` 1 for same source; the calibration's bounds are drawn
    dotted and LR = 1 dashed. ``title`` names the reference set. Drawn here rather than with
    ``lir.plotting.tippett``, which spans each curve only between that class's smallest and
    largest LR, so a class whose LRs all sit at one bound (a well-separated reference set) would
    not be drawn at all.
    """
    llrs, labels = np.asarray(llrs, float), np.asarray(labels, int)
    grid = np.linspace(min(bounds[0], llrs.min()) - 0.5, max(bounds[1], llrs.max()) + 0.5, 1000)
    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    for label, colour, name in ((1, CONGRUENT, "same source (H1)"), (0, OTHER, "different sources (H2)")):
        values = llrs[labels == label]
        share = (values[None, :] >= grid[:, None]).mean(axis=1) * 100
        ax.plot(grid, share, color=colour, label=f"{name}, n={values.size}")
    for k, bound in enumerate(bounds):
        ax.axvline(bound, color="grey", linestyle=":", linewidth=1, label=None if k else f"ELUB bounds {bounds[0]:+.2f}, {bounds[1]:+.2f}")
    ax.axvline(0, color="black", linestyle="--", linewidth=1, label="LR = 1 (log10 LR = 0)")
    ax.set_xlabel("log10 LR")
    ax.set_ylabel("pairs with log10 LR at or above (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(
        f"{title.rstrip(': ')}: Tippett plot, LRs held out by firearm" if title else "Tippett plot, LRs held out by firearm", fontsize=10
    )
    ax.legend(fontsize=8)
    return fig


def ece_figure(llrs: np.ndarray, labels: np.ndarray, path: Path, title: str = "") -> Path:
    """Write :func:`draw_ece` to ``path`` (PNG or SVG, :func:`figure_format`)."""
    return _save(draw_ece(llrs, labels, title), path)


def draw_ece(llrs: np.ndarray, labels: np.ndarray, title: str = "") -> Figure:
    """Empirical cross-entropy plot (``lir``): the LRs, the same after PAV, and a system that always says LR = 1."""
    from lir.data.models import LLRData
    from lir.plotting.expected_calibration_error import plot_ece

    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    plot_ece(LLRData(features=np.asarray(llrs, float), labels=np.asarray(labels, int)), ax=ax)
    names = {
        "reference": "LR = 1 always (uninformative)",
        "LRs": "LRs held out by firearm",
        "PAV LRs": "after PAV (calibration loss removed)",
    }
    handles, texts = ax.get_legend_handles_labels()
    ax.legend(handles, [names.get(text, text) for text in texts], fontsize=8)
    ax.set_xlabel("prior log10 odds of same source")
    ax.set_title(f"{title.rstrip(': ')}: empirical cross-entropy" if title else "empirical cross-entropy", fontsize=10)
    return fig
