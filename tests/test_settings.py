"""Where a home's collection lives: settings.toml, the environment and options, and two workstations sharing one collection."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SAMPLE_DATA, Backend

from ballistics import settings
from ballistics.errors import StoreError
from ballistics.settings import HomeSettings, database_url, read_settings, scan_store
from ballistics.store import Store
from cli import main


def test_each_setting_comes_from_the_option_the_environment_the_file_then_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.DB_URL_ENV, raising=False)
    monkeypatch.delenv(settings.SCAN_STORE_ENV, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    assert read_settings(home) == HomeSettings()
    assert database_url(home) == f"sqlite:///{home / 'ballistics.db'}" and scan_store(home) == home
    (home / "settings.toml").write_text('database_url = "postgresql+psycopg://lab-db/ballistics"\nscan_store = "../shared-scans"\n')
    assert database_url(home) == "postgresql+psycopg://lab-db/ballistics"
    assert scan_store(home) == home / "../shared-scans"  # relative to the home
    monkeypatch.setenv(settings.DB_URL_ENV, "sqlite:////srv/env.db")
    monkeypatch.setenv(settings.SCAN_STORE_ENV, "/srv/env-scans")
    assert database_url(home) == "sqlite:////srv/env.db" and scan_store(home) == Path("/srv/env-scans")
    assert database_url(home, "sqlite:////srv/option.db") == "sqlite:////srv/option.db"
    assert scan_store(home, "/srv/option-scans") == Path("/srv/option-scans")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('database_ur = "sqlite://"\n', "unknown setting 'database_ur' (known: database_url, scan_store)"),
        ("scan_store = 7\n", "scan_store must be a non-empty string"),
        ('database_url = "\n', "not valid TOML"),
    ],
)
def test_a_wrong_settings_file_is_a_one_line_error(home: Path, text: str, reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir()
    (home / "settings.toml").write_text(text)
    with pytest.raises(StoreError, match=re.escape(reason)):
        read_settings(home)
    assert main(["db", "list"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {home / 'settings.toml'}: {reason}") and err.count("\n") == 1


def test_a_missing_scan_store_is_refused_not_created(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir()
    (home / "settings.toml").write_text(f'scan_store = "{tmp_path / "unmounted"}"\n')
    assert main(["db", "add", str(SAMPLE_DATA / "F01-01.x3p"), "--case", "C1", "--exhibit", "K1"]) == 3
    assert "the scan store is not a directory (is the shared file system mounted?)" in capsys.readouterr().err
    assert not (tmp_path / "unmounted").exists()


@pytest.mark.usefixtures("backend")
def test_two_workstations_share_one_collection_through_their_settings(
    tmp_path: Path, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    database, shared = tmp_path / "lab-database", tmp_path / "shared-scans"
    database.mkdir()
    shared.mkdir()
    first, second = tmp_path / "workstation-1", tmp_path / "workstation-2"
    for home in (first, second):
        home.mkdir()
        (home / "settings.toml").write_text(f'database_url = "{backend.url(database)}"\nscan_store = "{shared}"\n')
    assert main(["--home", str(first), "db", "add", str(SAMPLE_DATA / "F01-01.x3p"), "--case", "C1", "--exhibit", "K1"]) == 0
    capsys.readouterr()
    assert main(["--home", str(second), "db", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)["exhibits"]
    stored = Path(listed["path"])
    assert (listed["case"], listed["exhibit"]) == ("C1", "K1") and stored.parent.parent == shared / "scans"
    assert stored.read_bytes() == (SAMPLE_DATA / "F01-01.x3p").read_bytes()
    store = Store.open(second)
    assert store.files == shared and store.cache_file(listed["sha256"]).is_file()  # the prepared surface is shared too
    store.close()
    assert not (first / "scans").exists() and not (second / "scans").exists() and not (first / "ballistics.db").exists()
    assert main(["--home", str(second), "db", "remove", "C1/K1"]) == 0
    assert not stored.exists()
