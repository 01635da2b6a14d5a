"""The nightly expiry run (积分过期): set-based SQL over account-id ranges, never a loop over lots.

Each range is one transaction that locks the accounts it touches (in id order, like every ledger
write, so it cannot deadlock with redemptions), appends one `expire` transaction per account with
the sum of its due lots, records the lot moves, zeroes the lots and lowers the balances. A lot is
due when `expires_at <= at` and it still holds points: points already spent are never expired.
Re-running for the same instant finds nothing due and changes nothing (unless points were given
back to an expired lot since: those expire then).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import DateTime, String, and_, cast, func, insert, literal, select, update

from siyu.loyalty.models import LoyaltyAccount, LoyaltyAudit, PointsLot, PointsMove, PointsTxn
from siyu.store.db import Store


@dataclass(frozen=True)
class ExpiryRun:
    accounts: int
    points: int
    lots: int


def do_expire(
    store: Store,
    program: str,
    *,
    at: dt.datetime,
    actor: str = "system",
    batch: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> ExpiryRun:
    """Expire every lot of `program` due at `at`; returns how many accounts, points and lots."""
    with store.unit_of_work() as session:
        lo, hi = session.execute(
            select(func.min(LoyaltyAccount.id), func.max(LoyaltyAccount.id)).where(LoyaltyAccount.program == program)
        ).one()
    if lo is None:
        return ExpiryRun(0, 0, 0)
    # The keys name the run: a lot can fall due again at the same instant (a redemption that took
    # from it reversed after it expired), and a second run must not collide with the first.
    prefix = f"expire:{at.isoformat()}:{uuid.uuid4().hex[:12]}:"
    when = literal(at, DateTime(timezone=True))
    accounts = points = lots = 0
    for start in range(lo, hi + 1, batch):
        end = start + batch
        in_range = and_(LoyaltyAccount.program == program, LoyaltyAccount.id >= start, LoyaltyAccount.id < end)
        due_lot = and_(
            PointsLot.expires_at <= when,
            PointsLot.remaining > 0,
            PointsLot.account_id >= start,
            PointsLot.account_id < end,
        )
        with store.write_unit() as session:
            due_accounts = select(PointsLot.account_id).where(due_lot).distinct()
            session.execute(
                select(LoyaltyAccount.id)
                .where(in_range, LoyaltyAccount.id.in_(due_accounts))
                .order_by(LoyaltyAccount.id)
                .with_for_update()
            )
            due = (
                select(PointsLot.account_id, func.sum(PointsLot.remaining).label("pts"), func.count().label("n"))
                .where(due_lot)
                .group_by(PointsLot.account_id)
                .subquery()
            )
            key = literal(prefix) + cast(due.c.account_id, String)
            session.execute(
                insert(PointsTxn).from_select(
                    [
                        "program",
                        "account_id",
                        "kind",
                        "points",
                        "idempotency_key",
                        "actor",
                        "reason",
                        "balance_after",
                        "created_at",
                    ],
                    select(
                        literal(program),
                        due.c.account_id,
                        literal("expire"),
                        -due.c.pts,
                        key,
                        literal(actor),
                        literal("points expired 积分过期"),
                        LoyaltyAccount.balance - due.c.pts,
                        when,
                    ).join(LoyaltyAccount, and_(LoyaltyAccount.id == due.c.account_id, in_range)),
                )
            )
            mine = select(PointsTxn.account_id).where(
                PointsTxn.program == program,
                PointsTxn.idempotency_key.startswith(prefix, autoescape=True),
                PointsTxn.account_id >= start,
                PointsTxn.account_id < end,
            )
            # (the rowcount of INSERT … SELECT is -1 on PostgreSQL with psycopg: count what was written)
            n_accounts, n_points = session.execute(
                select(func.count(), func.coalesce(func.sum(PointsTxn.points), 0)).where(
                    PointsTxn.id.in_(mine.with_only_columns(PointsTxn.id))
                )
            ).one()
            if not n_accounts:
                continue
            lot_key = literal(prefix) + cast(PointsLot.account_id, String)
            session.execute(
                insert(PointsMove).from_select(
                    ["txn_id", "lot_id", "points"],
                    select(PointsTxn.id, PointsLot.id, -PointsLot.remaining)
                    .join(
                        PointsTxn,
                        and_(
                            PointsTxn.program == program,
                            PointsTxn.account_id == PointsLot.account_id,
                            PointsTxn.idempotency_key == lot_key,
                        ),
                    )
                    .where(due_lot),
                )
            )
            expired = (
                select(PointsTxn.points)
                .where(
                    PointsTxn.program == program,
                    PointsTxn.account_id == LoyaltyAccount.id,
                    PointsTxn.idempotency_key == literal(prefix) + cast(LoyaltyAccount.id, String),
                )
                .scalar_subquery()
            )
            session.execute(
                insert(LoyaltyAudit).from_select(
                    ["at", "actor", "action", "program", "account_id", "subject", "new"],
                    select(
                        when,
                        literal(actor),
                        literal("points.expire"),
                        literal(program),
                        PointsTxn.account_id,
                        PointsTxn.idempotency_key,
                        cast(PointsTxn.points, String),
                    ).where(PointsTxn.id.in_(mine.with_only_columns(PointsTxn.id))),
                )
            )
            session.execute(
                update(LoyaltyAccount)
                .where(in_range, LoyaltyAccount.id.in_(mine))
                .values(balance=LoyaltyAccount.balance + expired)
            )
            session.execute(update(PointsLot).where(due_lot).values(remaining=0))
            n_lots = session.scalar(
                select(func.count())
                .select_from(PointsMove)
                .where(PointsMove.txn_id.in_(mine.with_only_columns(PointsTxn.id)))
            )
            accounts += int(n_accounts)
            points += -int(n_points)
            lots += int(n_lots or 0)
        if progress:
            progress(min(end, hi + 1) - lo, hi + 1 - lo)
    return ExpiryRun(accounts, points, lots)
