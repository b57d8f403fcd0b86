"""Upstream sync: a delivery cursor instead of a per-event flag; receipts of signed commands.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Events are delivered in seq order, so "delivered" is everything up to one cursor.
    op.execute(
        "INSERT INTO counter (name, value) SELECT 'outbox_acked', "
        "COALESCE((SELECT MAX(seq) FROM outbox_event WHERE delivered_at IS NOT NULL), 0)"
    )
    op.drop_index("ix_outbox_event_delivered_at", table_name="outbox_event")
    with op.batch_alter_table("outbox_event") as batch:
        batch.drop_column("delivered_at")
    op.create_table(
        "command_receipt",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error_code", sa.String(), nullable=True),
        sa.Column("error_message", sa.String(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_command_receipt_expires_at", "command_receipt", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_command_receipt_expires_at", table_name="command_receipt")
    op.drop_table("command_receipt")
    with op.batch_alter_table("outbox_event") as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))
    op.create_index("ix_outbox_event_delivered_at", "outbox_event", ["delivered_at"])
    op.execute(
        "UPDATE outbox_event SET delivered_at = CURRENT_TIMESTAMP "
        "WHERE seq <= (SELECT value FROM counter WHERE name = 'outbox_acked')"
    )
    op.execute("DELETE FROM counter WHERE name = 'outbox_acked'")
