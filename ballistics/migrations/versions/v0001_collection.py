"""Labs, cases, exhibits, scans, comparisons, match records (the hand-made schema version 1).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The counter of the hand-made migrations, kept as a fence: see revision 0004.
    op.create_table("schema_version", sa.Column("version", sa.Integer, nullable=False))
    op.create_table(
        "labs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("partner", sa.Boolean, nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("lab_id", sa.String(64), sa.ForeignKey("labs.id"), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.UniqueConstraint("lab_id", "case_id"),
    )
    op.create_table(
        "scans",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("file", sa.String(200), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("added", sa.String(40), nullable=False),
    )
    op.create_table(
        "exhibits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_pk", sa.Integer, sa.ForeignKey("cases.pk"), nullable=False),
        sa.Column("exhibit_id", sa.String(128), nullable=False),
        sa.Column("scan_sha256", sa.String(64), sa.ForeignKey("scans.sha256"), nullable=False, unique=True),
        sa.Column("calibre", sa.String(64)),
        sa.Column("firing_pin_shape", sa.String(32)),
        sa.Column("ejector_position", sa.String(64)),
        sa.Column("partner", sa.Boolean, nullable=False),
        sa.Column("added", sa.String(40), nullable=False),
        sa.UniqueConstraint("case_pk", "exhibit_id"),
    )
    op.create_table(
        "comparisons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference_sha256", sa.String(64), sa.ForeignKey("scans.sha256"), nullable=False),
        sa.Column("questioned_sha256", sa.String(64), sa.ForeignKey("scans.sha256"), nullable=False),
        sa.Column("cmc", sa.Integer, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
    )
    op.create_table(
        "match_records",
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("comparison_id", sa.Integer, sa.ForeignKey("comparisons.id")),
        sa.Column("lab_id", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
    )
