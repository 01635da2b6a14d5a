"""API keys and the ingest inbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("brand", sa.String(64), sa.ForeignKey("brands.code"), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("rate_limit", sa.Integer()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True)),
        sa.Column("batch", sa.String(36)),
        sa.UniqueConstraint("brand", "source", "kind", "message_id", name="uq_inbox_message"),
    )
    op.create_index(
        "ix_inbox_pending",
        "inbox",
        ["id"],
        postgresql_where=sa.text("loaded_at IS NULL"),
        sqlite_where=sa.text("loaded_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_pending", table_name="inbox")
    op.drop_table("inbox")
    op.drop_table("api_keys")
