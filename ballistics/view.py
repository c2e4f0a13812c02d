"""The comparison in the browser: a self-contained pair view, and the page that holds it.

:func:`pair_view` turns a :class:`~ballistics.compare.Comparison` (made with its details and
prepared surfaces) into an HTML fragment an examiner opens offline: the reference and the
questioned case registered onto it, side by side or overlaid with a draggable split line, in
shaded relief under a light whose azimuth and elevation the examiner turns, the congruent and
other cells toggled on and off, and zoom with a scale bar that stays true. The fragment holds
its markup, inline CSS and inline JavaScript (``templates/pair_view.js``) and both surfaces as
quantised heights (:class:`HeightMap`), so the browser computes the shading itself
(:mod:`ballistics.relief`'s formula) and nothing is fetched. :func:`page` wraps fragments as a
whole HTML document whose Content-Security-Policy forbids every network load.

Every string that comes from a record, a partner or a file name is data: the templates are
rendered by Jinja2 with autoescaping, and the JSON embedded for the script escapes ``<``, ``>``,
``&`` and ``'``.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

import cv2
import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ballistics import SOFTWARE_NAME, __version__
from ballistics.compare import CellOutlines, Comparison
from ballistics.identifiers import Identifiers
from ballistics.registration import block_mean
from ballistics.relief import AZIMUTH_DEG, ELEVATION_DEG, EXAGGERATION

#: The page's Content-Security-Policy: inline styles and scripts, images from data: URIs, and no
#: network load of any kind (no fetch, no image, font, frame or form target outside the file).
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
#: Quantisation levels of an embedded height map (0 marks an unmeasured point).
LEVELS = 65535


@dataclass(frozen=True)
class HeightMap:
    """A surface as the browser receives it: heights quantised to 16 bits, little-endian, base64.

    A stored value ``q`` is unmeasured when 0, else the height ``low_um + (q - 1) (high_um -
    low_um) / 65534`` micrometres; points are ``spacing_um`` apart in x and y.
    """

    width: int
    height: int
    spacing_um: float
    low_um: float
    high_um: float
    data: str

    @classmethod
    def of(cls, surface_m: np.ndarray, spacing_m: float) -> HeightMap:
        heights = np.asarray(surface_m, np.float64) * 1e6
        valid = np.isfinite(heights)
        low, high = (float(heights[valid].min()), float(heights[valid].max())) if valid.any() else (0.0, 1.0)
        high = high if high > low else low + 1e-3
        quantised = np.zeros(heights.shape, "<u2")
        quantised[valid] = 1 + np.round((heights[valid] - low) / (high - low) * (LEVELS - 1)).astype(np.uint32)
        return cls(heights.shape[1], heights.shape[0], spacing_m * 1e6, low, high, base64.b64encode(quantised.tobytes()).decode("ascii"))

    def values_um(self) -> np.ndarray:
        """The heights back, micrometres, NaN where unmeasured (within half a quantisation step)."""
        q = np.frombuffer(base64.b64decode(self.data), "<u2").reshape(self.height, self.width).astype(np.float64)
        return np.where(q == 0, np.nan, self.low_um + (q - 1) * (self.high_um - self.low_um) / (LEVELS - 1))


@cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("ballistics", "templates"), autoescape=select_autoescape(("html",)), keep_trailing_newline=True)


@cache
def asset(name: str) -> Markup:
    """A packaged script or style sheet (trusted text of this software), to inline as it is."""
    return Markup(resources.files("ballistics").joinpath("templates", name).read_text(encoding="utf-8"))


def _cells(outlines: CellOutlines, factor: int) -> list[dict[str, Any]]:
    """Each cell's box on the reference and where it registered on the questioned surface (view pixels), congruent or not."""
    return [
        {
            "reference": [round(float(v) / factor, 2) for v in reference],
            "questioned": [round(float(v) / factor, 2) for v in questioned],
            "congruent": bool(congruent),
        }
        for reference, questioned, congruent in zip(outlines.reference, outlines.questioned, outlines.congruent, strict=True)
    ]


def _tenths(value: float) -> str:
    """``value`` to one decimal, never "-0.0"."""
    return f"{round(value, 1) + 0.0:.1f}"


def _facts(comparison: Comparison, labels: Identifiers) -> list[tuple[str, str]]:
    decision = comparison.method["decision"]
    facts = [("case", labels.case)] if labels.case else []
    return [
        *facts,
        ("reference", labels.reference),
        ("questioned", labels.questioned),
        ("decision", f"{comparison.decision} (identification at CMC ≥ {decision['identification_cmc']}, "
                     f"elimination at CMC ≤ {decision['elimination_cmc']})"),
        ("CMC", f"{comparison.cmc} of {comparison.cells_compared} cells ({decision['rule']} rule; original {comparison.cmc_original}, "
                f"High CMC {comparison.cmc_high}; forward {comparison.cmc_forward}, backward {comparison.cmc_backward})"),
        ("registration", f"questioned rotated {_tenths(comparison.rotation_deg)}°, shifted {_tenths(comparison.translation_um[0])} µm, "
                         f"{_tenths(comparison.translation_um[1])} µm"),
        ("correlation of the registered surfaces", "n/a" if comparison.ccf is None else f"{comparison.ccf:.3f}"),
        ("SHA-256 reference", str(comparison.reference.get("sha256"))),
        ("SHA-256 questioned", str(comparison.questioned.get("sha256"))),
        ("software", f"{comparison.software['name']} {comparison.software['version']}"),
        *(("warning", warning) for warning in comparison.warnings),
    ]  # fmt: skip


def pair_view(
    comparison: Comparison, labels: Identifiers | None = None, *, view_id: str = "pair-view", max_side: int | None = None
) -> Markup:
    """The comparison view as a self-contained HTML fragment (markup, inline CSS and JavaScript, heights as data).

    Parameters
    ----------
    comparison : Comparison
        A comparison made with its details and prepared surfaces (:func:`ballistics.compare.compare`).
    labels : Identifiers, optional
        The case and exhibits named in the view (default: the scans' file names).
    view_id : str
        The fragment's element id, unique in its page (several views may share one page).
    max_side : int, optional
        Block-average both surfaces so that neither side exceeds this many points (a lighter
        page for lists of many views); the scale bar follows the coarser spacing.

    Returns
    -------
    markupsafe.Markup
        A ``<section>`` with a ``<style>``-free body: put :func:`style` once in the page's head
        (:func:`page` does).
    """
    names = labels or Identifiers.from_comparison(comparison)
    reference, questioned = comparison.registered_surfaces()
    outlines = comparison.cell_outlines()
    assert comparison.surfaces is not None
    spacing = comparison.surfaces[0].spacing_m
    factor = 1 if max_side is None else max(1, -(-max(reference.shape) // max_side))
    if factor > 1:
        reference, questioned = block_mean(reference, factor), block_mean(questioned, factor)
    light = {"azimuth_deg": AZIMUTH_DEG, "elevation_deg": ELEVATION_DEG, "exaggeration": EXAGGERATION}
    data = {
        "reference": asdict(HeightMap.of(reference, spacing * factor)),
        "questioned": asdict(HeightMap.of(questioned, spacing * factor)),
        "cells": _cells(outlines, factor),
        "light": light,
    }
    return Markup(
        environment()
        .get_template("pair_view.html")
        .render(
            view_id=view_id,
            heading=names.title(),
            facts=_facts(comparison, names),
            light=light,
            congruent=int(outlines.congruent.sum()),
            other=int((~outlines.congruent).sum()),
            rule=outlines.rule,
            data=data,
            script=asset("pair_view.js"),
        )
    )


def style() -> Markup:
    """The pair view's style sheet, for the page's ``<style>``."""
    return asset("pair_view.css")


def page(title: str, body: Markup, extra_style: Markup = Markup("")) -> str:
    """A whole HTML document around ``body`` (fragments), with :data:`CSP`; ``title`` is escaped."""
    return (
        environment()
        .get_template("page.html")
        .render(title=title, body=body, csp=CSP, style=style() + extra_style, generator=f"{SOFTWARE_NAME} {__version__}")
    )


def view_page(comparison: Comparison, labels: Identifiers | None = None) -> str:
    """``ballistics view``: one pair view as a whole page."""
    names = labels or Identifiers.from_comparison(comparison)
    return page(f"Comparison view: {names.title()}", pair_view(comparison, names))


def png_data_uri(brightness: np.ndarray) -> str:
    """A grey PNG (0..1 brightness, NaN drawn in the unmeasured grey) as a ``data:`` URI."""
    grey = np.where(np.isfinite(brightness), np.clip(brightness, 0, 1) * 255, 222).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", grey)
    if not ok:
        raise ValueError("the picture could not be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
