"""Ballistic intelligence: requests sent and their answers, correlations of partner scans, leads, hits received.

The ledger's ``kind`` widens to 32 characters for the bundle kinds ``correlation-request``,
``correlation-response`` and ``hit-notification``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bundle_ledger") as ledger:  # SQLite: the table rebuilt with its rows and index
        ledger.alter_column("kind", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False)
    op.create_table(
        "requests_sent",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("bundle_id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("scans", sa.Text, nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
    )
    op.create_table(
        "request_answers",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("responder_lab", sa.String(64), primary_key=True),
        sa.Column("bundle_id", sa.String(32), nullable=False),
        sa.Column("collection_size", sa.BigInteger, nullable=False),
        sa.Column("candidates", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("received", sa.String(40), nullable=False),
    )
    op.create_table(
        "correlations",
        sa.Column("sender_lab", sa.String(64), primary_key=True),
        sa.Column("bundle_id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("scans", sa.Text, nullable=False),
        sa.Column("collection_size", sa.BigInteger),
        sa.Column("searched", sa.String(40)),
        sa.Column("response", sa.Text),
    )
    op.create_table(
        "leads",
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
        sa.Column("likelihood_ratio", sa.Text),
        sa.Column("comparison", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("found", sa.String(40), nullable=False),
        sa.Column("decided", sa.String(40)),
        sa.Column("examiner", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("record_id", sa.String(36)),
        sa.Column("notification", sa.Text),
        sa.UniqueConstraint("partner_sha256", "our_sha256"),
    )
    op.create_table(
        "hits_received",
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("partner_lab", sa.String(64), nullable=False),
        sa.Column("bundle_id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(32)),
        sa.Column("scan_sha256", sa.String(64), nullable=False),
        sa.Column("partner_case", sa.String(128), nullable=False),
        sa.Column("partner_exhibit", sa.String(128), nullable=False),
        sa.Column("log10_lr", sa.String(16)),
        sa.Column("examiner", sa.String(200), nullable=False),
        sa.Column("received", sa.String(40), nullable=False),
    )
