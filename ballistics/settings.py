"""Where a lab home's collection lives: the database URL and the scan store.

A workstation on its own keeps both in its home (SQLite ``<home>/ballistics.db``, scan files
under ``<home>/scans`` and ``<home>/cache``). Several workstations of one lab share them
instead: one PostgreSQL database and one scan store on a shared file system, named in each
home's ``settings.toml`` (docs/deployment.md)::

    database_url = "postgresql+psycopg://examiner@db.lab.example/ballistics"
    scan_store = "/srv/ballistics"

Each setting is resolved in order: the command-line option (``--db-url``), the environment
(``BALLISTICS_DB_URL``, ``BALLISTICS_SCAN_STORE``), ``settings.toml``, then the home itself.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ballistics.errors import StoreError

SETTINGS_FILE = "settings.toml"
DB_URL_ENV = "BALLISTICS_DB_URL"
SCAN_STORE_ENV = "BALLISTICS_SCAN_STORE"
DB_FILE = "ballistics.db"


@dataclass(frozen=True)
class HomeSettings:
    """What ``<home>/settings.toml`` says; ``None`` where it says nothing."""

    database_url: str | None = None
    scan_store: Path | None = None


def read_settings(home: Path) -> HomeSettings:
    """Parse ``<home>/settings.toml`` (absent: no settings); an unknown key or a wrong type is an error."""
    path = Path(home) / SETTINGS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return HomeSettings()
    except OSError as exc:
        raise StoreError(path, f"cannot read the settings: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StoreError(path, f"not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"database_url", "scan_store"})
    if unknown:
        raise StoreError(path, f"unknown setting {unknown[0]!r} (known: database_url, scan_store)")
    for key, value in doc.items():
        if not isinstance(value, str) or not value:
            raise StoreError(path, f"{key} must be a non-empty string")
    scan_store = doc.get("scan_store")
    return HomeSettings(doc.get("database_url"), Path(scan_store).expanduser() if scan_store else None)


def database_url(home: Path, url: str | None = None) -> str:
    """The option, else ``BALLISTICS_DB_URL``, else ``settings.toml``, else :func:`default_database_url`."""
    return url or os.environ.get(DB_URL_ENV) or read_settings(home).database_url or default_database_url(home)


def default_database_url(home: Path) -> str:
    """A home's own database: SQLite, ``<home>/ballistics.db``."""
    return f"sqlite:///{Path(home) / DB_FILE}"


def scan_store(home: Path, path: str | os.PathLike[str] | None = None) -> Path:
    """The root of the scan files: the argument, else ``BALLISTICS_SCAN_STORE``, else ``settings.toml``, else the home.

    A relative ``scan_store`` in ``settings.toml`` is relative to the home.
    """
    chosen = path or os.environ.get(SCAN_STORE_ENV) or read_settings(home).scan_store
    return Path(home) / Path(chosen).expanduser() if chosen else Path(home)
