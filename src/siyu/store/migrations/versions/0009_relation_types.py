"""relation types a brand declares (relation_types.csv)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relation_types",
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=True),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("connection", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["brand"], ["brands.code"]),
        sa.PrimaryKeyConstraint("brand", "code"),
    )


def downgrade() -> None:
    op.drop_table("relation_types")
