"""The link graph of one firearm series, for print: cases as nodes, confirmed links as edges.

Each case is a box labelled with its lab and case number, filled with the colour of its lab's
country (the legend names the countries and their labs); each pair of cases joined by confirmed
links is one edge, labelled with the likelihood ratio of its records as a base-10 logarithm and
its verbal category (the strongest when several records join the pair, with their count); links
within one case are counted in the case's box. Positions come from the Kamada-Kawai layout
(:func:`networkx.kamada_kawai_layout`, deterministic). Labels are then checked for overlap in the
rendered figure: each edge's label takes the first place along its edge (:data:`ALONG`, from the
middle outwards) where it overlaps no box placed before it; while a label finds none, the figure
is enlarged (text keeps its size in points, so the boxes move apart) up to :data:`MAX_GROWTHS`
times, and the count of labels left overlapping is returned.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
from matplotlib.patches import Patch
from matplotlib.text import Text

from ballistics.files import write_atomic
from ballistics.plots import DPI
from ballistics.series import CaseRef, Link, Series

#: Country fills (Okabe-Ito palette, lightened so that black text stays legible), by order of the sorted country codes.
COUNTRY_COLOURS = ("#9ecae1", "#fdbf6f", "#b2df8a", "#f4a6c6", "#d9d9d9", "#cab2d6", "#ffff99")
EDGE_COLOUR = "#404040"
#: Times the figure is enlarged by :data:`GROWTH` while labels overlap.
MAX_GROWTHS = 6
GROWTH = 1.3
#: Places tried for an edge's label, as fractions of the way along the edge.
ALONG = (0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8)


@dataclass(frozen=True)
class SeriesPlot:
    """The figure written: where, its size in pixels, and the pairs of labels left overlapping (0 when readable)."""

    path: Path
    width_px: int
    height_px: int
    overlapping_labels: int


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _edge_label(links: list[Link]) -> str:
    stated = [link.likelihood_ratio for link in links if link.likelihood_ratio is not None]
    if not stated:
        text = "no LR stated"
    else:
        strongest = max(stated, key=lambda lr: lr.log10_lr)
        words = strongest.category if strongest.calibrated else "uncalibrated"
        text = f"log10 LR {strongest.log10_lr:+.1f}\n{words}"
    return text if len(links) == 1 else f"{text}\n({len(links)} records, strongest)"


def _layout(graph: nx.Graph[CaseRef]) -> dict[CaseRef, tuple[float, float]]:
    nodes = sorted(graph.nodes)
    if len(nodes) == 1:
        return {nodes[0]: (0.0, 0.0)}
    if len(nodes) == 2:
        return {nodes[0]: (-1.0, 0.0), nodes[1]: (1.0, 0.0)}
    positions = nx.kamada_kawai_layout(graph)
    nodes = list(positions)
    points = np.array([positions[node] for node in nodes], dtype=float)
    points -= points.mean(axis=0)
    # Turn the layout so that its longer extent lies across the page (principal axes of the positions).
    _, axes = np.linalg.eigh(points.T @ points)
    turned = points @ axes[:, ::-1]
    return {node: (float(x), float(y)) for node, (x, y) in zip(nodes, turned, strict=True)}


Box = tuple[float, float, float, float]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _box(text: Text, renderer: Any) -> Box:
    """The display extent of a label with its rounded box (its pad and frame line, in pixels)."""
    extent = text.get_window_extent(renderer)
    frame = text.get_bbox_patch()
    pad = 0.0
    if frame is not None:
        points = float(getattr(frame.get_boxstyle(), "pad", 0.3)) * float(text.get_fontsize()) + frame.get_linewidth()
        pad = points * text.figure.dpi / 72
    return (extent.x0 - pad, extent.y0 - pad, extent.x1 + pad, extent.y1 + pad)


def _place_edge_labels(ax: plt.Axes, edges: list[tuple[tuple[float, float], tuple[float, float], str]], taken: list[Box]) -> int:
    """Put each edge's label at the first place along the edge (:data:`ALONG`) where it overlaps no label placed before.

    ``taken`` holds the node boxes and grows with each label placed; returns the labels that
    found no free place (left at the middle of their edge).
    """
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    crowded = 0
    for (xa, ya), (xb, yb), label in edges:
        text = ax.text(
            (xa + xb) / 2,
            (ya + yb) / 2,
            label,
            ha="center",
            va="center",
            fontsize=7,
            parse_math=False,  # words from a partner's record are text, never mathtext
            zorder=3,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": EDGE_COLOUR, "linewidth": 0.6},
        )
        for along in ALONG:
            text.set_position((xa + along * (xb - xa), ya + along * (yb - ya)))
            box = _box(text, renderer)
            if not any(_overlap(box, other) for other in taken):
                break
        else:
            text.set_position(((xa + xb) / 2, (ya + yb) / 2))
            box = _box(text, renderer)
            crowded += 1
        taken.append(box)
    return crowded


def draw_series(series: Series, path: str | Path) -> SeriesPlot:
    """Write the link graph of ``series`` as a PNG at :data:`DPI` dots per inch (atomically)."""
    graph: nx.Graph[CaseRef] = nx.Graph()
    graph.add_nodes_from(case.ref for case in series.cases)
    joined: dict[tuple[CaseRef, CaseRef], list[Link]] = {}
    within: dict[CaseRef, int] = {}
    for link in series.links:
        a, b = sorted(link.ends)
        if a == b:
            within[a] = within.get(a, 0) + 1
        else:
            joined.setdefault((a, b), []).append(link)
            graph.add_edge(a, b)
    positions = _layout(graph)
    edges = [(positions[a], positions[b], _edge_label(links)) for (a, b), links in sorted(joined.items())]
    colours = dict(zip(series.countries, itertools.cycle(COUNTRY_COLOURS), strict=False))
    xs, ys = [p[0] for p in positions.values()], [p[1] for p in positions.values()]
    limits = ((min(xs) - 0.45, max(xs) + 0.45), (min(ys) - 0.3, max(ys) + 0.3))
    width = 4.5 + 1.8 * len(series.cases) ** 0.5  # inches: the layout's unit square takes more room as cases are added
    size = (width, min(width, max(2.6, width * (limits[1][1] - limits[1][0]) / (limits[0][1] - limits[0][0]))))
    for _ in range(MAX_GROWTHS + 1):
        fig, ax = plt.subplots(figsize=size)
        for (xa, ya), (xb, yb), _label in edges:
            ax.plot([xa, xb], [ya, yb], color=EDGE_COLOUR, linewidth=1.6, zorder=1)
        nodes: list[Text] = []
        for case in series.cases:
            x, y = positions[case.ref]
            lines = [case.lab.id, case.ref.case]
            if case.ref in within:
                lines.append(f"+ {_count(within[case.ref], 'link')} within the case")
            nodes.append(
                ax.text(
                    x,
                    y,
                    "\n".join(lines),
                    ha="center",
                    va="center",
                    fontsize=8,
                    parse_math=False,  # case numbers are a partner's text, never mathtext
                    zorder=4,
                    bbox={"boxstyle": "round,pad=0.4", "facecolor": colours[case.lab.country], "edgecolor": "black", "linewidth": 0.8},
                )
            )
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        ax.set_axis_off()
        labs_of = {country: sorted(lab.id for lab in series.labs if lab.country == country) for country in series.countries}
        legend = ax.legend(
            handles=[
                Patch(facecolor=colours[country], edgecolor="black", label=f"{country}: {', '.join(labs_of[country])}")
                for country in series.countries
            ],
            title="country of the lab",
            loc="upper center",
            bbox_to_anchor=(0.5, -0.02),
            ncol=min(3, len(series.countries)),
            fontsize=8,
            title_fontsize=8,
            frameon=False,
        )
        for text in legend.get_texts():
            text.set_parse_math(False)
        border = "cross-border, " if series.cross_border else ""
        ax.set_title(
            f"Firearm series {series.id}: {_count(len(series.cases), 'case')}, {_count(len(series.links), 'confirmed link')} ({border}"
            f"{series.first[:10]} to {series.last[:10]})\n"
            "nodes: cases (lab, case number); edges: identifications confirmed by an examiner,\n"
            "labelled with log10 of the likelihood ratio and its ENFSI 2015 verbal category",
            fontsize=8,
        )
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        taken = [_box(text, renderer) for text in nodes]
        overlapping = sum(1 for a, b in itertools.combinations(taken, 2) if _overlap(a, b))
        overlapping += _place_edge_labels(ax, edges, taken)
        if overlapping == 0:
            break
        plt.close(fig)
        size = (size[0] * GROWTH, size[1] * GROWTH)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    data = buffer.getvalue()
    target = Path(path)
    write_atomic(target, data)
    # PNG: 8-byte signature, then the IHDR chunk (length, type) whose data open with width and height.
    return SeriesPlot(target, int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), overlapping)
