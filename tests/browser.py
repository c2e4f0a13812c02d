"""Headless Chromium driven by selenium, kept off every network, for tests of pages in a real browser.

The Debian packages ``chromium`` and ``chromium-driver`` provide the browser and its driver
(``.ci/run`` installs them when absent); without them, or without selenium, the tests that need
a browser skip, saying why.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")


def _which(names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


def open_browser(width: int = 1300, height: int = 1400) -> Iterator[Any]:
    """A headless Chromium (skips the test, with the reason, when it cannot run), closed afterwards."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    binary, driver = _which(CHROMIUM), _which(CHROMEDRIVER)
    if binary is None or driver is None:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        # no network: every host name fails to resolve and every connection goes to a closed port
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def severe_messages(browser: Any) -> list[str]:
    """The console's errors since the last call (the browser log is drained as it is read)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def pixels(png: bytes) -> np.ndarray:
    """A screenshot as an RGB array."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def changed_fraction(before: bytes, after: bytes) -> float:
    """The share of pixels that differ between two screenshots of the same size."""
    a, b = pixels(before), pixels(after)
    assert a.shape == b.shape
    return float((np.abs(a - b).sum(axis=2) > 0).mean())


def save_shot(png: bytes, name: str) -> None:
    """Keep a screenshot under $BALLISTICS_SHOTS (when set), to look at by eye."""
    import os

    folder = os.environ.get("BALLISTICS_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(png)
