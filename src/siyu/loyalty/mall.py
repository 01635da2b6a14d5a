"""The points mall (积分商城): redeem points (+ cash) for an item, a coupon or a benefit, and cancel.

A redemption debits the points, takes the stock and, for a coupon reward, issues the coupon in the
caller's unit of work: any refusal (short of points, out of stock, over a limit) rolls all of it
back. The reward row is locked first, so concurrent redemptions of one reward queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.loyalty import points
from siyu.loyalty.accounts import require_account
from siyu.loyalty.audit import audit
from siyu.loyalty.coupons import do_issue_coupon, do_void_coupon, lock_coupon
from siyu.loyalty.errors import (
    CouponError,
    IdempotencyConflictError,
    LimitError,
    LoyaltyError,
    StockError,
    UnknownRewardError,
)
from siyu.loyalty.models import MallRedemption, MallReward
from siyu.loyalty.program import Program


@dataclass(frozen=True)
class MallOrder:
    id: int
    reward: str
    account_id: int
    quantity: int
    points: int
    cash_fen: int
    status: str
    coupon_code: str | None
    replayed: bool = False


def _order(row: MallRedemption, replayed: bool = False) -> MallOrder:
    return MallOrder(
        row.id,
        row.reward,
        row.account_id,
        row.quantity,
        row.points,
        row.cash_fen,
        row.status,
        row.coupon_code,
        replayed,
    )


def rewards(session: Session, program_code: str) -> list[MallReward]:
    """The program's rewards with the stock still available (None = unlimited)."""
    return list(session.scalars(select(MallReward).where(MallReward.program == program_code).order_by(MallReward.code)))


def redemptions_of(session: Session, account_id: int) -> list[MallRedemption]:
    query = select(MallRedemption).where(MallRedemption.account_id == account_id)
    return list(session.scalars(query.order_by(MallRedemption.id.desc())))


def _lock_reward(session: Session, program: Program, reward: str) -> MallReward:
    row = session.scalar(
        select(MallReward)
        .where(MallReward.program == program.program, MallReward.code == reward)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        known = ", ".join(r.code for r in program.mall) or "none"
        raise UnknownRewardError(
            f"no mall reward {reward!r} in program {program.program!r}; known: {known} (商品不存在)"
        )
    return row


def do_mall_redeem(
    session: Session,
    program: Program,
    reward: str,
    account_id: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    quantity: int = 1,
) -> MallOrder:
    """Redeem `quantity` of a reward (积分兑换). Idempotent by `key`. Refuses, changing nothing,
    when the stock or the member's limit is short (StockError, LimitError) or the points are
    (InsufficientPointsError). A coupon reward issues one coupon per redemption."""
    if quantity < 1:
        raise LoyaltyError("quantity must be at least 1 (兑换数量至少为 1)")
    row = _lock_reward(session, program, reward)
    seen = session.scalar(
        select(MallRedemption).where(MallRedemption.program == program.program, MallRedemption.idempotency_key == key)
    )
    if seen is not None:
        if (seen.reward, seen.account_id, seen.quantity) != (reward, account_id, quantity):
            raise IdempotencyConflictError(
                f"idempotency key {key!r} was already used for {seen.quantity} × {seen.reward} "
                f"on account {seen.account_id}; use a new key (幂等键已被使用)"
            )
        return _order(seen, True)
    require_account(session, program.program, account_id)
    if row.kind == "coupon" and quantity != 1:
        raise LoyaltyError(f"reward {reward} is a coupon: redeem one at a time (券类商品每次兑换 1 张)")
    if row.stock is not None and row.stock < quantity:
        raise StockError(f"reward {reward}: {row.stock} left, {quantity} asked (库存不足)")
    if row.per_member_limit is not None:
        taken = session.scalar(
            select(func.coalesce(func.sum(MallRedemption.quantity), 0)).where(
                MallRedemption.program == program.program,
                MallRedemption.reward == reward,
                MallRedemption.account_id == account_id,
                MallRedemption.status != "cancelled",
            )
        )
        if int(taken or 0) + quantity > row.per_member_limit:
            raise LimitError(
                f"account {account_id} has redeemed {taken} × {reward}; the limit is {row.per_member_limit} "
                "per member (超出每人限兑)"
            )
    cost, cash = row.points * quantity, row.cash_fen * quantity
    posted = points.do_redeem(
        session, program, account_id, cost, key=f"mall:{key}", at=at, actor=actor, reason=f"mall {reward} × {quantity}"
    )
    before = row.stock
    if row.stock is not None:
        row.stock -= quantity
    coupon_code = None
    if row.kind == "coupon":
        assert row.coupon_template is not None
        issued = do_issue_coupon(
            session, program, row.coupon_template, account_id, key=f"mall:{key}", at=at, actor=actor, via="mall"
        )
        coupon_code = issued.code
    redemption = MallRedemption(
        program=program.program,
        reward=reward,
        account_id=account_id,
        quantity=quantity,
        points=cost,
        cash_fen=cash,
        status="reserved",
        idempotency_key=key,
        txn_id=posted.txn_id,
        coupon_code=coupon_code,
        created_at=at,
    )
    session.add(redemption)
    session.flush()
    audit(
        session,
        at=at,
        actor=actor,
        action="mall.redeem",
        program=program.program,
        account_id=account_id,
        subject=f"{reward}#{redemption.id}",
        old={"stock": before},
        new={"stock": row.stock, "quantity": quantity, "points": cost, "cash_fen": cash, "coupon": coupon_code},
    )
    return _order(redemption)


def do_mall_cancel(session: Session, program: Program, redemption_id: int, *, at: dt.datetime, actor: str) -> MallOrder:
    """Cancel a redemption (取消兑换): the points go back to the lots they came from (with their
    original expiry), the stock is restored and an unused coupon is voided. Refused when the
    coupon has been used; cancelling twice returns the cancelled redemption."""
    redemption = session.scalar(
        select(MallRedemption)
        .where(MallRedemption.id == redemption_id, MallRedemption.program == program.program)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if redemption is None:
        raise UnknownRewardError(f"no mall redemption {redemption_id} in program {program.program!r} (兑换记录不存在)")
    if redemption.status == "cancelled":
        return _order(redemption, True)
    row = _lock_reward(session, program, redemption.reward)
    if redemption.coupon_code is not None:
        coupon = lock_coupon(session, program, redemption.coupon_code)
        if coupon.status == "redeemed":
            raise CouponError(
                f"redemption {redemption_id}: its coupon {coupon.code} was used on order {coupon.redeemed_order}; "
                "it cannot be cancelled (券已核销，不可取消兑换)"
            )
        do_void_coupon(
            session, program, coupon.code, at=at, actor=actor, reason=f"mall redemption {redemption_id} cancelled"
        )
    points.do_reverse(
        session,
        program,
        redemption.txn_id,
        key=f"mall-cancel:{redemption.id}",
        at=at,
        actor=actor,
        reason=f"mall redemption {redemption_id} cancelled",
    )
    before = row.stock
    if row.stock is not None:
        row.stock += redemption.quantity
    redemption.status, redemption.cancelled_at = "cancelled", at
    audit(
        session,
        at=at,
        actor=actor,
        action="mall.cancel",
        program=program.program,
        account_id=redemption.account_id,
        subject=f"{redemption.reward}#{redemption.id}",
        old={"status": "reserved", "stock": before},
        new={"status": "cancelled", "stock": row.stock},
    )
    return _order(redemption)
