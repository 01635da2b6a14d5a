"""Invariants of the points ledger, checked by SQL over the store's tables (any backend).

Used by the property tests, the concurrency test and the crash test: after any sequence of ledger
writes, committed or killed half-way, these hold.

- every account: balance = Σ points_txns.points = Σ points_lots.remaining − debt; debt ≥ 0;
- every lot: 0 ≤ remaining ≤ points and remaining = Σ of its moves; replaying its moves in order
  never takes it below zero (so nothing ever spent points a lot did not hold);
- an `expire` move only touches a lot due at the transaction's time and takes all it held then
  (expiry never takes spent points, and leaves none behind);
- the ledger is append-only: per account, in id order, balance_after = previous + points, the last
  one = the balance; a debit's moves add up to its points; a credit made exactly one lot;
- every transaction says who (actor) and when (created_at): the ledger is the points audit trail;
- a reversal points back at an earn, redeem or adjust, with the opposite sign, and all reversals of
  one transaction together never exceed it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from siyu.loyalty.accounts import utc


@dataclass(frozen=True)
class Ledger:
    """The state of the ledger tables, for comparisons before/after."""

    accounts: dict[int, tuple[int, int]]  # id -> (balance, debt)
    lots: dict[int, int]  # id -> remaining
    txns: list[tuple[Any, ...]]  # every column, in id order
    moves: list[tuple[int, int, int, int]]  # (id, txn_id, lot_id, points)


def read_ledger(connection: Connection) -> Ledger:
    accounts = {int(i): (int(b), int(d)) for i, b, d in connection.execute(text(_ACCOUNTS))}
    lots = {int(i): int(r) for i, r in connection.execute(text("SELECT id, remaining FROM points_lots"))}
    txns = [tuple(row) for row in connection.execute(text(_TXNS + " ORDER BY id"))]
    moves = [
        (int(a), int(b), int(c), int(d))
        for a, b, c, d in connection.execute(
            text("SELECT id, txn_id, lot_id, points FROM points_lot_moves ORDER BY id")
        )
    ]
    return Ledger(accounts, lots, txns, moves)


_ACCOUNTS = "SELECT id, balance, debt FROM loyalty_accounts"
_TXNS = (
    "SELECT id, program, account_id, kind, points, idempotency_key, reverses_id, actor, balance_after, created_at"
    " FROM points_txns"
)


def check_ledger(bind: Engine | Connection) -> Ledger:
    """Assert every invariant above; returns the ledger read (in one transaction)."""
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return check_ledger(connection)
    connection = bind
    ledger = read_ledger(connection)
    lots = {
        int(i): (int(a), int(t), int(p), int(r), None if e is None else instant(e))
        for i, a, t, p, r, e in connection.execute(
            text("SELECT id, account_id, txn_id, points, remaining, expires_at FROM points_lots")
        )
    }
    txns = {row[0]: row for row in ledger.txns}

    # accounts: the three ways of counting the balance agree
    by_txns = dict(
        connection.execute(text("SELECT account_id, SUM(points) FROM points_txns GROUP BY account_id")).all()
    )
    by_lots = dict(
        connection.execute(text("SELECT account_id, SUM(remaining) FROM points_lots GROUP BY account_id")).all()
    )
    for account, (balance, debt) in ledger.accounts.items():
        assert debt >= 0, f"account {account}: debt {debt} < 0"
        assert balance == int(by_txns.get(account) or 0), f"account {account}: balance {balance} ≠ Σ txns"
        assert balance == int(by_lots.get(account) or 0) - debt, f"account {account}: balance ≠ Σ lots − debt"

    # lots: replay the moves in order
    held: dict[int, int] = {}
    moved_by_txn: dict[int, list[tuple[int, int]]] = {}
    for _, txn_id, lot_id, points in ledger.moves:
        assert lot_id in lots and txn_id in txns, f"move of txn {txn_id} on lot {lot_id} points nowhere"
        account, _, _, _, expires_at = lots[lot_id]
        txn = txns[txn_id]
        assert txn[2] == account, f"txn {txn_id} moved points of another account's lot {lot_id}"
        before = held.get(lot_id, 0)
        held[lot_id] = before + points
        assert held[lot_id] >= 0, f"lot {lot_id} went below zero (txn {txn_id} {txn[3]} took {-points} of {before})"
        if txn[3] == "expire":
            assert expires_at is not None and expires_at <= instant(txn[9]), f"txn {txn_id} expired lot {lot_id} early"
            assert points == -before, f"expiry txn {txn_id} took {-points} of lot {lot_id} holding {before}"
        moved_by_txn.setdefault(txn_id, []).append((lot_id, points))
    for lot_id, (_, _, points, remaining, _) in lots.items():
        assert 0 <= remaining <= points, f"lot {lot_id}: remaining {remaining} outside 0..{points}"
        assert held.get(lot_id, 0) == remaining, f"lot {lot_id}: remaining {remaining} ≠ Σ moves {held.get(lot_id)}"

    # txns: append-only chain per account, moves consistent with each kind, reversals bounded
    last: dict[int, int] = {}
    reversed_by: dict[int, int] = {}
    made_lots: dict[int, list[int]] = {}
    for lot_id, (_, txn_id, _, _, _) in lots.items():
        made_lots.setdefault(txn_id, []).append(lot_id)
    for txn_id, _program, account, kind, points, _key, reverses, _actor, after, _at in ledger.txns:
        assert kind in ("earn", "redeem", "expire", "adjust", "reverse"), f"txn {txn_id}: kind {kind}"
        # 0 only for a reversal clamped to nothing (policy `clamp` with no points left to take)
        assert points != 0 or kind == "reverse", f"txn {txn_id}: {kind} of 0 points"
        assert after == last.get(account, 0) + points, f"txn {txn_id}: balance_after {after} breaks the chain"
        last[account] = after
        moves = moved_by_txn.get(txn_id, [])
        credit = points > 0 and kind in ("earn", "adjust")
        if credit:
            made = made_lots.get(txn_id, [])
            assert len(made) == 1, f"credit txn {txn_id} made {len(made)} lots"
            assert lots[made[0]][2] == points, f"credit txn {txn_id}: lot of {lots[made[0]][2]} points"
            assert moves and moves[0][0] == made[0] and 0 <= moves[0][1] <= points, f"credit txn {txn_id}: moves"
            assert len(moves) == 1, f"credit txn {txn_id} touched other lots"
        else:
            assert txn_id not in made_lots, f"{kind} txn {txn_id} made a lot"
        if kind == "reverse":
            assert reverses is not None and reverses in txns, f"reverse txn {txn_id} reverses nothing"
            original = txns[reverses]
            assert original[3] in ("earn", "redeem", "adjust") and original[2] == account
            assert points == 0 or (points > 0) != (original[4] > 0), f"reverse txn {txn_id}: sign of the original"
            reversed_by[reverses] = reversed_by.get(reverses, 0) + abs(points)
            assert reversed_by[reverses] <= abs(original[4]), f"txn {reverses} reversed more than it was"
            if original[4] > 0:  # a credit reversed: what lots did not cover became debt
                assert -sum(p for _, p in moves) <= -points and all(p <= 0 for _, p in moves)
            else:
                assert sum(p for _, p in moves) == points and all(p > 0 for _, p in moves)
        elif not credit:
            assert sum(p for _, p in moves) == points, f"{kind} txn {txn_id}: moves ≠ points"
            assert all(p < 0 for _, p in moves), f"{kind} txn {txn_id} gave points to a lot"
        else:
            assert reverses is None
    for account, (balance, _) in ledger.accounts.items():
        assert last.get(account, 0) == balance, f"account {account}: last balance_after ≠ balance"

    # the ledger is the audit trail of points: every row says who and when
    anonymous = connection.execute(
        text("SELECT id FROM points_txns WHERE actor IS NULL OR actor = '' OR created_at IS NULL")
    ).all()
    assert not anonymous, f"txns without actor or time: {anonymous[:10]}"
    return ledger


def assert_append_only(before: Ledger, after: Ledger) -> None:
    """Nothing written to the ledger before was changed or removed."""
    assert after.txns[: len(before.txns)] == before.txns, "a points_txns row was updated or deleted"
    assert after.moves[: len(before.moves)] == before.moves, "a points_lot_moves row was updated or deleted"


def instant(value: dt.datetime | str) -> dt.datetime:
    """A timestamp read with plain SQL: SQLite hands back text, PostgreSQL an aware datetime."""
    return utc(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)
