"""Store tables of the loyalty center (会员中台): programs, accounts, points ledger and lots, tiers,
coupons, the points mall and the audit trail.

The ledger is append-only: `points_txns` rows are never updated or deleted; a lot's `remaining`
and an account's `balance` are the running state that the transactions explain
(`points_lot_moves` says which lots each transaction took from or gave back to).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")


class LoyaltyProgram(Base):
    """A loyalty program (会员体系) at group or brand level; `spec` is the validated YAML as JSON."""

    __tablename__ = "loyalty_programs"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8))  # group | brand
    group_code: Mapped[str | None] = mapped_column(String(64))
    spec: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_by: Mapped[str] = mapped_column(String(120))


class LoyaltyProgramVersion(Base):
    """Every applied version of a program file, as written (the history of `siyu loyalty apply`)."""

    __tablename__ = "loyalty_program_versions"
    program: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_by: Mapped[str] = mapped_column(String(120))


class ProgramBrand(Base):
    """The brands a program spans (one for a brand program)."""

    __tablename__ = "loyalty_program_brands"
    program: Mapped[str] = mapped_column(String(64), ForeignKey("loyalty_programs.code"), primary_key=True)
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)


class LoyaltyAccount(Base):
    """A member's account in one program: tier, growth value and points balance.

    `balance` = sum of the remaining points of the account's lots − `debt` (points reversed after
    they were spent, under the `negative` reversal policy; later earnings pay it back first).
    """

    __tablename__ = "loyalty_accounts"
    # Free space on each page lets balance updates stay on the page without touching the indexes
    # (PostgreSQL HOT updates): every ledger write and the nightly expiry update these rows.
    __table_args__ = (
        UniqueConstraint("program", "member_no", name="uq_loyalty_accounts_member_no"),
        {"postgresql_with": {"fillfactor": 85}},
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    program: Mapped[str] = mapped_column(String(64), ForeignKey("loyalty_programs.code"), index=True)
    member_no: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str] = mapped_column(String(64))  # brand of enrolment
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    enrolled_via: Mapped[str] = mapped_column(String(32))  # membership | api | first_order | relation | migration
    enrol_store: Mapped[str | None] = mapped_column(String(64))
    enrol_guide: Mapped[str | None] = mapped_column(String(64))
    birthday_month: Mapped[int | None] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(64))
    tier_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tier_protected_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    growth: Mapped[int] = mapped_column(BigInteger, default=0)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    debt: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | left


class AccountLink(Base):
    """Which brand customers (One-ID ids) an account belongs to: in a group program one member
    can be a customer of several brands."""

    __tablename__ = "loyalty_account_links"
    program: Mapped[str] = mapped_column(String(64), primary_key=True)
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("loyalty_accounts.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PointsTxn(Base):
    """One points transaction (积分流水): earn, redeem, expire, adjust or reverse. Append-only."""

    __tablename__ = "points_txns"
    __table_args__ = (
        UniqueConstraint("program", "idempotency_key", name="uq_points_txns_key"),
        # Partial: only reversals have it, and every other insert skips the index.
        Index(
            "ix_points_txns_reverses_id",
            "reverses_id",
            postgresql_where=text("reverses_id IS NOT NULL"),
            sqlite_where=text("reverses_id IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    program: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("loyalty_accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    points: Mapped[int] = mapped_column(BigInteger)  # signed change of the balance
    idempotency_key: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(128))
    reverses_id: Mapped[int | None] = mapped_column(Id, ForeignKey("points_txns.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(120))
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PointsLot(Base):
    """Points earned together, with one expiry; consumed first-to-expire."""

    __tablename__ = "points_lots"
    __table_args__ = (
        Index("ix_points_lots_expiry", "expires_at", "account_id"),
        {"postgresql_with": {"fillfactor": 85}},  # `remaining` changes in place (HOT), see LoyaltyAccount
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("loyalty_accounts.id"), index=True)
    txn_id: Mapped[int] = mapped_column(Id)  # the earning (no foreign key: see PointsMove)
    brand: Mapped[str | None] = mapped_column(String(64))  # where the points were earned
    earned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)


class PointsMove(Base):
    """How much a transaction took from (negative) or gave back to (positive) a lot."""

    __tablename__ = "points_lot_moves"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # No foreign keys here or on points_lots.txn_id: these rows are written only by the ledger,
    # together with the rows they name, and each FK check costs the hot path a lookup and a lock.
    txn_id: Mapped[int] = mapped_column(Id, index=True)
    lot_id: Mapped[int] = mapped_column(Id)
    points: Mapped[int] = mapped_column(BigInteger)


class TierChange(Base):
    """Tier history (等级变更记录) with the reason."""

    __tablename__ = "loyalty_tier_history"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("loyalty_accounts.id"), index=True)
    from_tier: Mapped[str | None] = mapped_column(String(64))
    to_tier: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CouponTemplate(Base):
    """A coupon template (券模板): kind, value, validity, stock, limits and who bears its cost."""

    __tablename__ = "coupon_templates"
    program: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # amount_off | percent_off | gift | free_shipping
    spec: Mapped[str] = mapped_column(Text)
    stock: Mapped[int | None] = mapped_column(BigInteger)  # None = unlimited
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    per_customer_limit: Mapped[int | None] = mapped_column(Integer)
    cost_bearer: Mapped[str] = mapped_column(String(16))  # group | brand | region | distributor | store
    cost_bearer_code: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(64))


class Coupon(Base):
    """One issued coupon with its unique code."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("program", "issue_key", name="uq_coupons_issue_key"),
        Index("ix_coupons_account_template", "account_id", "template"),
    )
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    program: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("loyalty_accounts.id"))
    issue_key: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_by: Mapped[str] = mapped_column(String(120))
    issued_via: Mapped[str] = mapped_column(String(16))  # single | bulk | guide | api | mall | tier
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="issued")  # issued | redeemed | voided
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redeemed_brand: Mapped[str | None] = mapped_column(String(64))
    redeemed_channel: Mapped[str | None] = mapped_column(String(64))
    redeemed_store: Mapped[str | None] = mapped_column(String(64))
    redeemed_order: Mapped[str | None] = mapped_column(String(128))
    discount_fen: Mapped[int | None] = mapped_column(BigInteger)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MallReward(Base):
    """A reward in the points mall (积分商城): item, coupon or benefit priced in points (+ cash)."""

    __tablename__ = "mall_rewards"
    program: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # item | coupon | benefit
    name_zh: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    points: Mapped[int] = mapped_column(BigInteger)
    cash_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    stock: Mapped[int | None] = mapped_column(BigInteger)  # units still available; None = unlimited
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    coupon_template: Mapped[str | None] = mapped_column(String(64))


class MallRedemption(Base):
    """A points-mall redemption: points debited and stock reserved together; can be cancelled."""

    __tablename__ = "mall_redemptions"
    __table_args__ = (UniqueConstraint("program", "idempotency_key", name="uq_mall_redemptions_key"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    program: Mapped[str] = mapped_column(String(64))
    reward: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("loyalty_accounts.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    points: Mapped[int] = mapped_column(BigInteger)
    cash_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # reserved | cancelled
    idempotency_key: Mapped[str] = mapped_column(String(200))
    txn_id: Mapped[int] = mapped_column(Id, ForeignKey("points_txns.id"))
    coupon_code: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OrderPosting(Base):
    """An order (or a refund amount of it) a program has posted, even when it moved no points:
    the order sync's record of what is done, so a re-run posts nothing twice."""

    __tablename__ = "loyalty_order_postings"
    program: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("loyalty_accounts.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What could not be applied (points used beyond the balance, a coupon not ours…): the order
    # stays posted — `siyu loyalty problems` lists these for an operator to settle by hand.
    problem: Mapped[str | None] = mapped_column(Text)
