"""inbox dead letters: messages the loader could not load, set aside with their reason

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OPEN = "dead_at IS NOT NULL AND dropped_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("dead_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("dead_reason", sa.Text()))
        batch.add_column(sa.Column("dropped_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("dropped_by", sa.String(120)))
    # /ready and /metrics count open dead letters on every probe: never a scan of the whole inbox.
    op.create_index("ix_inbox_dead", "inbox", ["id"], postgresql_where=sa.text(_OPEN), sqlite_where=sa.text(_OPEN))


def downgrade() -> None:
    op.drop_index("ix_inbox_dead", table_name="inbox")
    with op.batch_alter_table("inbox") as batch:
        for column in ("dropped_by", "dropped_at", "dead_reason", "dead_at", "attempts"):
            batch.drop_column(column)
