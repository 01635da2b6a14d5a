"""The points ledger (积分账本): earn, redeem, adjust, reverse, expire.

Every write locks the account row first, replays a known idempotency key instead of applying it
twice, appends one `points_txns` row with the balance after it, records which lots it touched and
writes an audit row — all in the caller's unit of work, so a crash leaves all or nothing.
Invariant (checked by tests/unit/test_ledger_properties.py): balance = Σ lot.remaining − debt,
no lot below zero, expiry never takes points that were spent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.loyalty import lots as lotrules
from siyu.loyalty.accounts import lock_account, utc
from siyu.loyalty.audit import audit
from siyu.loyalty.errors import (
    IdempotencyConflictError,
    InsufficientPointsError,
    LoyaltyError,
    ReversalError,
)
from siyu.loyalty.models import LoyaltyAccount, PointsLot, PointsMove, PointsTxn
from siyu.loyalty.program import Program

KINDS = ("earn", "redeem", "expire", "adjust", "reverse")


@dataclass(frozen=True)
class Posted:
    """The outcome of a ledger write; `replayed` when the idempotency key had been applied before."""

    txn_id: int
    account_id: int
    kind: str
    points: int
    balance: int
    replayed: bool = False


def _replay(session: Session, program: str, key: str, account_id: int, kind: str, points: int | None) -> Posted | None:
    txn = session.scalar(select(PointsTxn).where(PointsTxn.program == program, PointsTxn.idempotency_key == key))
    if txn is None:
        return None
    if txn.account_id != account_id or txn.kind != kind or (points is not None and abs(txn.points) != abs(points)):
        raise IdempotencyConflictError(
            f"idempotency key {key!r} was already used for a different request "
            f"({txn.kind} {txn.points} on account {txn.account_id}); use a new key"
        )
    return Posted(txn.id, txn.account_id, txn.kind, txn.points, txn.balance_after, replayed=True)


def _lots(session: Session, account_id: int) -> list[PointsLot]:
    return list(session.scalars(select(PointsLot).where(PointsLot.account_id == account_id, PointsLot.remaining > 0)))


def _txn(
    session: Session,
    account: LoyaltyAccount,
    kind: str,
    points: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    brand: str | None = None,
    channel: str | None = None,
    order_id: str | None = None,
    reason: str | None = None,
    reverses: int | None = None,
) -> PointsTxn:
    before = account.balance
    account.balance = before + points
    txn = PointsTxn(
        program=account.program,
        account_id=account.id,
        kind=kind,
        points=points,
        idempotency_key=key,
        brand=brand,
        channel=channel,
        order_id=order_id,
        reverses_id=reverses,
        reason=reason,
        actor=actor,
        balance_after=account.balance,
        created_at=at,
    )
    session.add(txn)
    session.flush()
    audit(
        session,
        at=at,
        actor=actor,
        action=f"points.{kind}",
        program=account.program,
        account_id=account.id,
        subject=key,
        old={"balance": before},
        new={"balance": account.balance, "points": points},
    )
    return txn


def _move(session: Session, txn: PointsTxn, lot: PointsLot, points: int) -> None:
    lot.remaining += points
    if lot.remaining < 0:
        raise AssertionError(f"lot {lot.id} would go below zero")
    session.add(PointsMove(txn_id=txn.id, lot_id=lot.id, points=points))


def _expire_due(session: Session, account: LoyaltyAccount, open_lots: list[PointsLot], at: dt.datetime) -> None:
    """Expire the account's lots that are past their date before spending (the nightly run may
    not have reached them yet), so a spend never uses points that should be gone."""
    due = [lot for lot in open_lots if lot.expires_at is not None and utc(lot.expires_at) <= at]
    if not due:
        return
    txn = _txn(
        session,
        account,
        "expire",
        -sum(lot.remaining for lot in due),
        # Unique per run, not derived from the lots: points given back to an expired lot (a
        # redemption reversed) can fall due again at the same instant.
        key=f"expire:{account.id}:{at.isoformat()}:{uuid.uuid4().hex[:16]}",
        at=at,
        actor="system",
        reason="points expired",
    )
    for lot in due:
        _move(session, txn, lot, -lot.remaining)


def _add_lot(
    session: Session,
    account: LoyaltyAccount,
    txn: PointsTxn,
    points: int,
    expires_at: dt.datetime | None,
    at: dt.datetime,
    brand: str | None,
) -> None:
    """A new lot; owed points (debt from an earlier reversal) are paid back from it first."""
    paid = min(account.debt, points)
    account.debt -= paid
    lot = PointsLot(
        account_id=account.id,
        txn_id=txn.id,
        brand=brand,
        earned_at=at,
        expires_at=expires_at,
        points=points,
        remaining=points - paid,
    )
    session.add(lot)
    session.flush()
    session.add(PointsMove(txn_id=txn.id, lot_id=lot.id, points=points - paid))


def _take(session: Session, txn: PointsTxn, lots: list[PointsLot], points: int) -> None:
    """Take `points` from `lots` (the account's lots, loaded under its lock) first-to-expire."""
    open_lots = [lot for lot in lots if lot.remaining > 0]
    by_id = {lot.id: lot for lot in open_lots}
    views = [lotrules.Lot(lot.id, utc(lot.expires_at) if lot.expires_at else None, lot.remaining) for lot in open_lots]
    for lot_id, n in lotrules.take(views, points):
        _move(session, txn, by_id[lot_id], -n)


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
    """Credit `points` in a new lot expiring by the program's policy (or at `expires_at`)."""
    if points <= 0:
        raise LoyaltyError("points to earn must be a positive whole number")
    account = lock_account(session, account_id)
    if (seen := _replay(session, program.program, key, account_id, kind, points)) is not None:
        return seen
    txn = _txn(
        session,
        account,
        kind,
        points,
        key=key,
        at=at,
        actor=actor,
        brand=brand,
        channel=channel,
        order_id=order_id,
        reason=reason,
    )
    expiry = expires_at if expires_at is not None else lotrules.expiry_of(program.points.expiry, at, program.timezone)
    _add_lot(session, account, txn, points, expiry, at, brand)
    return Posted(txn.id, account.id, kind, points, account.balance)


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
    account = lock_account(session, account_id)
    if (seen := _replay(session, program.program, key, account_id, kind, points)) is not None:
        return seen
    lots = _lots(session, account.id)
    _expire_due(session, account, lots, at)
    if account.balance < points:
        raise InsufficientPointsError(
            f"account {account.member_no} has {account.balance} points, {points} needed 积分不足"
        )
    txn = _txn(
        session,
        account,
        kind,
        -points,
        key=key,
        at=at,
        actor=actor,
        brand=brand,
        channel=channel,
        order_id=order_id,
        reason=reason,
    )
    _take(session, txn, lots, points)  # the lots just expired hold 0 now
    return Posted(txn.id, account.id, kind, -points, account.balance)


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
    total = session.scalar(select(func.coalesce(func.sum(PointsTxn.points), 0)).where(PointsTxn.reverses_id == txn_id))
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

    Reversing an earning takes the points back from its own lot first, then from other lots
    first-to-expire; what the balance cannot cover follows the program's
    `reversal_exceeds_balance` policy (negative: owed and paid back from the next earnings;
    clamp: reverse only what is there; reject: refuse). Reversing a redemption restores the points
    to the lots they came from, with their original expiry.
    """
    original = session.get(PointsTxn, txn_id)
    if original is None or original.program != program.program:
        raise ReversalError(f"no points transaction {txn_id} in program {program.program!r}")
    if original.kind not in ("earn", "redeem", "adjust"):
        raise ReversalError(f"a {original.kind} transaction cannot be reversed")
    account = lock_account(session, original.account_id)
    if (seen := _replay(session, program.program, key, account.id, "reverse", None)) is not None:
        return seen
    left = abs(original.points) - reversed_so_far(session, txn_id)
    n = left if points is None else points
    if n <= 0 or n > left:
        raise ReversalError(f"transaction {txn_id} has {left} points left to reverse, {n} asked")
    if original.points > 0:
        done = abs(original.points) - left
        return _reverse_credit(session, program, account, original, n, done, key=key, at=at, actor=actor, reason=reason)
    txn = _txn(
        session,
        account,
        "reverse",
        n,
        key=key,
        at=at,
        actor=actor,
        brand=original.brand,
        channel=original.channel,
        order_id=original.order_id,
        reason=reason,
        reverses=original.id,
    )
    net: dict[int, int] = {}
    moves = session.execute(
        select(PointsMove.lot_id, PointsMove.points)
        .join(PointsTxn, PointsTxn.id == PointsMove.txn_id)
        .where((PointsTxn.id == original.id) | (PointsTxn.reverses_id == original.id))
        .order_by(PointsMove.id)
    )
    for lot_id, moved in moves:
        net[lot_id] = net.get(lot_id, 0) - moved
    taken = [(lot_id, k) for lot_id, k in net.items() if k > 0]
    for lot_id, k in lotrules.give_back(taken, n):
        lot = session.get(PointsLot, lot_id)
        assert lot is not None
        _move(session, txn, lot, k)
    return Posted(txn.id, account.id, "reverse", n, account.balance)


def _reverse_credit(
    session: Session,
    program: Program,
    account: LoyaltyAccount,
    original: PointsTxn,
    n: int,
    done: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    reason: str | None,
) -> Posted:
    """Take back `n` points of a credit of which `done` were reversed before.

    The part of the credit that paid off a debt when it was earned is owed again first (so apply
    then reverse is the identity), then points come from its own lot, then from the other lots
    first-to-expire; the rest follows the program's policy."""
    created = session.execute(
        select(PointsMove.lot_id, PointsMove.points).where(PointsMove.txn_id == original.id).order_by(PointsMove.id)
    ).first()
    own = session.get(PointsLot, created.lot_id) if created is not None else None
    paid = original.points - created.points if created is not None else 0
    # Earlier reversals owed the paid part again before anything else, so `done` covers it first.
    owed_again = min(n, paid - min(paid, done))
    others = [lot for lot in _lots(session, account.id) if own is None or lot.id != own.id]
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
    txn = _txn(
        session,
        account,
        "reverse",
        -effective,
        key=key,
        at=at,
        actor=actor,
        brand=original.brand,
        channel=original.channel,
        order_id=original.order_id,
        reason=reason,
        reverses=original.id,
    )
    if own is not None and from_own:
        _move(session, txn, own, -from_own)
    if from_others:
        views = [lotrules.Lot(lot.id, utc(lot.expires_at) if lot.expires_at else None, lot.remaining) for lot in others]
        by_id = {lot.id: lot for lot in others}
        for lot_id, k in lotrules.take(views, from_others):
            _move(session, txn, by_id[lot_id], -k)
    account.debt += owed_again + (short if policy == "negative" else 0)
    return Posted(txn.id, account.id, "reverse", -effective, account.balance)


def history(session: Session, account_id: int, limit: int = 100, before: int | None = None) -> list[PointsTxn]:
    query = select(PointsTxn).where(PointsTxn.account_id == account_id)
    if before is not None:
        query = query.where(PointsTxn.id < before)
    return list(session.scalars(query.order_by(PointsTxn.id.desc()).limit(limit)))


def open_lots(session: Session, account_id: int) -> list[PointsLot]:
    lots = _lots(session, account_id)
    views = {lot.id: lot for lot in lots}
    order = lotrules.spend_order(
        [lotrules.Lot(lot.id, utc(lot.expires_at) if lot.expires_at else None, lot.remaining) for lot in lots]
    )
    return [views[v.id] for v in order]
