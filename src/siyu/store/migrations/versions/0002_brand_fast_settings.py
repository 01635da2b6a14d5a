"""brand FAST+ settings: review-based KOC and share attribution window

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("brands") as batch:
        batch.add_column(sa.Column("koc_reviews", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("attribution_days", sa.Integer(), nullable=False, server_default="7"))


def downgrade() -> None:
    with op.batch_alter_table("brands") as batch:
        batch.drop_column("attribution_days")
        batch.drop_column("koc_reviews")
