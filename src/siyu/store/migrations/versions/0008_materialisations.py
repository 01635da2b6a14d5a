"""materialisations: the runs that stored layers and RFM, with the inputs they saw (freshness)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "materialisations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=True),
        sa.Column("period", sa.String(length=16), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("window_days", sa.Integer(), nullable=True),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("lake_table", sa.String(length=64), nullable=False),
        sa.Column("lake_version", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("materialised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("materialisations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_materialisations_key", ["brand", "kind", "grain", "period", "as_of", "window_days"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("materialisations", schema=None) as batch_op:
        batch_op.drop_index("ix_materialisations_key")
    op.drop_table("materialisations")
