"""outbound messages and guide tasks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:09:29.151817
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guide_tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("assignee_staff_id", sa.String(length=64), nullable=True),
        sa.Column("store_code", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=400), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=400), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("guide_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_guide_tasks_assignee", ["brand", "assignee_staff_id", "status"], unique=False)
        batch_op.create_index("ix_guide_tasks_store", ["brand", "store_code", "status"], unique=False)

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=True),
        sa.Column("journey_version", sa.Integer(), nullable=True),
        sa.Column("enrolment_id", sa.BigInteger(), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_messages_customer", ["brand", "customer_id", "created_at"], unique=False)
        batch_op.create_index("ix_outbound_messages_due", ["status", "not_before"], unique=False)
        batch_op.create_index("ix_outbound_messages_journey", ["journey", "step_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_messages_journey")
        batch_op.drop_index("ix_outbound_messages_due")
        batch_op.drop_index("ix_outbound_messages_customer")

    op.drop_table("outbound_messages")
    with op.batch_alter_table("guide_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_guide_tasks_store")
        batch_op.drop_index("ix_guide_tasks_assignee")

    op.drop_table("guide_tasks")
