"""From here on Alembic keeps the version; the old counter says 4 so that older software refuses.

Software from before Alembic reads ``schema_version`` only and knows versions 1 to 3: seeing 4
it refuses the database as newer than itself instead of creating its tables a second time.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    counter = sa.table("schema_version", sa.column("version", sa.Integer))
    op.execute(counter.delete())
    op.execute(counter.insert().values(version=4))
