"""loyalty center: programs, accounts, points ledger and lots, tiers, coupons, points mall, audit

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_templates",
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("per_customer_limit", sa.Integer(), nullable=True),
        sa.Column("cost_bearer", sa.String(length=16), nullable=False),
        sa.Column("cost_bearer_code", sa.String(length=64), nullable=True),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("program", "code"),
    )
    op.create_table(
        "loyalty_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("program", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("loyalty_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loyalty_audit_account_id"), ["account_id"], unique=False)

    op.create_table(
        "loyalty_program_versions",
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("program", "version"),
    )
    op.create_table(
        "loyalty_programs",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("group_code", sa.String(length=64), nullable=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "mall_rewards",
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=True),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("cash_fen", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("per_member_limit", sa.Integer(), nullable=True),
        sa.Column("coupon_template", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("program", "code"),
    )
    op.create_table(
        "loyalty_accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("member_no", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled_via", sa.String(length=32), nullable=False),
        sa.Column("enrol_store", sa.String(length=64), nullable=True),
        sa.Column("enrol_guide", sa.String(length=64), nullable=True),
        sa.Column("birthday_month", sa.Integer(), nullable=True),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.Column("tier_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tier_protected_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("growth", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["program"],
            ["loyalty_programs.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("program", "member_no", name="uq_loyalty_accounts_member_no"),
        postgresql_with={"fillfactor": 85},
    )
    with op.batch_alter_table("loyalty_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loyalty_accounts_program"), ["program"], unique=False)

    op.create_table(
        "loyalty_program_brands",
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["program"],
            ["loyalty_programs.code"],
        ),
        sa.PrimaryKeyConstraint("program", "brand"),
    )
    op.create_table(
        "coupons",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issue_key", sa.String(length=200), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(length=120), nullable=False),
        sa.Column("issued_via", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_brand", sa.String(length=64), nullable=True),
        sa.Column("redeemed_channel", sa.String(length=64), nullable=True),
        sa.Column("redeemed_store", sa.String(length=64), nullable=True),
        sa.Column("redeemed_order", sa.String(length=128), nullable=True),
        sa.Column("discount_fen", sa.BigInteger(), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["loyalty_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("code"),
        sa.UniqueConstraint("program", "issue_key", name="uq_coupons_issue_key"),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index("ix_coupons_account_template", ["account_id", "template"], unique=False)

    op.create_table(
        "loyalty_account_links",
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["loyalty_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("program", "brand", "customer_id"),
    )
    with op.batch_alter_table("loyalty_account_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loyalty_account_links_account_id"), ["account_id"], unique=False)

    op.create_table(
        "loyalty_tier_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_tier", sa.String(length=64), nullable=True),
        sa.Column("to_tier", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["loyalty_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("loyalty_tier_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loyalty_tier_history_account_id"), ["account_id"], unique=False)

    op.create_table(
        "points_txns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("reverses_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["loyalty_accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["points_txns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("program", "idempotency_key", name="uq_points_txns_key"),
    )
    with op.batch_alter_table("points_txns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_points_txns_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            "ix_points_txns_reverses_id",
            ["reverses_id"],
            unique=False,
            postgresql_where=sa.text("reverses_id IS NOT NULL"),
            sqlite_where=sa.text("reverses_id IS NOT NULL"),
        )

    op.create_table(
        "mall_redemptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("reward", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("cash_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coupon_code", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["loyalty_accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["txn_id"],
            ["points_txns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("program", "idempotency_key", name="uq_mall_redemptions_key"),
    )
    with op.batch_alter_table("mall_redemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mall_redemptions_account_id"), ["account_id"], unique=False)

    op.create_table(
        "points_lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=True),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["loyalty_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        postgresql_with={"fillfactor": 85},
    )
    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_points_lots_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_points_lots_expiry", ["expires_at", "account_id"], unique=False)

    op.create_table(
        "points_lot_moves",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("points_lot_moves", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_points_lot_moves_txn_id"), ["txn_id"], unique=False)
    op.create_table(
        "loyalty_order_postings",
        sa.Column("program", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["loyalty_accounts.id"]),
        sa.PrimaryKeyConstraint("program", "key"),
    )


def downgrade() -> None:
    op.drop_table("loyalty_order_postings")
    with op.batch_alter_table("points_lot_moves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_points_lot_moves_txn_id"))

    op.drop_table("points_lot_moves")
    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.drop_index("ix_points_lots_expiry")
        batch_op.drop_index(batch_op.f("ix_points_lots_account_id"))

    op.drop_table("points_lots")
    with op.batch_alter_table("mall_redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mall_redemptions_account_id"))

    op.drop_table("mall_redemptions")
    with op.batch_alter_table("points_txns", schema=None) as batch_op:
        batch_op.drop_index("ix_points_txns_reverses_id")
        batch_op.drop_index(batch_op.f("ix_points_txns_account_id"))

    op.drop_table("points_txns")
    with op.batch_alter_table("loyalty_tier_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_tier_history_account_id"))

    op.drop_table("loyalty_tier_history")
    with op.batch_alter_table("loyalty_account_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_account_links_account_id"))

    op.drop_table("loyalty_account_links")
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index("ix_coupons_account_template")

    op.drop_table("coupons")
    op.drop_table("loyalty_program_brands")
    with op.batch_alter_table("loyalty_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_accounts_program"))

    op.drop_table("loyalty_accounts")
    op.drop_table("mall_rewards")
    op.drop_table("loyalty_programs")
    op.drop_table("loyalty_program_versions")
    with op.batch_alter_table("loyalty_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loyalty_audit_account_id"))

    op.drop_table("loyalty_audit")
    op.drop_table("coupon_templates")
