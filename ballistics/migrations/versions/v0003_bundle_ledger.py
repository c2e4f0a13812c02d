"""The ledger of imported partner bundles: replay detection and proof of what was received.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bundle_ledger",
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
    )
    op.create_index("ix_bundle_ledger_sender", "bundle_ledger", ["sender_lab", "sequence"])
