"""The report as one self-contained HTML file (Jinja2, autoescaped), printable on A4.

Every string of a record is data: the template engine escapes everything it is given (a case id
``<script>`` prints as text). Style and figures are inside the file (figures as ``data:`` URIs),
and a Content-Security-Policy forbids the page to load anything from anywhere, so the file reads
the same offline, in a court's browser, years later. A further section (such as an interactive
comparison view, :func:`comparison_view_section`) is inserted with :class:`ReportSection`; inline
scripts are allowed only when a section needs them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ballistics.calibration import DIFFERENT_SOURCE, SAME_SOURCE
from ballistics.likelihood_ratio import LEVEL, lr_text
from ballistics.report import SIDES, Report

#: Loads nothing: images and styles are inline; scripts only when a section asks for them.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {script}; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class ReportSection:
    """A section inserted after the figures: trusted HTML made by this software (never a record's text unescaped)."""

    id: str
    title: str
    body: Markup
    #: The body carries inline scripts (the page's policy then allows inline scripts, and only those).
    scripts: bool = False


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("ballistics", "templates"), autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
    )


def flatten(parameters: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested parameters as ``(dotted name, value)`` rows, in the record's order."""
    rows: list[tuple[str, str]] = []
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += flatten(value, f"{name}.")
        elif isinstance(value, list | tuple):
            rows.append((name, ", ".join(str(v) for v in value)))
        else:
            rows.append((name, str(value)))
    return rows


def _halves(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    middle = (len(rows) + 1) // 2
    return rows[:middle], rows[middle:]


def _number(value: Any, digits: int) -> str:
    return "not available" if value is None else f"{float(value):.{digits}f}"


def _likelihood_ratio(block: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if block is None:
        return None
    low, high = block["interval_log10"]
    bound_low, bound_high = block["bounds_log10"]
    log10_lr = float(block["log10_lr"])
    favoured, other = ("H1", "H2") if log10_lr >= 0 else ("H2", "H1")
    return {
        "value": lr_text(log10_lr),
        "sentence": f"the findings are {lr_text(abs(log10_lr))} times as probable if {favoured} is true as if {other} is true",
        "log10": f"{block['log10_lr']:+.2f}",
        "interval": f"{lr_text(low)} to {lr_text(high)} (log10 {low:+.2f} to {high:+.2f})",
        "level": f"{block.get('interval', {}).get('level', LEVEL):.0%}",
        "interval_method": block.get("interval", {}).get("method", "bootstrap over reference firearms"),
        "bounds": f"{lr_text(bound_low)} to {lr_text(bound_high)} (log10 {bound_low:+.2f} to {bound_high:+.2f})",
        "at_bound": block["at_bound"],
        "verbal": block["verbal"],
        "population": block["relevant_population"],
        "calibration": block["calibration"],
        "score": f"{block['score'].get('name', '')} score: " + ", ".join(f"{k} = {v}" for k, v in block["score"].items() if k != "name"),
        "warnings": block.get("warnings", []),
    }


def _counts(report: Report) -> list[dict[str, str]]:
    """Rows of the CMC table: both rules, both directions and combined (recomputed values where the record has none)."""
    scores = report.record["scores"]
    rule = report.record["comparison"]["method"]["parameters"].get("decision", {}).get("rule", "original")
    again = report.recomputation.counts if report.recomputation is not None else None
    rows = []
    for name, label, combined in (("original", "original rule (Song 2013)", "cmc_original"), ("high", "High CMC (Tong 2015)", "cmc_high")):
        recorded = {"forward": scores["cmc_forward"], "backward": scores["cmc_backward"]} if name == rule else {}
        cells = {}
        for direction in ("forward", "backward"):
            value = recorded.get(direction, again[name][direction] if again is not None else None)
            cells[direction] = "not recorded" if value is None else str(value)
        total = scores.get(combined, scores["cmc"] if name == rule else None)
        rows.append(
            {"rule": label + (" — deciding" if name == rule else ""), **cells, "combined": "not recorded" if total is None else str(total)}
        )
    return rows


def _conclusion(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    mine = record.get("examiner_conclusion") or {}
    rows = []
    if "afte_category" in mine:
        rows.append(("AFTE range of conclusions", mine["afte_category"]))
    if "verbal" in mine:
        verbal = mine["verbal"]
        rows.append(("Verbal scale", f"{verbal['category']} support for {verbal['supports']} ({verbal['scale']})"))
    if "remarks" in mine:
        rows.append(("Remarks", mine["remarks"]))
    return rows


def context(report: Report, sections: Sequence[ReportSection] = ()) -> dict[str, Any]:
    """What the template reads, formatted (every value a plain string or number, escaped by the template)."""
    record = report.record
    scores = record["scores"]
    statement = record.get("likelihood_ratio")
    propositions = statement["propositions"] if statement else {"same_source": SAME_SOURCE, "different_source": DIFFERENT_SOURCE}
    calibration = report.calibration
    metrics = calibration.metrics if calibration is not None else None
    return {
        "csp": CSP.format(script="'unsafe-inline'" if any(s.scripts for s in sections) else "'none'"),
        "r": record,
        "report": report,
        "sides": SIDES,
        "traits": sorted((record.get("class_characteristics") or {}).items()),
        "propositions": propositions,
        "parameters": _halves(flatten(record["comparison"]["method"]["parameters"])),
        "counts": _counts(report),
        "registration": {
            "rotation": f"{float(scores['rotation_deg']):.1f}°",
            "translation": f"{float(scores['translation_um'][0]):.1f} µm, {float(scores['translation_um'][1]):.1f} µm",
            "ccf": _number(scores.get("ccf"), 3),
            "firing_pin": _number(scores.get("firing_pin"), 3),
            "cells": str(scores["cells_compared"]),
        },
        "lr": _likelihood_ratio(statement),
        "calibration": calibration,
        "metrics": metrics,
        "conclusion": _conclusion(record),
        "figures": [{"figure": f, "uri": "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")} for f in report.figures],
        "sections": sections,
    }


def comparison_view_section(report: Report) -> ReportSection | None:
    """The interactive comparison view (:func:`ballistics.view.pair_view`) of the comparison made again, or None without it.

    Without the scans there is no surface to show; the report's figures section already says why.
    """
    if report.recomputation is None:
        return None
    from ballistics.identifiers import Identifiers
    from ballistics.view import pair_view, style

    record = report.record
    labels = Identifiers(record["exhibits"]["reference"], record["exhibits"]["questioned"], record["case_id"])
    body = Markup("<style>") + style() + Markup("</style>\n") + pair_view(report.recomputation.comparison, labels)
    return ReportSection("comparison-view", "8. The comparison in the browser", body, scripts=True)


def render_report(report: Report, sections: Sequence[ReportSection] = ()) -> bytes:
    """The report's HTML (UTF-8)."""
    return _environment().get_template("report.html.j2").render(context(report, sections)).encode("utf-8")
