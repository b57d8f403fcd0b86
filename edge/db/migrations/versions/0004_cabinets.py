"""RFID cabinets: catalogue, stock, sessions, orders and payment requests.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product",
        sa.Column("gtin", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("name_en", sa.String(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("size", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "price",
        sa.Column("gtin", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("effective_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_price_gtin_effective", "price", ["gtin", "effective_at"])
    op.create_table(
        "cabinet_stock",
        sa.Column("cabinet_id", sa.String(), primary_key=True),
        sa.Column("epc", sa.String(), primary_key=True),
        sa.Column("gtin", sa.String(), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "cabinet_session",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("cabinet_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("member_id", sa.String(), nullable=True),
        sa.Column("member_source", sa.String(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("door_opened_at", sa.DateTime(), nullable=True),
        sa.Column("door_closed_at", sa.DateTime(), nullable=True),
        sa.Column("price_at", sa.DateTime(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("hold_reason", sa.String(), nullable=True),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_cabinet_session_cabinet_id", "cabinet_session", ["cabinet_id"])
    op.create_index("ix_cabinet_session_state", "cabinet_session", ["state"])
    op.create_table(
        "sales_order",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("session_id", sa.String(), nullable=False, unique=True),
        sa.Column("cabinet_id", sa.String(), nullable=False),
        sa.Column("member_id", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "order_line",
        sa.Column("order_id", sa.String(), sa.ForeignKey("sales_order.id"), primary_key=True),
        sa.Column("line", sa.Integer(), primary_key=True),
        sa.Column("epc", sa.String(), nullable=False),
        sa.Column("gtin", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("price_version", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
    )
    op.create_index("ix_order_line_epc", "order_line", ["epc"])
    op.create_table(
        "payment_request",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column(
            "order_id", sa.String(), sa.ForeignKey("sales_order.id"), nullable=False, unique=True
        ),
        sa.Column("member_id", sa.String(), nullable=True),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payment_request")
    op.drop_index("ix_order_line_epc", table_name="order_line")
    op.drop_table("order_line")
    op.drop_table("sales_order")
    op.drop_index("ix_cabinet_session_state", table_name="cabinet_session")
    op.drop_index("ix_cabinet_session_cabinet_id", table_name="cabinet_session")
    op.drop_table("cabinet_session")
    op.drop_table("cabinet_stock")
    op.drop_index("ix_price_gtin_effective", table_name="price")
    op.drop_table("price")
    op.drop_table("product")
