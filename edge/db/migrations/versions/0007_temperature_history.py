"""Temperature history: one row per sensor and minute, for the operator console's chart.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "temperature_minute",
        sa.Column("sensor", sa.String(), primary_key=True),
        sa.Column("minute", sa.DateTime(), primary_key=True),
        sa.Column("zone", sa.String(), nullable=False),
        sa.Column("min_c", sa.Float(), nullable=False),
        sa.Column("max_c", sa.Float(), nullable=False),
        sa.Column("mean_c", sa.Float(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
    )
    op.create_index("ix_temperature_minute_minute", "temperature_minute", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_temperature_minute_minute", table_name="temperature_minute")
    op.drop_table("temperature_minute")
