"""Shared fixtures: where the real scans are, a fresh lab home per test, and the database backends.

A module that lists ``pytestmark = pytest.mark.usefixtures("backend")`` runs every test twice:
once on SQLite in each home (the default), once on the PostgreSQL server named by
``BALLISTICS_TEST_POSTGRES_URL`` (``make test`` and ``.ci/run`` set it) where every lab home
gets a schema of its own, dropped when the test (or the module fixture) that made it ends.
Without the variable the PostgreSQL runs are skipped, saying why; with it and no server
answering, they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from ballistics import settings

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


# --- database backends ---------------------------------------------------------------------------

POSTGRES_URL_ENV = "BALLISTICS_TEST_POSTGRES_URL"


class Backend:
    """Where the collections of a test run live: SQLite in each home, or a PostgreSQL schema per home."""

    def __init__(self, name: str, server: sa.Engine | None = None) -> None:
        self.name = name
        self.server = server
        self._schemas: dict[str, str] = {}  # home -> schema, in order of creation
        self._sqlite_url = settings.default_database_url

    def url(self, home: Path) -> str:
        """The database URL of the collection of ``home`` (``settings.default_database_url`` while this backend is active)."""
        if self.server is None:
            return self._sqlite_url(home)
        key = str(Path(home).resolve())
        if key not in self._schemas:
            schema = f"bt_{secrets.token_hex(6)}"
            with self.server.begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            self._schemas[key] = schema
        schema = self._schemas[key]
        url = self.server.url.update_query_dict({"options": f"-csearch_path={schema}", "application_name": schema})
        return url.render_as_string(hide_password=False)

    def env(self, home: Path) -> dict[str, str]:
        """Environment for a subprocess working on ``home``'s collection."""
        return {} if self.server is None else {settings.DB_URL_ENV: self.url(home)}

    def made(self) -> int:
        return len(self._schemas)

    def drop_since(self, mark: int) -> None:
        """Drop the schemas made after ``mark`` (ending the sessions still in them)."""
        if self.server is None:
            return
        for key in list(self._schemas)[mark:]:
            schema = self._schemas.pop(key)
            with self.server.begin() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :s"), {"s": schema})
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[sa.Engine]:
    """The PostgreSQL server of BALLISTICS_TEST_POSTGRES_URL: skipped when unset, a failure when unreachable."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set (make test and .ci/run set it to the local PostgreSQL server)")
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        pytest.fail(f"{POSTGRES_URL_ENV}={url}: the PostgreSQL server cannot be reached: {str(exc).splitlines()[0]}", pytrace=False)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The module's tests on SQLite, then on PostgreSQL: each home's default database is a schema of the server."""
    if request.param == "sqlite":
        yield Backend("sqlite")
        return
    chosen = Backend("postgresql", request.getfixturevalue("postgres_server"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "default_database_url", chosen.url)
        yield chosen
    chosen.drop_since(0)  # what module fixtures made


@pytest.fixture
def postgres(postgres_server: sa.Engine) -> Iterator[Backend]:
    """PostgreSQL alone, for what only a server shows (several processes writing at once); schemas dropped after."""
    chosen = Backend("postgresql", postgres_server)
    yield chosen
    chosen.drop_since(0)


@pytest.fixture(autouse=True)
def _drop_test_schemas(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's own PostgreSQL schemas are dropped when it ends."""
    if "backend" not in request.fixturenames:
        yield
        return
    chosen: Backend = request.getfixturevalue("backend")
    mark = chosen.made()
    yield
    chosen.drop_since(mark)
