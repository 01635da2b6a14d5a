"""PII at rest: keyed match hashes beside quarantine rows' sealed raw data

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine_rows") as batch:
        batch.add_column(sa.Column("match_hashes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quarantine_rows") as batch:
        batch.drop_column("match_hashes")
