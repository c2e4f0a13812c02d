"""Search signatures in the database, so a query reads the whole collection's in one select.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signatures",
        sa.Column("sha256", sa.String(64), sa.ForeignKey("scans.sha256", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(16), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
