"""The collection's database schema and its migrations.

SQLAlchemy Core tables, so the same code runs on SQLite (the default, under the lab home) and on
PostgreSQL (``BALLISTICS_DB_URL``). The schema is versioned: :data:`MIGRATIONS` are applied in
order when a store is opened, and the ``schema_version`` table says how far a database has come;
a database newer than the software is refused rather than misread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ballistics.errors import StoreError
from ballistics.files import PRIVATE_FILE_MODE

DB_URL_ENV = "BALLISTICS_DB_URL"
DB_FILE = "ballistics.db"
#: Execution option asking SQLite for ``BEGIN IMMEDIATE`` (see :meth:`ballistics.store.Store.transaction`).
IMMEDIATE = "ballistics_immediate"


metadata = sa.MetaData()
schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))
labs = sa.Table(
    "labs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("partner", sa.Boolean, nullable=False, default=False),
)
cases = sa.Table(
    "cases",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("lab_id", sa.String(64), sa.ForeignKey("labs.id"), nullable=False),
    sa.Column("case_id", sa.String(128), nullable=False),
    sa.UniqueConstraint("lab_id", "case_id"),
)
scans = sa.Table(
    "scans",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("file", sa.String(200), nullable=False),  # relative to the home
    sa.Column("original_name", sa.String(255), nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("added", sa.String(40), nullable=False),
)
exhibits = sa.Table(
    "exhibits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_pk", sa.Integer, sa.ForeignKey("cases.pk"), nullable=False),
    sa.Column("exhibit_id", sa.String(128), nullable=False),
    sa.Column("scan_sha256", sa.String(64), sa.ForeignKey("scans.sha256"), nullable=False, unique=True),
    sa.Column("calibre", sa.String(64)),
    sa.Column("firing_pin_shape", sa.String(32)),
    sa.Column("ejector_position", sa.String(64)),
    sa.Column("partner", sa.Boolean, nullable=False, default=False),
    sa.Column("added", sa.String(40), nullable=False),
    sa.UniqueConstraint("case_pk", "exhibit_id"),
)
comparisons = sa.Table(
    "comparisons",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reference_sha256", sa.String(64), sa.ForeignKey("scans.sha256"), nullable=False),
    sa.Column("questioned_sha256", sa.String(64), sa.ForeignKey("scans.sha256"), nullable=False),
    sa.Column("cmc", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("created", sa.String(40), nullable=False),
)
match_records = sa.Table(
    "match_records",
    metadata,
    sa.Column("record_id", sa.String(36), primary_key=True),
    sa.Column("comparison_id", sa.Integer, sa.ForeignKey("comparisons.id")),
    sa.Column("lab_id", sa.String(64), nullable=False),
    sa.Column("case_id", sa.String(128), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("created", sa.String(40), nullable=False),
)
signatures = sa.Table(
    "signatures",
    metadata,
    sa.Column("sha256", sa.String(64), sa.ForeignKey("scans.sha256", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(16), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
bundle_ledger = sa.Table(
    "bundle_ledger",
    metadata,
    # (sender lab, bundle id) is the key that stops a second import: the id is chosen by the
    # sender and readable in the clear header, so another lab reusing it is not a replay.
    sa.Column("sender_lab", sa.String(64), primary_key=True),
    sa.Column("bundle_id", sa.String(32), primary_key=True),
    sa.Column("sender_key_id", sa.String(64), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("header_hash", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "findings" (records and scans) or "receipt"
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON: files, records, exhibits, or the receipt
    sa.Column("imported", sa.String(40), nullable=False),
    sa.Column("receipt_sha256", sa.String(64)),  # the delivery receipt sent back, once it is written
    sa.Index("ix_bundle_ledger_sender", "sender_lab", "sequence"),
)


def _migrate_1(conn: Connection) -> None:
    """Labs, cases, exhibits, scans, comparisons, match records."""
    for table in (schema_version, labs, cases, scans, exhibits, comparisons, match_records):
        table.create(conn)


def _migrate_2(conn: Connection) -> None:
    """Search signatures in the database, so a query reads the whole collection's in one select."""
    signatures.create(conn)


def _migrate_3(conn: Connection) -> None:
    """The ledger of imported partner bundles: replay detection and proof of what was received.

    As it was at version 3 (keyed by the bundle id alone); migration 4 gives it its present key.
    """
    sa.Table(
        "bundle_ledger",
        sa.MetaData(),
        sa.Column("bundle_id", sa.String(32), primary_key=True),
        sa.Column("sender_lab", sa.String(64), nullable=False),
        sa.Column("sender_key_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("header_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("imported", sa.String(40), nullable=False),
        sa.Column("receipt_sha256", sa.String(64)),
        sa.Index("ix_bundle_ledger_sender", "sender_lab", "sequence"),
    ).create(conn)


def _migrate_4(conn: Connection) -> None:
    """The ledger keyed by (sender lab, bundle id), not the bundle id alone: the table is rebuilt.

    Neither SQLite nor a portable ``ALTER TABLE`` changes a primary key, so the old table is
    renamed, the new one created and filled from it, and the old one dropped (the index name is
    freed first: SQLite's index names are global to the database).
    """
    old = "bundle_ledger_v3"
    conn.execute(sa.text(f"ALTER TABLE bundle_ledger RENAME TO {old}"))
    conn.execute(sa.text("DROP INDEX ix_bundle_ledger_sender"))
    bundle_ledger.create(conn)
    columns = [c.name for c in bundle_ledger.columns]
    previous = sa.Table(old, sa.MetaData(), *(sa.Column(name) for name in columns))
    conn.execute(bundle_ledger.insert().from_select(columns, sa.select(*previous.columns)))
    conn.execute(sa.text(f"DROP TABLE {old}"))


#: Ordered migrations: ``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migrate_1, _migrate_2, _migrate_3, _migrate_4)
SCHEMA_VERSION = len(MIGRATIONS)


def database_url(home: Path, url: str | None = None) -> str:
    """The option, else ``BALLISTICS_DB_URL``, else SQLite in the home."""
    return url or os.environ.get(DB_URL_ENV) or f"sqlite:///{Path(home) / DB_FILE}"


def create_engine(url: str) -> Engine:
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StoreError(url, f"unusable database URL: {exc}") from None
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            # Created owner-only before SQLite makes it under the umask; its -wal and -shm files take the same mode.
            os.close(os.open(database, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE))

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # The driver's own implicit transactions skip DDL and SELECT; SQLAlchemy's BEGIN
            # (below) makes migrations and read-then-write steps atomic.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock at once (waiting up to the busy timeout), so a
            # read-then-write step cannot lose the race to upgrade its lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(IMMEDIATE) else "BEGIN")

    return engine


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to ``target``, each in its own transaction."""
    with engine.begin() as conn:
        version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(str(engine.url), f"database schema version {version} is newer than this software's {SCHEMA_VERSION}")
    for step in range(version, target):
        with engine.begin() as conn:
            MIGRATIONS[step](conn)
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=step + 1))
    return max(version, target)
