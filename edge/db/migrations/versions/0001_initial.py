"""Initial schema: compartments, parcels, couriers, door operations, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parcel",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("size", sa.String(), nullable=True),
        sa.Column("zone", sa.String(), nullable=False),
        sa.Column("courier_id", sa.String(), nullable=True),
        sa.Column("compartment_id", sa.String(), nullable=True),
        sa.Column("pickup_code_hash", sa.String(), nullable=True, unique=True),
        sa.Column("recipient", sa.String(), nullable=True),
        sa.Column("expected_at", sa.DateTime(), nullable=True),
        sa.Column("deposited_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("picked_up_at", sa.DateTime(), nullable=True),
        sa.Column("returned_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_parcel_state", "parcel", ["state"])
    op.create_index("ix_parcel_expires_at", "parcel", ["expires_at"])
    op.create_index("ix_parcel_code_state", "parcel", ["code", "state"])

    op.create_table(
        "compartment",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("bus", sa.String(), nullable=False),
        sa.Column("board", sa.Integer(), nullable=False),
        sa.Column("lock", sa.Integer(), nullable=False),
        sa.Column("size", sa.String(), nullable=False),
        sa.Column("zone", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("parcel_id", sa.String(), sa.ForeignKey("parcel.id"), nullable=True),
        sa.Column("fault", sa.String(), nullable=True),
        sa.Column("door_open", sa.Boolean(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("bus", "board", "lock"),
    )
    op.create_index("ix_compartment_state", "compartment", ["state"])

    op.create_table(
        "courier",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("credential_hash", sa.String(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )

    op.create_table(
        "dooroperation",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("compartment_id", sa.String(), sa.ForeignKey("compartment.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("parcel_id", sa.String(), sa.ForeignKey("parcel.id"), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("prior_state", sa.String(), nullable=False),
        sa.Column("commanded_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_dooroperation_compartment_id", "dooroperation", ["compartment_id"])
    op.create_index("ix_dooroperation_state", "dooroperation", ["state"])

    op.create_table(
        "outbox_event",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(), nullable=False, unique=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("ts", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_outbox_event_delivered_at", "outbox_event", ["delivered_at"])

    counter = op.create_table(
        "counter",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.bulk_insert(counter, [{"name": "outbox_seq", "value": 0}])


def downgrade() -> None:
    for table in ("counter", "outbox_event", "dooroperation", "courier", "compartment", "parcel"):
        op.drop_table(table)
