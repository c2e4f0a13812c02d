"""The collection's database schema and its migrations.

SQLAlchemy Core tables, so the same code runs on SQLite (the default, under the lab home) and on
PostgreSQL (``BALLISTICS_DB_URL`` or the home's ``settings.toml``; :mod:`ballistics.settings`).
The tables here are the schema at :data:`HEAD`; the Alembic revisions under
``ballistics/migrations/versions`` build it step by step, each with its own frozen DDL, and
:func:`migrate` applies the missing ones when a store is opened. A database whose revision this
software does not know (written by newer software) is refused rather than misread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ballistics.errors import StoreError
from ballistics.files import PRIVATE_FILE_MODE

if TYPE_CHECKING:
    from alembic.config import Config

#: Execution option asking SQLite for ``BEGIN IMMEDIATE`` (see :meth:`ballistics.store.Store.transaction`).
IMMEDIATE = "ballistics_immediate"
#: The newest revision under ``ballistics/migrations/versions`` (a test checks they agree), so
#: opening an up-to-date database reads one row and loads no Alembic.
HEAD = "0006"
#: Revisions of the schema versions counted by hand before Alembic (table ``schema_version``).
LEGACY_REVISIONS = {1: "0001", 2: "0002", 3: "0003"}
MIGRATIONS = Path(__file__).with_name("migrations")
#: First keys of the PostgreSQL advisory locks that serialise migrations and exclusive
#: transactions (:func:`lock_exclusive`); the second key is the schema.
_MIGRATION_LOCK = 0x0BA1
_EXCLUSIVE_LOCK = 0x0BA2


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
    # "findings" (records and scans), "receipt", "correlation-request", "correlation-response" or "hit-notification"
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON: files, records, exhibits, or the receipt
    sa.Column("imported", sa.String(40), nullable=False),
    sa.Column("receipt_sha256", sa.String(64)),  # the delivery receipt sent back, once it is written
    sa.Index("ix_bundle_ledger_sender", "sender_lab", "sequence"),
)

# --- ballistic intelligence (revision 0006) --------------------------------------------------------
requests_sent = sa.Table(
    "requests_sent",
    metadata,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("bundle_id", sa.String(32), nullable=False),
    sa.Column("case_id", sa.String(128), nullable=False),
    sa.Column("recipients", sa.Text, nullable=False),  # JSON list of lab ids
    sa.Column("scans", sa.Text, nullable=False),  # JSON list of {sha256, exhibit}
    sa.Column("created", sa.String(40), nullable=False),
)
request_answers = sa.Table(
    "request_answers",
    metadata,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("responder_lab", sa.String(64), primary_key=True),
    sa.Column("bundle_id", sa.String(32), nullable=False),  # of the response bundle
    sa.Column("collection_size", sa.BigInteger, nullable=False),
    sa.Column("candidates", sa.Integer, nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # the response, as JSON
    sa.Column("received", sa.String(40), nullable=False),
)
correlations = sa.Table(
    "correlations",
    metadata,
    # One partner bundle whose scans are searched against the collection: a request, or findings.
    sa.Column("sender_lab", sa.String(64), primary_key=True),
    sa.Column("bundle_id", sa.String(32), primary_key=True),
    sa.Column("request_id", sa.String(32)),
    sa.Column("state", sa.String(16), nullable=False),  # pending, searched, answered
    sa.Column("scans", sa.Text, nullable=False),  # JSON list of SHA-256
    sa.Column("collection_size", sa.BigInteger),
    sa.Column("searched", sa.String(40)),
    sa.Column("response", sa.Text),  # path of the response bundle written
)
leads = sa.Table(
    "leads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_lab", sa.String(64), nullable=False),
    sa.Column("bundle_id", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(32)),
    sa.Column("partner_case", sa.String(128), nullable=False),
    sa.Column("partner_exhibit", sa.String(128), nullable=False),
    sa.Column("partner_sha256", sa.String(64), nullable=False),
    sa.Column("our_lab", sa.String(64), nullable=False),
    sa.Column("our_case", sa.String(128), nullable=False),
    sa.Column("our_exhibit", sa.String(128), nullable=False),
    sa.Column("our_sha256", sa.String(64), nullable=False),
    sa.Column("cmc", sa.Integer, nullable=False),
    sa.Column("ccf", sa.Float),
    sa.Column("log10_lr", sa.Float),
    sa.Column("likelihood_ratio", sa.Text),  # the LR statement, as JSON
    sa.Column("comparison", sa.Text, nullable=False),  # the comparison document, as JSON
    sa.Column("status", sa.String(16), nullable=False),  # new, confirmed, dismissed
    sa.Column("found", sa.String(40), nullable=False),
    sa.Column("decided", sa.String(40)),
    sa.Column("examiner", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Column("record_id", sa.String(36)),
    sa.Column("notification", sa.Text),  # path of the hit notification written
    sa.UniqueConstraint("partner_sha256", "our_sha256"),
)
hits_received = sa.Table(
    "hits_received",
    metadata,
    sa.Column("record_id", sa.String(36), primary_key=True),
    sa.Column("partner_lab", sa.String(64), nullable=False),
    sa.Column("bundle_id", sa.String(32), nullable=False),  # ours, which carried the scan
    sa.Column("request_id", sa.String(32)),
    sa.Column("scan_sha256", sa.String(64), nullable=False),
    sa.Column("partner_case", sa.String(128), nullable=False),
    sa.Column("partner_exhibit", sa.String(128), nullable=False),
    sa.Column("log10_lr", sa.String(16)),
    sa.Column("examiner", sa.String(200), nullable=False),
    sa.Column("received", sa.String(40), nullable=False),
)


def create_engine(url: str) -> Engine:
    """An engine for SQLite or PostgreSQL, the two backends the tests run against."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StoreError(url, f"unusable database URL: {exc}") from None
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise StoreError(engine.url.render_as_string(hide_password=True), "the collection runs on SQLite or PostgreSQL only")
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


def insert_new(conn: Connection, table: sa.Table, **values: Any) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING``: True when this call added the row, False when a unique key already held one.

    On PostgreSQL a conflicting row that another transaction has not committed yet makes this
    wait for that transaction: its commit means "already there", its rollback lets this insert.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    return conn.execute(statement.returning(*table.primary_key.columns)).first() is not None


def lock_exclusive(conn: Connection) -> None:
    """Make the current transaction exclusive among those that call this (until it ends).

    PostgreSQL: a transaction-level advisory lock of the current schema, released at commit,
    rollback or when a killed client's connection drops. SQLite needs nothing: a write
    transaction there holds the database's single write lock already (``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": _EXCLUSIVE_LOCK})


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration for the collection's revisions, running on ``conn``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    config.attributes["connection"] = conn
    return config


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision: Alembic's, else that of a hand-made version, else ``None`` (empty)."""
    inspector = sa.inspect(conn)
    if inspector.has_table("alembic_version"):
        heads = [row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
        if len(heads) > 1:
            raise StoreError(str(conn.engine.url), f"database has several schema heads ({', '.join(sorted(heads))})")
        if heads:
            return str(heads[0])
    if inspector.has_table("schema_version"):
        version = int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)
        if version in LEGACY_REVISIONS:
            return LEGACY_REVISIONS[version]
        if version:
            raise StoreError(str(conn.engine.url), f"database schema version {version} is newer than this software's {HEAD}")
    return None


def migrate(engine: Engine, target: str = HEAD) -> str | None:
    """Bring the database to ``target`` (default: the newest revision); returns the revision it is at.

    The revisions run in one transaction under a lock (SQLite ``BEGIN IMMEDIATE``, a
    PostgreSQL advisory lock for this schema), so workstations opening a new or old database at
    the same moment migrate it once, and a failure leaves it as it was.
    """
    with engine.connect() as conn:
        revision = current_revision(conn)
    if revision == target:
        return revision
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    scripts = ScriptDirectory(str(MIGRATIONS))
    with engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": _MIGRATION_LOCK})
        revision = current_revision(conn)  # again: another process may have migrated meanwhile
        if revision is not None:
            try:
                scripts.get_revision(revision)
            except CommandError:
                raise StoreError(
                    str(engine.url), f"database schema revision {revision} is newer than this software's {HEAD}; use newer software"
                ) from None
        config = alembic_config(conn)
        if revision is not None and not sa.inspect(conn).has_table("alembic_version"):
            command.stamp(config, revision)  # a database of the hand-made migrations joins Alembic where it stands
        command.upgrade(config, target)
        return current_revision(conn)
