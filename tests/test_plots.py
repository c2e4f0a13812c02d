"""Figures fit for print: resolution, formats, legends, integer counts, fixed angle colours, no overlapping labels, shaded relief."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_DATA
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from ballistics import plots
from ballistics.calibration import default_calibration
from ballistics.compare import Comparison, compare
from ballistics.identifiers import Identifiers
from ballistics.method import DecisionParams
from ballistics.relief import shade
from ballistics.scan import Scan, load_scan
from ballistics.validate import PairResult, Validation
from cli import main


@pytest.fixture(scope="module")
def same_gun() -> tuple[Comparison, Scan, Scan]:
    """Two simulated shots of one pistol (known truth: same source)."""
    reference, questioned = load_scan(SAMPLE_DATA / "F01-01.x3p"), load_scan(SAMPLE_DATA / "F01-02.x3p")
    return compare(reference, questioned), reference, questioned


@pytest.fixture(scope="module")
def known_pairs() -> Validation:
    """The CMC counts of the packaged calibration's real reference pairs (Fadul knowns and Weller), as a validation."""
    pairs = default_calibration(None).pairs
    cmc = pairs.features[:, pairs.feature_names.index("cmc")]
    return Validation(
        [
            PairResult(f"a{k}", f"b{k}", bool(label), int(c), int(c), int(c), "", 0.0)
            for k, (label, c) in enumerate(zip(pairs.labels, cmc, strict=True))
        ],
        DecisionParams(),
    )


def texts(fig: Figure) -> list[Text]:
    """Every text a drawn figure shows: titles, axis labels, tick labels within the axes' limits, legends, scale bars, colour bars."""
    fig.canvas.draw()
    shown: list[Text] = [t for t in (fig._suptitle, *(f._suptitle for f in fig.subfigs)) if t is not None]
    for legend in (*fig.legends, *(legend for f in fig.subfigs for legend in f.legends)):
        shown.extend(legend.get_texts())
    for ax in fig.get_axes():
        shown.extend((ax.title, ax._left_title, ax._right_title, *ax.texts))
        shown.extend(t for artist in ax.artists for t in artist.findobj(Text))
        if ax.get_legend() is not None:
            shown.extend(ax.get_legend().get_texts())
        if not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            shown.append(axis.label)
            low, high = sorted(axis.get_view_interval())
            shown.extend(t for loc, t in zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=True) if low <= loc <= high)
    return [t for t in shown if t.get_visible() and t.get_text().strip()]


def legend_texts(fig: Figure) -> set[str]:
    legends = [*fig.legends, *(sub for f in fig.subfigs for sub in f.legends), *(ax.get_legend() for ax in fig.get_axes())]
    return {t.get_text() for legend in legends if legend is not None for t in legend.get_texts()}


def assert_no_overlap(fig: Figure) -> None:
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts(fig)]
    overlaps = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb) and ba.intersection(ba, bb).width > 1]
    assert overlaps == []


def assert_micrometres_spelt_with_the_micro_sign(fig: Figure) -> None:
    words = " ".join(t.get_text() for t in texts(fig))
    assert "µm" in words and not re.search(r"\bum\b", words)


def integer_ticks(values: np.ndarray) -> bool:
    return bool(np.allclose(values, np.round(values)))


def test_comparison_figure_names_the_case_and_has_every_legend_at_300_dpi(same_gun: tuple[Comparison, Scan, Scan], tmp_path: Path) -> None:
    comparison, reference, questioned = same_gun
    names = Identifiers("CS1", "Q7", "UK-2026-0117")
    fig = plots.draw_comparison(comparison, scans=((reference, "CS1"), (questioned, "Q7")), identifiers=names)
    assert fig._suptitle is not None and fig._suptitle.get_text().startswith("Case UK-2026-0117: reference CS1 and questioned Q7")
    legends = legend_texts(fig)
    assert any(t.startswith("congruent cell (") for t in legends) and any(t.startswith("cell not congruent (") for t in legends)
    assert {"congruent (original rule)", "not congruent", "tolerance ±125 µm around the cells' median"} <= legends
    assert {"identification at CMC ≥ 6", "elimination at CMC ≤ 2"} <= legends
    labels = {t.get_text() for t in texts(fig)}
    assert {"height less its plane (µm)", "cell's best angle less\nthe rotation found (°)"} <= labels
    assert len([t for t in labels if re.fullmatch(r"\d+ µm|\d+ mm", t)]) >= 1  # scale bars (4: two scans, two reliefs)
    assert_micrometres_spelt_with_the_micro_sign(fig)
    assert_no_overlap(fig)
    counts = next(ax for ax in fig.get_axes() if ax.get_xlabel().startswith("CMC count"))
    assert integer_ticks(counts.get_xticks())
    path = plots.comparison_figure(comparison, tmp_path / "cmc.png", identifiers=names)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def test_cell_angles_take_the_same_fixed_colour_range_in_every_figure(same_gun: tuple[Comparison, Scan, Scan]) -> None:
    other = compare(load_scan(SAMPLE_DATA / "F01-01.x3p"), load_scan(SAMPLE_DATA / "F03-01.x3p"))  # another pistol
    ranges = []
    for comparison in (same_gun[0], other):
        fig = plots.draw_comparison(comparison)
        (points,) = [c for ax in fig.get_axes() for c in ax.collections if isinstance(c, PathCollection)]
        ranges.append((points.norm.vmin, points.norm.vmax))
    assert ranges == [(-plots.ANGLE_RANGE_DEG, plots.ANGLE_RANGE_DEG)] * 2


def test_a_figure_named_svg_is_written_as_svg_and_other_extensions_are_refused(
    same_gun: tuple[Comparison, Scan, Scan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plots.comparison_figure(same_gun[0], tmp_path / "cmc.svg")
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text[:1000]
    assert plots.comparison_figure(same_gun[0], tmp_path / "again.svg").read_bytes() == path.read_bytes()  # no date: reproducible
    assert main(["compare", str(SAMPLE_DATA / "F01-01.x3p"), str(SAMPLE_DATA / "F01-02.x3p"), "--plot", str(tmp_path / "cmc.jpg")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'cmc.jpg'}: a figure is written as PNG (.png) or SVG (.svg), not '.jpg'\n"
    assert not (tmp_path / "cmc.jpg").exists()


def test_validation_histogram_counts_in_whole_cells_with_both_thresholds(known_pairs: Validation, tmp_path: Path) -> None:
    fig = plots.draw_validation(known_pairs, title="Fadul and Weller known cases")
    (ax,) = fig.get_axes()
    assert integer_ticks(ax.get_xticks()) and integer_ticks(ax.get_yticks())
    matches = sum(p.same_source for p in known_pairs.pairs)
    others = len(known_pairs.pairs) - matches
    assert matches == 380 and others == 4275
    expected = {f"known non-match (n={others})", f"known match (n={matches})", "identification at CMC ≥ 6", "elimination at CMC ≤ 2"}
    assert expected <= legend_texts(fig)
    assert ax.get_title().startswith("Fadul and Weller known cases: AUC 1.0000")
    assert_no_overlap(fig)
    with Image.open(plots.validation_figure(known_pairs, tmp_path / "v.png")) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def test_tippett_and_ece_plots_legend_every_line(tmp_path: Path) -> None:
    calibration = default_calibration(None)
    llrs, labels = calibration.held_out_log10_lr, calibration.pairs.labels
    tippett = plots.draw_tippett(llrs, labels, calibration.bounds_log10, title="Calibration:")
    assert tippett.get_axes()[0].get_title() == "Calibration: Tippett plot, LRs held out by firearm"
    legends = legend_texts(tippett)
    matches = int(labels.sum())
    assert f"same source (H1), n={matches}" in legends and f"different sources (H2), n={len(labels) - matches}" in legends
    assert "LR = 1 (log10 LR = 0)" in legends
    assert any(t.startswith("ELUB bounds") for t in legends)
    ece = plots.draw_ece(llrs, labels, title="default")
    assert {"LR = 1 always (uninformative)", "LRs held out by firearm", "after PAV (calibration loss removed)"} <= legend_texts(ece)
    for fig in (tippett, ece):
        assert_no_overlap(fig)
    assert plots.tippett_figure(llrs, labels, calibration.bounds_log10, tmp_path / "t.svg").read_text(encoding="utf-8").count("<svg") == 1


def test_shaded_relief_follows_the_lambertian_formula() -> None:
    spacing, slope = 1e-6, 0.2
    x = np.arange(50) * spacing
    plane = np.tile(slope * x, (40, 1))  # rising to the right
    plane[5, 5] = np.nan
    elevation = 30.0
    east = shade(plane, spacing, azimuth_deg=90, elevation_deg=elevation, exaggeration=1)
    west = shade(plane, spacing, azimuth_deg=270, elevation_deg=elevation, exaggeration=1)
    el = np.radians(elevation)
    norm = np.sqrt(1 + slope**2)
    assert np.isnan(east[5, 5])
    assert east[20, 20] == pytest.approx((-slope * np.cos(el) + np.sin(el)) / norm, abs=1e-6)  # faces away from the light: darker
    assert west[20, 20] == pytest.approx((slope * np.cos(el) + np.sin(el)) / norm, abs=1e-6)  # faces the light: brighter
    assert shade(np.zeros((8, 8)), spacing, elevation_deg=elevation)[4, 4] == pytest.approx(np.sin(el), abs=1e-6)


def test_the_overlap_check_sees_labels_that_collide() -> None:
    fig = Figure(figsize=(3, 2))  # no constrained layout: the left panel's title runs into the right one's
    left, right = fig.subplots(1, 2)
    left.set_title("a long title for a narrow panel")
    right.set_title("another long title")
    with pytest.raises(AssertionError):
        assert_no_overlap(fig)
