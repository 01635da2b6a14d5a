"""tags and audiences: tag groups, definitions, assignments, history; audiences, snapshots, exports

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tag_groups",
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name_zh", sa.String(200)),
        sa.Column("name_en", sa.String(200)),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("brand", "code"),
    )
    op.create_table(
        "tag_definitions",
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("group_code", sa.String(64)),
        sa.Column("name_zh", sa.String(200)),
        sa.Column("name_en", sa.String(200)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value_type", sa.String(16), nullable=False),
        sa.Column("values_json", sa.Text()),
        sa.Column("rule_json", sa.Text()),
        sa.Column("description", sa.Text()),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("computed_at", nullable=True),
        sa.Column("computed_customers", sa.BigInteger()),
        sa.Column("lake_version", sa.BigInteger()),
        sa.PrimaryKeyConstraint("brand", "code"),
    )
    op.create_table(
        "tag_assignments",
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("tag_code", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("value", sa.String(200)),
        sa.Column("number", sa.Float()),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        _ts("set_at"),
        sa.Column("reason", sa.Text()),
        sa.PrimaryKeyConstraint("brand", "tag_code", "customer_id"),
    )
    op.create_index("ix_tag_assignments_customer", "tag_assignments", ["brand", "customer_id"])
    op.create_table(
        "tag_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("tag_code", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old_value", sa.String(200)),
        sa.Column("new_value", sa.String(200)),
        sa.Column("actor", sa.String(200), nullable=False),
        _ts("at"),
        sa.Column("reason", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tag_history_tag", "tag_history", ["brand", "tag_code"])
    op.create_table(
        "audiences",
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("description", sa.Text()),
        sa.Column("rule_json", sa.Text(), nullable=False),
        sa.Column("refresh_minutes", sa.Integer()),
        sa.Column("created_by", sa.String(200), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("last_snapshot_at", nullable=True),
        sa.Column("last_count", sa.BigInteger()),
        sa.PrimaryKeyConstraint("brand", "code"),
    )
    op.create_table(
        "audience_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("audience_code", sa.String(64), nullable=False),
        _ts("taken_at"),
        sa.Column("as_of", sa.String(10), nullable=False),
        sa.Column("customers", sa.BigInteger(), nullable=False),
        sa.Column("rule_json", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("lake_version", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audience_snapshots_audience", "audience_snapshots", ["brand", "audience_code"])
    op.create_table(
        "audience_exports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("audience_code", sa.String(64)),
        sa.Column("actor", sa.String(200), nullable=False),
        _ts("at"),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("file_format", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("unmasked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("audience_exports")
    op.drop_index("ix_audience_snapshots_audience", "audience_snapshots")
    op.drop_table("audience_snapshots")
    op.drop_table("audiences")
    op.drop_index("ix_tag_history_tag", "tag_history")
    op.drop_table("tag_history")
    op.drop_index("ix_tag_assignments_customer", "tag_assignments")
    op.drop_table("tag_assignments")
    op.drop_table("tag_groups")
    op.drop_table("tag_definitions")
