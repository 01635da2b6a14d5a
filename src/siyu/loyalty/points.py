"""The points ledger (积分账本): earn, redeem, adjust, reverse, expire.

Every write locks the account row first, replays a known idempotency key instead of applying it
twice, appends one `points_txns` row with the balance after it and records which lots it touched
— all in the caller's unit of work, so a crash leaves all or nothing. The ledger is its own audit
trail for points (who: `actor`, when: `created_at`, old → new: `balance_after − points` →
`balance_after`), so no separate audit row is written per transaction.
Invariant (tests/unit/test_ledger_properties.py): balance = Σ lot.remaining − debt = Σ txn.points,
no lot below zero, expiry never takes points that were spent.

The hot path (earn, redeem, adjust) is SQLAlchemy Core on the session's connection (no ORM
flush) and two statements: read the account, the key and (to spend) the open lots in one query,
plan the rows in Python, write the plan (`siyu.loyalty.ledger_sql.apply`). On PostgreSQL the read
takes no lock: the write is one statement guarded by the account row's version as read
(optimistic), which writes nothing when another writer changed the account in between — the
posting is then planned again under `SELECT … FOR UPDATE` (the pessimistic path, also used by
reversals). Holding no lock across the round trips is what lets many workers post at once. On
SQLite the write transaction already holds the database lock (`Store.write_unit`), so the read is
the lock. tests/integration/test_ledger_round_trips.py counts the statements.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, func, literal, literal_column, select
from sqlalchemy.orm import Session

from siyu.loyalty import ledger_sql
from siyu.loyalty import lots as lotrules
from siyu.loyalty.accounts import utc
from siyu.loyalty.errors import (
    IdempotencyConflictError,
    InsufficientPointsError,
    LoyaltyError,
    NotMemberError,
    ReversalError,
)
from siyu.loyalty.ledger_sql import NEW_LOT, Plan
from siyu.loyalty.models import LoyaltyAccount, PointsLot, PointsMove, PointsTxn
from siyu.loyalty.program import Program

KINDS = ("earn", "redeem", "expire", "adjust", "reverse")
A, T, L, M = (cast(Table, m.__table__) for m in (LoyaltyAccount, PointsTxn, PointsLot, PointsMove))

_LOCK = (
    select(A.c.id, A.c.program, A.c.member_no, A.c.balance, A.c.debt).where(A.c.id == bindparam("a")).with_for_update()
)
_REPLAY = select(T.c.id, T.c.account_id, T.c.kind, T.c.points, T.c.balance_after).where(
    T.c.program == bindparam("p"), T.c.idempotency_key == bindparam("k")
)
_LOTS = select(L.c.id, L.c.expires_at, L.c.remaining).where(L.c.account_id == bindparam("a"), L.c.remaining > 0)
# The optimistic read: the account with its row version, the key's earlier transaction (if any)
# and, to spend, the open lots — one query (each row repeats the account and the key's txn).
_ACCOUNT_COLUMNS = (A.c.id.label("a_id"), A.c.program.label("a_program"), A.c.member_no, A.c.balance, A.c.debt)
_KEY_JOIN = and_(T.c.program == bindparam("p"), T.c.idempotency_key == bindparam("k"))


def _read_query(version: str | None, lots: bool) -> Any:
    columns = [
        *_ACCOUNT_COLUMNS,
        literal_column(version).label("version") if version else literal(None).label("version"),
        T.c.id, T.c.account_id, T.c.kind, T.c.points, T.c.balance_after,
    ]  # fmt: skip
    source = A.outerjoin(T, _KEY_JOIN)
    if lots:
        columns += [L.c.id.label("lot_id"), L.c.expires_at, L.c.remaining]
        source = source.outerjoin(L, and_(L.c.account_id == A.c.id, L.c.remaining > 0))
    return select(*columns).select_from(source).where(A.c.id == bindparam("a"))


_READS = {
    (dialect, lots): _read_query(ledger_sql.ROW_VERSION.get(dialect or ""), lots)
    for dialect in (*ledger_sql.ROW_VERSION, None)
    for lots in (False, True)
}
# Read after the lock (a fresh snapshot): the key's earlier transaction, if any, and the open lots.
_REPLAY_AND_LOTS = (
    select(
        T.c.id, T.c.account_id, T.c.kind, T.c.points, T.c.balance_after,
        L.c.id.label("lot_id"), L.c.expires_at, L.c.remaining,
    )
    .select_from(
        A.outerjoin(T, and_(T.c.program == bindparam("p"), T.c.idempotency_key == bindparam("k"))).outerjoin(
            L, and_(L.c.account_id == A.c.id, L.c.remaining > 0)
        )
    )
    .where(A.c.id == bindparam("a"))
)  # fmt: skip


@dataclass(frozen=True)
class Posted:
    """The outcome of a ledger write; `replayed` when the idempotency key had been applied before."""

    txn_id: int
    account_id: int
    kind: str
    points: int
    balance: int
    replayed: bool = False


@dataclass
class _Account:
    """A locked account and the plan of this ledger write (its rows are written by `save`)."""

    conn: Connection
    id: int
    program: str
    member_no: str
    plan: Plan
    lots: dict[int, lotrules.Lot] = field(default_factory=dict)
    lots_loaded: bool = False

    @property
    def balance(self) -> int:
        return self.plan.balance

    def txn(self, kind: str, points: int, *, key: str, at: dt.datetime, actor: str, **where: Any) -> int:
        """Plan a points_txns row; returns its index in the plan."""
        self.plan.balance += points
        self.plan.txns.append(
            {
                "program": self.program, "account_id": self.id, "kind": kind, "points": points,
                "idempotency_key": key, "brand": where.get("brand"), "channel": where.get("channel"),
                "order_id": where.get("order_id"), "reverses_id": where.get("reverses"),
                "reason": where.get("reason"), "actor": actor, "balance_after": self.plan.balance, "created_at": at,
            }
        )  # fmt: skip
        return len(self.plan.txns) - 1

    def load_lots(self) -> list[lotrules.Lot]:
        if not self.lots_loaded:
            for lot_id, expires_at, remaining in self.conn.execute(_LOTS, {"a": self.id}):
                self.lots[lot_id] = lotrules.Lot(lot_id, utc(expires_at) if expires_at else None, remaining)
            self.lots_loaded = True
        return list(self.lots.values())

    def move(self, txn: int, lot_id: int, points: int, remaining: int) -> None:
        """Plan `points` taken from (−) or given back to (+) a lot now holding `remaining`."""
        if remaining + points < 0:
            raise AssertionError(f"lot {lot_id} would go below zero")
        self.plan.moves.append((txn, lot_id, points))
        if lot_id in self.lots:
            lot = self.lots[lot_id]
            self.lots[lot_id] = lotrules.Lot(lot.id, lot.expires_at, lot.remaining + points)

    def save(self, session: Session) -> list[int]:
        """Write the plan; the ids of its transactions."""
        ids = ledger_sql.apply(self.conn, self.plan)
        if ids is None:
            raise _AccountChangedError
        # An ORM copy of the account in this session would now show an old balance.
        cached = session.identity_map.get(session.identity_key(LoyaltyAccount, self.id))
        if cached is not None:
            session.expire(cached, ["balance", "debt"])
        return ids


class _AccountChangedError(Exception):
    """The account changed between the optimistic read and the guarded write (nothing was written)."""


def _read(session: Session, account_id: int, program: str, key: str, *, lots: bool) -> tuple[_Account, Any]:
    """The account (unlocked on PostgreSQL, with its row version), the key's txn row or None, and
    — with `lots` — the open lots, in one statement."""
    session.flush()
    conn = session.connection()
    dialect = conn.dialect.name
    rows = conn.execute(_READS[dialect if dialect in ledger_sql.ROW_VERSION else None, lots], {
        "a": account_id, "p": program, "k": key,
    }).all()  # fmt: skip
    if not rows:
        raise NotMemberError(f"no loyalty account {account_id}")
    r = rows[0]
    account = _Account(conn, r.a_id, r.a_program, r.member_no, Plan(r.a_id, r.balance, r.debt, version=r.version))
    if lots:
        for row in rows:
            if row.lot_id is not None:
                account.lots[row.lot_id] = lotrules.Lot(
                    row.lot_id, utc(row.expires_at) if row.expires_at else None, row.remaining
                )
        account.lots_loaded = True
    return account, r


def _post(
    session: Session,
    program: Program,
    account_id: int,
    *,
    key: str,
    kind: str,
    points: int,
    lots: bool,
    plan: Callable[[_Account], int],
) -> Posted:
    """Read, replay a known key or plan (`plan` returns the index of the posting's txn) and write:
    optimistically first where the database has row versions, under the row lock if that lost."""
    for optimistic in (True, False):
        if optimistic:
            account, seen = _read(session, account_id, program.program, key, lots=lots)
            replayed = _check_replay(account, key, seen, kind, points)
        else:
            account = _lock(session, account_id)
            load = _replay_with_lots if lots else _replay
            replayed = load(account, program.program, key, kind, points)
        if replayed is not None:
            return replayed
        txn = plan(account)
        try:
            ids = account.save(session)
        except _AccountChangedError:
            continue
        return Posted(ids[txn], account.id, kind, account.plan.txns[txn]["points"], account.balance)
    raise AssertionError("a posting under the row lock cannot lose to another writer")


def _lock(session: Session, account_id: int) -> _Account:
    """The account, locked until commit (SELECT … FOR UPDATE on PostgreSQL; on SQLite the write
    transaction holds the database lock). Concurrent writers to one account queue here."""
    session.flush()  # ORM changes made earlier in this unit of work come first
    conn = session.connection()
    row = conn.execute(_LOCK, {"a": account_id}).first()
    if row is None:
        raise NotMemberError(f"no loyalty account {account_id}")
    return _Account(conn, row.id, row.program, row.member_no, Plan(row.id, row.balance, row.debt))


def _check_replay(account: _Account, key: str, txn: Any, kind: str, points: int | None) -> Posted | None:
    if txn is None or txn.id is None:
        return None
    if txn.account_id != account.id or txn.kind != kind or (points is not None and abs(txn.points) != abs(points)):
        raise IdempotencyConflictError(
            f"idempotency key {key!r} was already used for a different request "
            f"({txn.kind} {txn.points} on account {txn.account_id}); use a new key"
        )
    return Posted(txn.id, txn.account_id, txn.kind, txn.points, txn.balance_after, replayed=True)


def _replay(account: _Account, program: str, key: str, kind: str, points: int | None) -> Posted | None:
    return _check_replay(account, key, account.conn.execute(_REPLAY, {"p": program, "k": key}).first(), kind, points)


def _replay_with_lots(account: _Account, program: str, key: str, kind: str, points: int) -> Posted | None:
    rows = account.conn.execute(_REPLAY_AND_LOTS, {"p": program, "k": key, "a": account.id}).all()
    if (seen := _check_replay(account, key, rows[0] if rows else None, kind, points)) is not None:
        return seen
    for row in rows:
        if row.lot_id is not None:
            account.lots[row.lot_id] = lotrules.Lot(
                row.lot_id, utc(row.expires_at) if row.expires_at else None, row.remaining
            )
    account.lots_loaded = True
    return None


def _expire_due(account: _Account, at: dt.datetime) -> None:
    """Expire the account's lots that are past their date before spending (the nightly run may
    not have reached them yet), so a spend never uses points that should be gone."""
    due = [lot for lot in account.load_lots() if lot.expires_at is not None and lot.expires_at <= at and lot.remaining]
    if not due:
        return
    # Unique per run, not derived from the lots: points given back to an expired lot (a
    # redemption reversed) can fall due again at the same instant.
    key = f"expire:{account.id}:{at.isoformat()}:{uuid.uuid4().hex[:16]}"
    txn = account.txn(
        "expire", -sum(lot.remaining for lot in due), key=key, at=at, actor="system", reason="points expired 积分过期"
    )
    for lot in due:
        account.move(txn, lot.id, -lot.remaining, lot.remaining)


def _take(account: _Account, txn: int, points: int) -> None:
    """Take `points` from the account's lots first-to-expire."""
    for lot_id, n in lotrules.take(account.load_lots(), points):
        account.move(txn, lot_id, -n, account.lots[lot_id].remaining)


def do_earn(
    session: Session,
    program: Program,
    account_id: int,
    points: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    brand: str | None = None,
    channel: str | None = None,
    order_id: str | None = None,
    reason: str | None = None,
    expires_at: dt.datetime | None = None,
    kind: str = "earn",
) -> Posted:
    """Credit `points` in a new lot expiring by the program's policy (or at `expires_at`); owed
    points (debt from an earlier reversal) are paid back from it first."""
    if points <= 0:
        raise LoyaltyError("points to earn must be a positive whole number")
    expiry = expires_at if expires_at is not None else lotrules.expiry_of(program.points.expiry, at, program.timezone)

    def earn(account: _Account) -> int:
        txn = account.txn(
            kind, points, key=key, at=at, actor=actor, brand=brand, channel=channel, order_id=order_id, reason=reason
        )
        plan = account.plan
        paid = min(plan.debt, points)
        plan.debt -= paid
        plan.new_lot = {
            "txn": txn, "account_id": account.id, "brand": brand, "earned_at": at, "expires_at": expiry,
            "points": points, "remaining": points - paid,
        }  # fmt: skip
        # The creating move records what reached the lot (points − debt paid); it is not re-applied.
        plan.moves.append((txn, NEW_LOT, points - paid))
        return txn

    return _post(session, program, account_id, key=key, kind=kind, points=points, lots=False, plan=earn)


def do_redeem(
    session: Session,
    program: Program,
    account_id: int,
    points: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    brand: str | None = None,
    channel: str | None = None,
    order_id: str | None = None,
    reason: str | None = None,
    kind: str = "redeem",
) -> Posted:
    """Spend `points` first-to-expire; refuses (nothing changes) when the balance is short."""
    if points <= 0:
        raise LoyaltyError("points to redeem must be a positive whole number")

    def redeem(account: _Account) -> int:
        _expire_due(account, at)
        if account.balance < points:
            raise InsufficientPointsError(
                f"account {account.member_no} has {account.balance} points, {points} needed 积分不足"
            )
        txn = account.txn(
            kind, -points, key=key, at=at, actor=actor, brand=brand, channel=channel, order_id=order_id, reason=reason
        )
        _take(account, txn, points)
        return txn

    return _post(session, program, account_id, key=key, kind=kind, points=points, lots=True, plan=redeem)


def do_adjust(
    session: Session,
    program: Program,
    account_id: int,
    points: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    reason: str,
) -> Posted:
    """A manual correction (积分调整) by an operator, with a required reason. Positive adjustments
    make a lot like an earning; negative ones spend first-to-expire and never overdraw."""
    if not reason.strip():
        raise LoyaltyError("an adjustment needs a reason")
    if points == 0:
        raise LoyaltyError("an adjustment of 0 points changes nothing")
    if points > 0:
        return do_earn(session, program, account_id, points, key=key, at=at, actor=actor, reason=reason, kind="adjust")
    return do_redeem(session, program, account_id, -points, key=key, at=at, actor=actor, reason=reason, kind="adjust")


def reversed_so_far(session: Session, txn_id: int) -> int:
    """Points of `txn_id` already undone (≥ 0)."""
    total = (
        session.connection()
        .execute(select(func.coalesce(func.sum(T.c.points), 0)).where(T.c.reverses_id == txn_id))
        .scalar_one()
    )
    return abs(int(total or 0))


def do_reverse(
    session: Session,
    program: Program,
    txn_id: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    points: int | None = None,
    reason: str | None = None,
) -> Posted:
    """Undo all (default) or `points` of an earlier earn, redeem or adjustment.

    Reversing a credit takes back first what it paid of a debt (owed again), then from its own
    lot, then from other lots first-to-expire; what the balance cannot cover follows the program's
    `reversal_exceeds_balance` policy (negative: owed and paid back from the next earnings;
    clamp: reverse only what is there; reject: refuse). Reversing a redemption restores the points
    to the lots they came from (the last taken first), with their original expiry.
    """
    session.flush()
    original = session.connection().execute(select(T).where(T.c.id == txn_id)).first()
    if original is None or original.program != program.program:
        raise ReversalError(f"no points transaction {txn_id} in program {program.program!r}")
    if original.kind not in ("earn", "redeem", "adjust"):
        raise ReversalError(f"a {original.kind} transaction cannot be reversed")
    account = _lock(session, original.account_id)
    if (seen := _replay(account, program.program, key, "reverse", None)) is not None:
        return seen
    left = abs(original.points) - reversed_so_far(session, txn_id)
    n = left if points is None else points
    if n <= 0 or n > left:
        raise ReversalError(f"transaction {txn_id} has {left} points left to reverse, {n} asked")
    where = {
        "brand": original.brand,
        "channel": original.channel,
        "order_id": original.order_id,
        "reason": reason,
        "reverses": original.id,
    }
    if original.points > 0:
        txn, change = _reverse_credit(
            account, program, original, n, abs(original.points) - left, key=key, at=at, actor=actor, where=where
        )
        ids = account.save(session)
        return Posted(ids[txn], account.id, "reverse", change, account.balance)
    txn = account.txn("reverse", n, key=key, at=at, actor=actor, **where)
    net: dict[int, int] = {}
    moves = account.conn.execute(
        select(M.c.lot_id, M.c.points)
        .join(T, T.c.id == M.c.txn_id)
        .where((T.c.id == original.id) | (T.c.reverses_id == original.id))
        .order_by(M.c.id)
    )
    for lot_id, moved in moves:
        net[lot_id] = net.get(lot_id, 0) - moved
    taken = [(lot_id, k) for lot_id, k in net.items() if k > 0]
    remaining = {
        lot_id: n for lot_id, n in account.conn.execute(select(L.c.id, L.c.remaining).where(L.c.id.in_(list(net))))
    }
    for lot_id, k in lotrules.give_back(taken, n):
        account.move(txn, lot_id, k, remaining[lot_id])
    ids = account.save(session)
    return Posted(ids[txn], account.id, "reverse", n, account.balance)


def _reverse_credit(
    account: _Account,
    program: Program,
    original: Any,
    n: int,
    done: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    where: dict[str, Any],
) -> tuple[int, int]:
    """Plan taking back `n` points of a credit of which `done` were reversed before (see
    do_reverse); returns the reversal's txn index and its change of the balance."""
    created = account.conn.execute(
        select(M.c.lot_id, M.c.points).where(M.c.txn_id == original.id).order_by(M.c.id).limit(1)
    ).first()
    paid = original.points - created.points if created is not None else 0
    # Earlier reversals owed the paid part again before anything else, so `done` covers it first.
    owed_again = min(n, paid - min(paid, done))
    lots = account.load_lots()
    own = account.lots.get(created.lot_id) if created is not None else None
    others = [lot for lot in lots if own is None or lot.id != own.id]
    from_own = min(n - owed_again, own.remaining) if own is not None else 0
    from_others = min(n - owed_again - from_own, sum(lot.remaining for lot in others))
    short = n - owed_again - from_own - from_others
    policy = program.points.reversal_exceeds_balance
    if short and policy == "reject":
        raise ReversalError(
            f"reversing {n} points needs {short} more than account {account.member_no} holds; "
            "the program's policy is `reject`"
        )
    effective = n - short if policy == "clamp" else n
    txn = account.txn("reverse", -effective, key=key, at=at, actor=actor, **where)
    if own is not None and from_own:
        account.move(txn, own.id, -from_own, own.remaining)
    if from_others:
        for lot_id, k in lotrules.take(others, from_others):
            account.move(txn, lot_id, -k, account.lots[lot_id].remaining)
    account.plan.debt += owed_again + (short if policy == "negative" else 0)
    return txn, -effective


def history(session: Session, account_id: int, limit: int = 100, before: int | None = None) -> list[PointsTxn]:
    query = select(PointsTxn).where(PointsTxn.account_id == account_id)
    if before is not None:
        query = query.where(PointsTxn.id < before)
    return list(session.scalars(query.order_by(PointsTxn.id.desc()).limit(limit)))


def open_lots(session: Session, account_id: int) -> list[PointsLot]:
    """The account's lots holding points, in the order a spend would use them."""
    lots = list(
        session.scalars(
            select(PointsLot)
            .where(PointsLot.account_id == account_id, PointsLot.remaining > 0)
            .execution_options(populate_existing=True)
        )
    )
    views = {lot.id: lot for lot in lots}
    order = lotrules.spend_order(
        [lotrules.Lot(lot.id, utc(lot.expires_at) if lot.expires_at else None, lot.remaining) for lot in lots]
    )
    return [views[v.id] for v in order]
