"""The ledger keyed by (sender lab, bundle id), not the bundle id alone.

The bundle id is chosen by the sender and readable in the clear header, so another lab reusing
it must not make the real bundle a replay. Neither SQLite nor a portable ``ALTER TABLE`` changes
a primary key, so the table is rebuilt with its rows: the old one renamed (with its index and,
on PostgreSQL, its primary-key index, whose names are global to the schema), the new one
created and filled from it, the old one dropped.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD = "bundle_ledger_v3"


def upgrade() -> None:
    op.rename_table("bundle_ledger", OLD)
    op.drop_index("ix_bundle_ledger_sender", table_name=OLD)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(f"ALTER INDEX bundle_ledger_pkey RENAME TO {OLD}_pkey"))
    ledger = op.create_table(
        "bundle_ledger",
        sa.Column("sender_lab", sa.String(64), primary_key=True),
        sa.Column("bundle_id", sa.String(32), primary_key=True),
        sa.Column("sender_key_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("header_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("imported", sa.String(40), nullable=False),
        sa.Column("receipt_sha256", sa.String(64)),
    )
    op.create_index("ix_bundle_ledger_sender", "bundle_ledger", ["sender_lab", "sequence"])
    assert ledger is not None
    columns = [column.name for column in ledger.columns]
    previous = sa.table(OLD, *(sa.column(name) for name in columns))
    op.execute(ledger.insert().from_select(columns, sa.select(*previous.c)))
    op.drop_table(OLD)
