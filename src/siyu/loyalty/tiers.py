"""Tiers (会员等级): qualifying values computed with Ibis from the lake, changes in the store.

The qualifying value is the growth value (成长值: ⌊net paid fen × growth_per_yuan / 100⌋, exact) or the net
spend in fen, over the trailing `spend_window_months`, from the paid orders of all the account's
linked customers (refunds deducted). Upgrades apply as soon as an order sync sees them; downgrades
only in the periodic evaluation (`siyu loyalty tiers evaluate`, run at the end of each
`evaluation` period) and never within `protection_months` of the last upgrade.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.events.catalogue import TierChanged
from siyu.events.outbox import append
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import current
from siyu.loyalty.accounts import lock_account, utc
from siyu.loyalty.audit import audit
from siyu.loyalty.coupons import do_issue_coupon
from siyu.loyalty.errors import LimitError, StockError
from siyu.loyalty.linked import NODE, linked_nodes, links_table, rows_of
from siyu.loyalty.lots import add_months
from siyu.loyalty.models import LoyaltyAccount, TierChange
from siyu.loyalty.program import Program
from siyu.loyalty.programs import load_program


@dataclass(frozen=True)
class TierRun:
    evaluated: int
    upgraded: int
    downgraded: int


def qualifying_values(app: App, program: Program, links: pa.Table, at: dt.datetime) -> dict[int, int]:
    """account_id → growth value or net spend (fen) over the window ending at `at`."""
    orders = current(app, "orders")
    if orders is None:
        return {}
    start_day = add_months(at.date(), -program.tiers.spend_window_months)
    start = dt.datetime.combine(start_day, at.astimezone(dt.UTC).timetz())
    lo = ibis.literal(start, type="timestamp('UTC')")
    hi = ibis.literal(at, type="timestamp('UTC')")
    o = orders.filter(
        orders.brand.isin(program.brands),
        orders.status.isin(PAID_STATUSES),
        orders.paid_at >= lo,
        orders.paid_at <= hi,
    )
    with linked_nodes(app, links) as nodes:
        if nodes is None:
            return {}
        o = o.join(nodes, NODE)
        o = o.filter((o.paid_at >= o.enrolled_at) & o.shares)  # siyu.loyalty.sharing
        net = (o.amount_fen - o.refund_fen.fill_null(0)).clip(lower=0)
        spend = app.engine.to_arrow(o.group_by("account_id").aggregate(net=net.sum().cast("int64")))
    value = spend["net"] if program.tiers.basis == "spend" else growth(spend["net"], program.growth_per_yuan)
    return dict(zip(spend["account_id"].to_pylist(), value.to_pylist(), strict=True))


def growth(net_fen: pa.Array | pa.ChunkedArray, per_yuan: Fraction) -> pa.Array | pa.ChunkedArray:
    """成长值 ⌊net_fen × per_yuan / 100⌋ for non-negative net spends, in exact integer arithmetic
    (Arrow's integer division truncates, which is the floor here; an overflow raises, never wraps).
    Not in the engine: Ibis compiles `//` to FLOOR(a / b) over doubles."""
    scaled = pc.multiply_checked(net_fen, per_yuan.numerator)
    return pc.divide(scaled, 100 * per_yuan.denominator)


def do_change_tier(
    session: Session, program: Program, account_id: int, to_tier: str, *, reason: str, at: dt.datetime, actor: str
) -> bool:
    """Move an account to `to_tier` with a reason in the tier history; an upgrade starts a
    protection period and issues the tier's exclusive coupons. False if already there."""
    account = lock_account(session, account_id)
    if account.tier == to_tier:
        return False
    target = program.tier(to_tier)
    if target is None:
        raise ValueError(f"program {program.program} has no tier {to_tier!r}")
    upgrade = program.rank(to_tier) > program.rank(account.tier)
    old = account.tier
    session.add(TierChange(account_id=account.id, from_tier=old, to_tier=to_tier, reason=reason, actor=actor, at=at))
    account.tier, account.tier_since = to_tier, at
    if upgrade and program.tiers.protection_months:
        until = add_months(at.date(), program.tiers.protection_months)
        account.tier_protected_until = dt.datetime(until.year, until.month, until.day, tzinfo=dt.UTC)
    audit(
        session,
        at=at,
        actor=actor,
        action="tier.change",
        program=program.program,
        account_id=account.id,
        subject=reason,
        old=old,
        new=to_tier,
    )
    brand = program.brands[0] if len(program.brands) == 1 else None
    append(session, TierChanged(brand, program.program, account.id, old, to_tier, reason), at=at, request_id=None)
    if upgrade and target.coupons:  # tier benefits: exclusive coupons
        for template in target.coupons:
            # A member who already holds the benefit coupon (limit) or an exhausted stock does not
            # stop the upgrade itself; the audit trail of the coupon says what happened.
            try:
                with session.begin_nested():
                    do_issue_coupon(
                        session,
                        program,
                        template,
                        account.id,
                        key=f"tier:{account.id}:{to_tier}:{template}",
                        at=at,
                        actor=actor,
                        via="tier",
                    )
            except (LimitError, StockError):
                pass
    return True


def evaluate(
    app: App,
    program_code: str,
    *,
    at: dt.datetime,
    actor: str = "system",
    downgrade: bool = True,
    account_ids: set[int] | None = None,
) -> TierRun:
    """Put every account (or `account_ids`) in the tier its qualifying value earns: upgrades
    always, downgrades when `downgrade` and the account is out of its protection period."""
    with app.store.unit_of_work() as session:
        program = load_program(session, program_code)
        links = links_table(session, program_code, account_ids)  # the sync's upgrades: the accounts it touched
        query = select(
            LoyaltyAccount.id, LoyaltyAccount.tier, LoyaltyAccount.tier_protected_until, LoyaltyAccount.growth
        ).where(LoyaltyAccount.program == program_code, LoyaltyAccount.status == "active")
        accounts: list[Any] = (
            list(session.execute(query).all())
            if account_ids is None
            else rows_of(session, query, LoyaltyAccount.id, account_ids)
        )
    values = qualifying_values(app, program, links, at)
    up = down = evaluated = 0
    growth_changes: list[dict[str, int]] = []
    with app.store.write_unit() as session:
        for account_id, tier, protected_until, growth in accounts:
            if account_ids is not None and account_id not in account_ids:
                continue
            evaluated += 1
            value = values.get(account_id, 0)
            if value != growth:
                growth_changes.append({"id": account_id, "growth": value})
            target = program.tier_for(value)
            rank, current_rank = program.rank(target.code), program.rank(tier)
            label = "growth 成长值" if program.tiers.basis == "growth" else "spend 消费(分)"
            if rank > current_rank:
                do_change_tier(
                    session,
                    program,
                    account_id,
                    target.code,
                    at=at,
                    actor=actor,
                    reason=f"upgrade: {label} {value} ≥ {target.code} {target.threshold}",
                )
                up += 1
            elif rank < current_rank and downgrade:
                if protected_until is not None and utc(protected_until) > at:
                    continue
                current_tier = program.tier(tier)
                need = current_tier.threshold if current_tier else 0
                do_change_tier(
                    session,
                    program,
                    account_id,
                    target.code,
                    at=at,
                    actor=actor,
                    reason=f"periodic downgrade: {label} {value} < {tier} {need}",
                )
                down += 1
        if growth_changes:
            session.execute(update(LoyaltyAccount), growth_changes)
    return TierRun(evaluated, up, down)
