"""The report as PDF, printed by headless Chromium from the report's own HTML.

Chromium is the engine because the browser tests already need it and because it prints what a
court's browser shows (same layout engine, CSS paged media with ``@page`` size, margins and page
numbers); WeasyPrint would be a second layout engine with its own CSS subset to keep in step.
Chromium runs with a fresh profile, without network (every host name resolves to nothing, and
the report's Content-Security-Policy forbids loads anyway), and only on a file this software
wrote. As root (a CI container) its sandbox cannot start, so it runs without it there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ballistics.errors import ReportError
from ballistics.files import write_atomic

#: Names of the Chromium executable tried in turn (Debian ``chromium``, others ``chromium-browser``, Google's build).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Longest a print may take, seconds.
TIMEOUT_S = 180


def find_chromium() -> str | None:
    """The path of a Chromium executable on PATH (or in ``BALLISTICS_CHROMIUM``), or None."""
    named = os.environ.get("BALLISTICS_CHROMIUM")
    if named:
        return shutil.which(named)
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def chromium_command(chromium: str, profile: Path, *arguments: str) -> list[str]:
    """A headless Chromium command line with a fresh profile and no network."""
    command = [
        chromium,
        "--headless",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        *arguments,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(2, "--no-sandbox")
    return command


def print_pdf(html: Path, pdf: Path) -> Path:
    """Print ``html`` (a report file) to ``pdf`` on A4 (the report's ``@page`` rules), atomically.

    Raises :class:`ReportError` (exit 3) when Chromium is not installed or fails.
    """
    chromium = find_chromium()
    if chromium is None:
        raise ReportError(pdf, "cannot print the PDF: headless Chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="ballistics-pdf-") as folder:
        target = Path(folder) / "report.pdf"
        command = chromium_command(
            chromium, Path(folder) / "profile", "--no-pdf-header-footer", f"--print-to-pdf={target}", Path(html).resolve().as_uri()
        )
        try:
            done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(pdf, f"Chromium did not print the PDF within {TIMEOUT_S} s") from None
        except OSError as exc:
            raise ReportError(pdf, f"cannot run Chromium ({chromium}): {exc.strerror}") from None
        if done.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
            raise ReportError(pdf, f"Chromium failed to print the PDF (exit {done.returncode}): {last[:300]}")
        return write_atomic(pdf, target.read_bytes())
