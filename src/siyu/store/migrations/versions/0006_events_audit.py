"""one audit trail and durable domain events: audit_log (replaces loyalty_audit), outbox_events,
event_consumers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_subject", ["subject_type", "subject_id"], unique=False)
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
    op.create_table(
        "outbox_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_events_order", ["txid", "id"], unique=False)
    op.create_table(
        "event_consumers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("leased_by", sa.String(length=120), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    _move_loyalty_audit()
    with op.batch_alter_table("loyalty_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_audit_account_id"))
    op.drop_table("loyalty_audit")


def _move_loyalty_audit() -> None:
    """Existing loyalty audit rows move to the one trail, with the subjects siyu.loyalty.audit gives."""
    from siyu.loyalty.audit import audit_row  # the mapping lives in one place

    bind = op.get_bind()
    old_columns = ("id", "at", "actor", "action", "program", "account_id", "subject", "old", "new")
    new_columns = ("at", "actor_kind", "actor_id", "action", "subject_type", "subject_id", "brand", "before",
                   "after", "request_id")  # fmt: skip
    old = sa.table("loyalty_audit", *(sa.column(c) for c in old_columns))
    new = sa.table("audit_log", *(sa.column(c) for c in new_columns))
    rows = []
    for r in bind.execute(sa.select(old).order_by(old.c.id)):
        rows.append(
            audit_row(
                at=r.at,
                actor=r.actor,
                action=r.action,
                program=r.program,
                account_id=r.account_id,
                subject=r.subject,
                old=_loads(r.old),
                new=_loads(r.new),
            )
        )
        if len(rows) >= 10_000:
            bind.execute(new.insert(), rows)
            rows = []
    if rows:
        bind.execute(new.insert(), rows)


def _loads(text: str | None) -> object:
    import json

    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def downgrade() -> None:
    op.drop_table("event_consumers")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_order")
    op.drop_table("outbox_events")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")
        batch_op.drop_index("ix_audit_log_subject")
    op.drop_table("audit_log")
