"""Shelf labels: promotions, label bindings, label pushes; order lines record promotions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promotion",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("gtin", sa.String(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("text", sa.String(), nullable=True),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_promotion_gtin", "promotion", ["gtin"])
    op.create_table(
        "label",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("gtin", sa.String(), nullable=True),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("access_point", sa.String(), nullable=False),
        sa.Column("bound_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_label_gtin", "label", ["gtin"])
    op.create_table(
        "label_push",
        sa.Column("label_id", sa.String(), primary_key=True),
        sa.Column("content_key", sa.String(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("effective_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=True),
        sa.Column("upload_receipt", sa.JSON(), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(), nullable=True),
        sa.Column("deadline_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("shown", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_label_push_state", "label_push", ["state"])
    op.create_index("ix_label_push_due", "label_push", ["state", "effective_at"])
    with op.batch_alter_table("order_line") as batch:
        batch.add_column(sa.Column("regular_amount", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("promotion_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("promotion_version", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("price_source", sa.String(), nullable=False, server_default="catalog")
        )


def downgrade() -> None:
    with op.batch_alter_table("order_line") as batch:
        batch.drop_column("price_source")
        batch.drop_column("promotion_version")
        batch.drop_column("promotion_id")
        batch.drop_column("regular_amount")
    op.drop_index("ix_label_push_due", "label_push")
    op.drop_index("ix_label_push_state", "label_push")
    op.drop_table("label_push")
    op.drop_index("ix_label_gtin", "label")
    op.drop_table("label")
    op.drop_index("ix_promotion_gtin", "promotion")
    op.drop_table("promotion")
