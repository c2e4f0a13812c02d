"""The comparison view and the correlation list, opened in a real browser (headless Chromium), offline."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import changed_fraction, open_browser, pixels, save_shot, severe_messages
from conftest import SAMPLE_DATA

from ballistics.cmc import pearson_complete
from ballistics.compare import Comparison, compare
from ballistics.identifiers import Identifiers
from ballistics.relief import AZIMUTH_DEG, ELEVATION_DEG, EXAGGERATION, shade
from ballistics.scan import load_scan
from ballistics.view import CSP, HeightMap, view_page
from cli import main

#: Strings as a partner's record could carry them: they must reach the page as text.
HOSTILE = Identifiers(
    reference="CS1 <img src=x onerror=alert(1)>", questioned="Q7 </script><script>alert(2)</script>", case="UK-2026-0117 & 'co'"
)


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    """Two simulated shots of one pistol (known truth: same source, CMC well above 6)."""
    return compare(load_scan(SAMPLE_DATA / "F01-01.x3p"), load_scan(SAMPLE_DATA / "F01-02.x3p"))


@pytest.fixture(scope="module")
def page_file(comparison: Comparison, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("view") / "view.html"
    path.write_text(view_page(comparison, HOSTILE), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from open_browser()


def open_page(browser: Any, path: Path, root: str = "[data-pair-view]") -> Any:
    """Load a page, wait until its view has drawn, and return the view's element."""
    from selenium.webdriver.common.by import By

    browser.get(path.resolve().as_uri())
    element = browser.find_element(By.CSS_SELECTOR, root)
    wait_for(lambda: int(element.get_attribute("data-rendered") or 0) >= 1)
    return element


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the page did not get there in time")
        time.sleep(0.05)


def canvas_shot(view: Any) -> bytes:
    from selenium.webdriver.common.by import By

    return view.find_element(By.CSS_SELECTOR, "canvas.pv-canvas").screenshot_as_png


def redraws(view: Any) -> int:
    return int(view.get_attribute("data-rendered"))


def test_height_map_keeps_heights_to_half_a_quantisation_step_and_the_holes(comparison: Comparison) -> None:
    reference, _ = comparison.registered_surfaces()
    assert comparison.surfaces is not None
    heights = HeightMap.of(reference, comparison.surfaces[0].spacing_m)
    back = heights.values_um()
    assert np.array_equal(np.isnan(back), np.isnan(reference))
    step = (heights.high_um - heights.low_um) / 65534
    assert np.nanmax(np.abs(back - reference * 1e6)) <= step / 2 + 1e-9


def test_the_view_draws_the_surfaces_and_cells_the_comparison_measured(comparison: Comparison) -> None:
    reference, moved = comparison.registered_surfaces()
    assert pearson_complete(reference, moved) == pytest.approx(comparison.ccf, abs=1e-6)
    cells = comparison.cell_outlines()
    assert comparison.details is not None and cells.rule == "original"
    assert int(cells.congruent.sum()) == comparison.details.forward_rules.original.count == comparison.cmc_forward
    assert np.allclose(cells.reference[:, 2] - cells.reference[:, 0], cells.questioned[:, 2] - cells.questioned[:, 0])


def test_strings_from_records_are_text_in_the_page(page_file: Path) -> None:
    html = page_file.read_text(encoding="utf-8")
    assert "<img src=x" not in html and "</script><script>alert(2)" not in html
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html)
    assert policy is not None and unescape(policy[1]) == CSP
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_view_draws_offline_states_the_result_and_logs_no_error(browser: Any, page_file: Path, comparison: Comparison) -> None:
    view = open_page(browser, page_file)
    assert severe_messages(browser) == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched
    assert browser.execute_script("return document.images.length + document.querySelectorAll('iframe, object, embed').length") == 0
    assert browser.execute_script("return document.scripts.length") == 2  # the data and the view's own script, no injected one
    text = " ".join(view.text.split())
    heading = browser.execute_script("return document.querySelector('h1').textContent")
    assert HOSTILE.reference in heading and HOSTILE.questioned in heading and HOSTILE.case in heading
    for statement in (
        "decision identification (identification at CMC ≥ 6, elimination at CMC ≤ 2)",
        f"CMC {comparison.cmc} of {comparison.cells_compared} cells (original rule",
        f"SHA-256 reference {comparison.reference['sha256']}",
        f"SHA-256 questioned {comparison.questioned['sha256']}",
        f"light from {AZIMUTH_DEG:.0f}° (clockwise from the top), {ELEVATION_DEG:.0f}° above the surface",
        "congruent cell (",
        "Scale bar:",
    ):
        assert statement in text, statement
    shot = canvas_shot(view)
    save_shot(browser.get_screenshot_as_png(), "view-page.png")
    image = pixels(shot)
    assert image.std() > 20 and len(np.unique(image[..., 0])) > 100  # relief, not a blank canvas


def test_the_page_forbids_network_loads(browser: Any, page_file: Path) -> None:
    open_page(browser, page_file)
    outcome = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        let violation = null;
        document.addEventListener('securitypolicyviolation', (e) => { violation = e.violatedDirective; });
        fetch('http://example.org/leak').then(() => done('fetched'), () => setTimeout(() => done('blocked:' + violation), 50));
        """
    )
    assert outcome == "blocked:connect-src"
    severe_messages(browser)  # drain the log of the refusal


def test_browser_shading_is_the_relief_formula(browser: Any, page_file: Path, comparison: Comparison) -> None:
    open_page(browser, page_file)
    sample = browser.execute_script(
        """
        const view = document.querySelector('[data-pair-view]').pairView;
        const c = view.reference.canvas;
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let i = 0; i < c.width * c.height; i += 97) out.push(data[4 * i]);
        return [c.width, c.height, out];
        """
    )
    width, height, values = sample
    assert comparison.surfaces is not None
    reference, _ = comparison.registered_surfaces()
    heights = HeightMap.of(reference, comparison.surfaces[0].spacing_m)
    expected = shade(heights.values_um(), heights.spacing_um, AZIMUTH_DEG, ELEVATION_DEG, EXAGGERATION).ravel()[::97]
    measured = ~np.isnan(expected)
    assert (width, height) == (heights.width, heights.height)
    got = np.array(values, float)
    assert np.abs(got[measured] - np.round(expected[measured] * 255)).max() <= 1
    assert np.all(got[~measured] == 217)  # the unmeasured grey


def test_turning_the_light_changes_the_relief(browser: Any, page_file: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    view = open_page(browser, page_file)
    before, count = canvas_shot(view), redraws(view)
    slider = view.find_element(By.CSS_SELECTOR, "input.pv-azimuth")
    slider.send_keys(*[Keys.ARROW_LEFT] * 18)  # 5 degrees a step: the light turns from 315 to 225 degrees
    wait_for(lambda: redraws(view) >= count + 18)
    after = canvas_shot(view)
    save_shot(after, "view-light-225.png")
    assert slider.get_attribute("value") == "225"
    assert "light from 225°" in view.text
    assert changed_fraction(before, after) > 0.3
    assert severe_messages(browser) == []


def test_dragging_the_split_line_changes_what_each_side_shows(browser: Any, page_file: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    view = open_page(browser, page_file)
    view.find_element(By.CSS_SELECTOR, "input.pv-mode[value=overlay]").click()
    split = view.find_element(By.CSS_SELECTOR, "input.pv-split")
    wait_for(lambda: split.is_displayed())
    canvas = view.find_element(By.CSS_SELECTOR, "canvas.pv-canvas")
    before, count = canvas_shot(view), redraws(view)
    width = canvas.size["width"]
    # Selenium measures the offset from the element's centre, where the split line starts (50 %)
    ActionChains(browser).move_to_element_with_offset(canvas, 0, 0).click_and_hold().move_by_offset(-width // 4, 0).release().perform()
    wait_for(lambda: redraws(view) > count)
    after = canvas_shot(view)
    save_shot(before, "view-overlay-split-50.png")
    save_shot(after, "view-overlay-split-25.png")
    assert abs(int(split.get_attribute("value")) - 25) <= 2
    assert changed_fraction(before, after) > 0.05
    assert severe_messages(browser) == []


def test_the_cells_toggle_on_and_off(browser: Any, page_file: Path) -> None:
    from selenium.webdriver.common.by import By

    view = open_page(browser, page_file)
    toggle = view.find_element(By.CSS_SELECTOR, "input.pv-cells")
    with_cells = canvas_shot(view)
    toggle.click()
    without = canvas_shot(view)
    save_shot(without, "view-without-cells.png")
    assert not toggle.is_selected()
    assert changed_fraction(with_cells, without) > 0.01
    toggle.click()
    assert changed_fraction(with_cells, canvas_shot(view)) == 0.0


def test_zoom_keeps_the_scale_bar_true(browser: Any, page_file: Path, comparison: Comparison) -> None:
    from selenium.webdriver.common.by import By

    view = open_page(browser, page_file)
    assert comparison.surfaces is not None
    spacing_um = comparison.surfaces[0].spacing_m * 1e6
    reference, _ = comparison.registered_surfaces()
    rows, columns = reference.shape
    canvas = view.find_element(By.CSS_SELECTOR, "canvas.pv-canvas")
    readout = view.find_element(By.CSS_SELECTOR, ".pv-scale-value")

    def bar() -> tuple[float, float, float]:
        match = re.fullmatch(r"(\d+) (µm|mm) = ([\d.]+) screen pixels \(zoom \u00d7[\d.]+\)", readout.text)
        assert match, readout.text
        length_um = float(match[1]) * (1000 if match[2] == "mm" else 1)
        return length_um, float(match[3]), float(readout.get_attribute("data-um-per-pixel"))

    # side by side: two panels 12 px apart; the surface fits its panel's width or the canvas's height
    panel = (int(canvas.get_attribute("width")) - 12) // 2
    fit = min(panel / columns, int(canvas.get_attribute("height")) / rows)
    length, screen, per_pixel = bar()
    assert per_pixel == pytest.approx(spacing_um / fit, rel=1e-4)
    assert length / screen == pytest.approx(per_pixel, rel=1e-3)
    before = canvas_shot(view)
    view.find_element(By.CSS_SELECTOR, "button.pv-zoom-in").click()
    view.find_element(By.CSS_SELECTOR, "button.pv-zoom-in").click()
    zoomed_length, zoomed_screen, zoomed_per_pixel = bar()
    assert zoomed_per_pixel == pytest.approx(per_pixel / 2.25, rel=1e-4)
    assert zoomed_length / zoomed_screen == pytest.approx(zoomed_per_pixel, rel=1e-3)
    assert zoomed_screen <= panel / 4 and zoomed_length < length
    after = canvas_shot(view)
    save_shot(after, "view-zoom-2.25.png")
    assert changed_fraction(before, after) > 0.3
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    count = redraws(view)
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas, canvas.size["width"] // 4, 0), 0, -100).perform()
    wait_for(lambda: redraws(view) > count)
    wheeled_length, wheeled_screen, wheeled_per_pixel = bar()
    assert wheeled_per_pixel == pytest.approx(zoomed_per_pixel / 1.25, rel=1e-4)
    assert wheeled_length / wheeled_screen == pytest.approx(wheeled_per_pixel, rel=1e-3)


def test_view_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "view.html"
    a, b = SAMPLE_DATA / "F01-01.x3p", SAMPLE_DATA / "F03-01.x3p"
    assert main(["view", str(a), str(b), "-o", str(out), "--case", "UK-2026-0117"]) == 0
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "Case UK-2026-0117: reference F01-01.x3p and questioned F03-01.x3p: CMC 0, elimination",
        f"wrote {out}",
    ]
    html = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "decision</dt><dd>elimination" in html
    assert main(["view", str(a), str(tmp_path / "missing.x3p"), "-o", str(tmp_path / "no.html")]) == 3
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing.x3p'}: ")
    assert not (tmp_path / "no.html").exists()


def test_search_report_lists_thumbnails_that_open_their_pair_views(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    for name, exhibit in (("F01-02", "CS1"), ("F02-01", "CS2"), ("F03-01", "CS3")):
        assert main(["db", "add", str(SAMPLE_DATA / f"{name}.x3p"), "--case", "UK-2026-0117", "--exhibit", exhibit]) == 0
    report = tmp_path / "list.html"
    assert main(["search", str(SAMPLE_DATA / "F01-01.x3p"), "--top", "3", "--workers", "1", "--report", str(report)]) == 0
    assert f"wrote {report}" in capsys.readouterr().err
    browser.get(report.resolve().as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "table.sr-list tbody tr")
    assert rows[0].find_elements(By.TAG_NAME, "td")[2].text == "UK-2026-0117/CS1"  # the same pistol first
    assert "identification" in rows[0].text and "elimination" in rows[2].text
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "img.sr-thumb")
    assert len(thumbnails) == 3
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", t) for t in thumbnails)
    assert all(t.get_attribute("src").startswith("data:image/png;base64,") for t in thumbnails)
    assert browser.execute_script("return performance.getEntriesByType('resource').filter(e => !e.name.startsWith('data:')).length") == 0
    save_shot(browser.get_screenshot_as_png(), "search-list.png")
    pair = browser.find_element(By.ID, "pair-1")
    assert not pair.is_displayed() and pair.get_attribute("data-rendered") is None  # drawn only when opened
    browser.find_elements(By.CSS_SELECTOR, "button.sr-open")[0].click()
    wait_for(lambda: int(pair.get_attribute("data-rendered") or 0) >= 1)
    assert pair.is_displayed() and "decision identification" in " ".join(pair.text.split())
    assert pixels(canvas_shot(pair)).std() > 20
    save_shot(browser.get_screenshot_as_png(), "search-pair-1.png")
    assert severe_messages(browser) == []
