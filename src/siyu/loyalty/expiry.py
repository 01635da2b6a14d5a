"""The nightly expiry run (积分过期): set-based SQL over account-id ranges, never a loop over lots.

Each range is one transaction. It first locks the accounts of the range that have due lots (in id
order, like every ledger write, so it cannot deadlock with redemptions) — a statement of its own,
so that the next statement's snapshot (READ COMMITTED) sees what concurrent redemptions committed
while it waited (a redemption expires the due lots of its account on the way, under the same
lock). Then it appends one `expire` transaction per account with the sum of its due lots (its
`balance_after` is the new balance), records the lot moves, zeroes the lots and lowers the
balances. A lot is due when `expires_at <= at` and it still holds points: points already spent are
never expired. The ledger is the audit trail of points (`siyu.loyalty.points`): no audit rows.

PostgreSQL runs the writes of a range as ONE statement (data-modifying CTEs, as
`siyu.loyalty.ledger_sql` does for a single ledger write); other databases (SQLite) as a few
plain set-based statements. Dialects are chosen by `ledger_sql.SINGLE_STATEMENT`.

Re-running for the same instant finds nothing due and changes nothing (unless points were given
back to an expired lot since: those expire then, under keys of the new run).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast as typecast

from sqlalchemy import (
    Connection,
    DateTime,
    String,
    Table,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from siyu.loyalty.ledger_sql import SINGLE_STATEMENT
from siyu.loyalty.models import LoyaltyAccount, PointsLot, PointsMove, PointsTxn
from siyu.store.db import Store

A, T, L, M = (typecast(Table, m.__table__) for m in (LoyaltyAccount, PointsTxn, PointsLot, PointsMove))
REASON = "points expired 积分过期"
WORK_MEM = "64MB"  # for the hashes and the materialized due lots of a range (PostgreSQL)


@dataclass(frozen=True)
class ExpiryRun:
    accounts: int
    points: int
    lots: int


_IN_RANGE = and_(A.c.program == bindparam("program"), A.c.id >= bindparam("lo"), A.c.id < bindparam("hi"))
_DUE_LOT = and_(
    L.c.expires_at <= bindparam("at", type_=DateTime(timezone=True)),
    L.c.remaining > 0,
    L.c.account_id >= bindparam("lo"),
    L.c.account_id < bindparam("hi"),
)
# The accounts of the range with due lots, locked in id order: its own statement, first.
# (counted on the server: the locks are the point, not the ids)
_LOCK = select(func.count()).select_from(
    select(A.c.id)
    .where(_IN_RANGE, exists().where(L.c.account_id == A.c.id, _DUE_LOT))
    .order_by(A.c.id)
    .with_for_update()
    .subquery()
)

# PostgreSQL: everything else in one statement. Every CTE sees the snapshot taken after the lock.
# `due` is read once (MATERIALIZED) and feeds the balances, the txns, the moves and the lots.
# The guard `a.xmin = seen`: an account the lock did not cover (its lot fell due after the lock
# statement, e.g. points given back to an expired lot) may be in the middle of a redemption; if
# that commits first, the UPDATE re-checks the new row version, whose xmin differs — the account
# is skipped (its due lots stay for the redemption or the next run) instead of being expired from
# a stale view of its lots. Lots are only zeroed for the accounts updated.
_PG_EXPIRE = text(
    """
    WITH due AS MATERIALIZED (
        SELECT l.id, l.account_id, l.remaining, a.xmin::text AS seen
        FROM points_lots l JOIN loyalty_accounts a ON a.id = l.account_id
        WHERE a.program = :program AND a.id >= :lo AND a.id < :hi
          AND l.account_id >= :lo AND l.account_id < :hi AND l.expires_at <= :at AND l.remaining > 0
    ),
    per AS (
        SELECT account_id, seen, SUM(remaining)::bigint AS pts, COUNT(*) AS n FROM due GROUP BY account_id, seen
    ),
    acc AS (
        UPDATE loyalty_accounts a SET balance = a.balance - per.pts FROM per
        WHERE a.id = per.account_id AND a.xmin::text = per.seen AND a.id >= :lo AND a.id < :hi
        RETURNING a.id, a.balance, per.pts, per.n
    ),
    t AS (
        INSERT INTO points_txns (program, account_id, kind, points, idempotency_key, actor, reason,
                                 balance_after, created_at)
        SELECT :program, acc.id, 'expire', -acc.pts, :prefix || acc.id, :actor, :reason, acc.balance, :at
        FROM acc
        RETURNING id, account_id
    ),
    mv AS (
        INSERT INTO points_lot_moves (txn_id, lot_id, points)
        SELECT t.id, due.id, -due.remaining FROM due JOIN t ON t.account_id = due.account_id
    ),
    lu AS (
        UPDATE points_lots l SET remaining = 0
        FROM due JOIN acc ON acc.id = due.account_id
        WHERE l.id = due.id AND l.account_id >= :lo AND l.account_id < :hi
    )
    SELECT COUNT(*), COALESCE(SUM(pts), 0), COALESCE(SUM(n), 0) FROM acc
    """
).bindparams(bindparam("at", type_=DateTime(timezone=True)))


def do_expire(
    store: Store,
    program: str,
    *,
    at: dt.datetime,
    actor: str = "system",
    batch: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> ExpiryRun:
    """Expire every lot of `program` due at `at`; returns how many accounts, points and lots.
    `batch`: account ids per transaction — the accounts of a range stay locked until it commits
    (50,000 ids take ~3 s on PostgreSQL; larger ranges were no faster)."""
    with store.unit_of_work() as session:
        lo, hi = session.execute(select(func.min(A.c.id), func.max(A.c.id)).where(A.c.program == program)).one()
    if lo is None:
        return ExpiryRun(0, 0, 0)
    one_statement = store.engine.dialect.name in SINGLE_STATEMENT
    # The keys name the run: a lot can fall due again at the same instant (a redemption that took
    # from it reversed after it expired), and a second run must not collide with the first.
    prefix = f"expire:{at.isoformat()}:{uuid.uuid4().hex[:12]}:"
    accounts = points = lots = 0
    for start in range(lo, hi + 1, batch):
        params = {"program": program, "lo": start, "hi": start + batch, "at": at, "actor": actor, "prefix": prefix}
        with store.write_unit() as session:
            conn = session.connection()
            if one_statement:
                conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
            if conn.execute(_LOCK, params).scalar_one():
                n_accounts, n_points, n_lots = (
                    _one_statement(conn, params) if one_statement else _statements(conn, params)
                )
                accounts += n_accounts
                points += n_points
                lots += n_lots
        if progress:
            progress(min(start + batch, hi + 1) - lo, hi + 1 - lo)
    return ExpiryRun(accounts, points, lots)


def _one_statement(conn: Connection, params: dict[str, object]) -> tuple[int, int, int]:
    n_accounts, n_points, n_lots = conn.execute(_PG_EXPIRE, params | {"reason": REASON}).one()
    return int(n_accounts), int(n_points), int(n_lots)


def _statements(conn: Connection, params: dict[str, object]) -> tuple[int, int, int]:
    """INSERT the txns FROM the grouped due lots (RETURNING account and points), the moves (each
    lot joined to its txn by the run's key), the balances, then zero the lots."""
    when = bindparam("at", type_=DateTime(timezone=True))
    per = (
        select(L.c.account_id, func.sum(L.c.remaining).label("pts")).where(_DUE_LOT).group_by(L.c.account_id).subquery()
    )
    key = bindparam("prefix", type_=String) + cast(per.c.account_id, String)
    added = conn.execute(
        insert(T)
        .from_select(
            ["program", "account_id", "kind", "points", "idempotency_key", "actor", "reason", "balance_after",
             "created_at"],
            select(
                A.c.program, per.c.account_id, literal("expire"), -per.c.pts, key, bindparam("actor", type_=String),
                literal(REASON), A.c.balance - per.c.pts, when,
            ).join(A, and_(A.c.id == per.c.account_id, _IN_RANGE)),
        )
        .returning(T.c.account_id, T.c.points),
        params,
    ).all()  # fmt: skip
    if not added:
        return 0, 0, 0
    lot_key = bindparam("prefix", type_=String) + cast(L.c.account_id, String)
    conn.execute(
        insert(M).from_select(
            ["txn_id", "lot_id", "points"],
            select(T.c.id, L.c.id, -L.c.remaining)
            .join(
                T,
                and_(
                    T.c.program == bindparam("program"),
                    T.c.idempotency_key == lot_key,
                    T.c.account_id == L.c.account_id,
                ),
            )
            .where(_DUE_LOT),
        ),
        params,
    )
    conn.execute(
        update(A).where(A.c.id == bindparam("b_account")).values(balance=A.c.balance + bindparam("b_points")),
        [{"b_account": account, "b_points": pts} for account, pts in added],
    )
    n_lots = conn.execute(update(L).where(_DUE_LOT).values(remaining=0), params).rowcount
    return len(added), -sum(int(pts) for _, pts in added), int(n_lots)
