"""Face payment: members (encrypted templates), face verifications, payment decisions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("template", sa.LargeBinary(), nullable=False),
        sa.Column("phone_digits_hash", sa.String(), nullable=True),
        sa.Column("offline_limit", sa.Integer(), nullable=True),
        sa.Column("consent", sa.JSON(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "face_verification",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("terminal", sa.String(), nullable=False),
        sa.Column("member_id", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("second_score", sa.Float(), nullable=True),
        sa.Column("liveness", sa.JSON(), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_by", sa.String(), nullable=True, unique=True),
    )
    with op.batch_alter_table("cabinet_session") as batch:
        batch.add_column(sa.Column("verification_id", sa.String(), nullable=True))
    with op.batch_alter_table("payment_request") as batch:
        batch.add_column(sa.Column("verification_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("mode", sa.String(), nullable=True))
        batch.add_column(sa.Column("decline_reason", sa.String(), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(), nullable=True))
    op.create_index(
        "ix_payment_request_member_decided", "payment_request", ["member_id", "decided_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_payment_request_member_decided", "payment_request")
    with op.batch_alter_table("payment_request") as batch:
        for column in ("decided_at", "decline_reason", "mode", "verification_id"):
            batch.drop_column(column)
    with op.batch_alter_table("cabinet_session") as batch:
        batch.drop_column("verification_id")
    op.drop_table("face_verification")
    op.drop_table("member")
