"""Shared fixtures: where the real scans are, and a fresh lab home per test."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The real scans live beside the repository (``../shared``); CI has them, a fresh clone may not.
SHARED = REPO.parent / "shared"
REAL_SCANS = SHARED / "real_scans"
FADUL = REAL_SCANS / "cartridgeCaseScans" / "fadulProcessed"
WELLER = REAL_SCANS / "cartridgeCaseScans" / "wellerProcessed"
RAW_FADUL = REAL_SCANS / "cmcR" / "converted_x3p"
SAMPLE_DATA = REPO / "sample_data"


def require_real_scans() -> Path:
    """Skip the calling test, with the reason, when ../shared/real_scans is absent."""
    if not FADUL.is_dir():
        pytest.skip(f"real scans not available at {REAL_SCANS} (../shared is absent in this clone)")
    return REAL_SCANS


@pytest.fixture
def real_scans() -> Path:
    return require_real_scans()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty lab home, exported as BALLISTICS_HOME, for every test.

    Autouse so that no test (nor a CLI run inside one) ever writes the audit log, keys or
    database of the real user's default home.
    """
    path = tmp_path / "home"
    monkeypatch.setenv("BALLISTICS_HOME", str(path))
    return path
