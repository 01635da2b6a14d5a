"""Writing one ledger transaction's rows: the only place that knows how, per database.

A ledger write is planned in Python under the account lock (`siyu.loyalty.points`): the
transaction rows, at most one new lot, the lot moves and the account's new balance. `apply` writes
the plan. PostgreSQL runs it as ONE statement (data-modifying CTEs: the txn inserts, the new lot,
the moves, the lot updates and the account update, returning the txn ids) — a round trip per
statement is what limits ledger throughput with many workers. Other databases (SQLite) run the
same writes as a few plain statements. Dialects with data-modifying CTEs are listed in
`SINGLE_STATEMENT`, those with a row version to guard an optimistic write in `ROW_VERSION`;
nothing else in the ledger branches on the database.

A plan read without a lock carries the account's row version (`Plan.version`); its statement then
updates the account first, only if the row still has that version, and writes every other row
only if the account was updated. `apply` answers None when it was not: nothing was written.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, TextClause, bindparam, insert, text, update

from siyu.loyalty.models import LoyaltyAccount, PointsLot, PointsMove, PointsTxn

SINGLE_STATEMENT = frozenset({"postgresql"})
# The SQL of an account row's version, per dialect: PostgreSQL's xmin changes with every update of
# the row (the nightly expiry guards on it too). Dialects not listed write under a lock only.
ROW_VERSION = {"postgresql": "loyalty_accounts.xmin::text"}
A, T, L, M = (cast(Table, m.__table__) for m in (LoyaltyAccount, PointsTxn, PointsLot, PointsMove))
TXN_COLUMNS = (
    "program", "account_id", "kind", "points", "idempotency_key", "brand", "channel", "order_id", "reverses_id",
    "reason", "actor", "balance_after", "created_at",
)  # fmt: skip
LOT_COLUMNS = ("account_id", "brand", "earned_at", "expires_at", "points", "remaining")
NEW_LOT = -1  # the lot id of a move onto the lot this plan creates

_ADD_TXN = insert(T).returning(T.c.id)
_ADD_LOT = insert(L).returning(L.c.id)
_MOVE_LOT = update(L).where(L.c.id == bindparam("b_lot")).values(remaining=L.c.remaining + bindparam("b_delta"))
_SET_ACCOUNT = (
    update(A).where(A.c.id == bindparam("b_account")).values(balance=bindparam("b_balance"), debt=bindparam("b_debt"))
)


@dataclass
class Plan:
    """The rows one ledger transaction writes. Moves name their transaction by its index in
    `txns` and their lot by id (NEW_LOT for `new_lot`, whose move is its creation, not a change)."""

    account_id: int
    balance: int
    debt: int
    txns: list[dict[str, Any]] = field(default_factory=list)
    new_lot: dict[str, Any] | None = None  # LOT_COLUMNS + "txn": index of the creating txn
    moves: list[tuple[int, int, int]] = field(default_factory=list)  # (txn index, lot id, points)
    version: str | None = None  # the account row's version when read without a lock

    def deltas(self) -> dict[int, int]:
        out: dict[int, int] = defaultdict(int)
        for _, lot, points in self.moves:
            if lot != NEW_LOT:
                out[lot] += points
        return {lot: d for lot, d in out.items() if d}


def apply(conn: Connection, plan: Plan) -> list[int] | None:
    """Write the plan in the caller's transaction; the ids of its txns, in order — or None, with
    nothing written, when the plan has a version and the account no longer has it."""
    if conn.dialect.name in SINGLE_STATEMENT:
        return _one_statement(conn, plan)
    if plan.version is not None:
        raise AssertionError(f"no optimistic writes on {conn.dialect.name}")
    return _statements(conn, plan)


def _statements(conn: Connection, plan: Plan) -> list[int]:
    ids = [int(conn.execute(_ADD_TXN, row).scalar_one()) for row in plan.txns]
    lot_id = None
    if plan.new_lot is not None:
        row = {c: plan.new_lot[c] for c in LOT_COLUMNS} | {"txn_id": ids[plan.new_lot["txn"]]}
        lot_id = int(conn.execute(_ADD_LOT, row).scalar_one())
    if plan.moves:
        conn.execute(
            insert(M),
            [{"txn_id": ids[t], "lot_id": lot_id if lot == NEW_LOT else lot, "points": p} for t, lot, p in plan.moves],
        )
    if deltas := plan.deltas():
        conn.execute(_MOVE_LOT, [{"b_lot": lot, "b_delta": d} for lot, d in deltas.items()])
    conn.execute(_SET_ACCOUNT, {"b_account": plan.account_id, "b_balance": plan.balance, "b_debt": plan.debt})
    return ids


def _one_statement(conn: Connection, plan: Plan) -> list[int] | None:
    """WITH au AS (UPDATE account … [AND version] RETURNING id), t0 AS (INSERT txn … FROM au
    RETURNING id), [nl AS (INSERT lot …),] mv AS (INSERT moves … FROM au), lu AS (UPDATE lots …
    FROM au) SELECT the txn ids. PostgreSQL runs every data-modifying CTE exactly once, whether or
    not the final SELECT reads it; each one reads `au`, so none writes when the guard fails."""
    params: dict[str, Any] = {"a_id": plan.account_id, "a_balance": plan.balance, "a_debt": plan.debt}
    guard = ""
    if plan.version is not None:
        params["a_version"] = plan.version
        guard = f" AND {ROW_VERSION[conn.dialect.name]} = :a_version"
    ctes = [
        f"au AS (UPDATE loyalty_accounts SET balance = :a_balance, debt = :a_debt WHERE id = :a_id{guard} RETURNING id)"
    ]
    columns = ", ".join(TXN_COLUMNS)
    for i, row in enumerate(plan.txns):
        params.update({f"t{i}_{c}": row[c] for c in TXN_COLUMNS})
        values = ", ".join(f":t{i}_{c}" for c in TXN_COLUMNS)
        ctes.append(f"t{i} AS (INSERT INTO points_txns ({columns}) SELECT {values} FROM au RETURNING id)")
    if plan.new_lot is not None:
        params.update({f"nl_{c}": plan.new_lot[c] for c in LOT_COLUMNS})
        values = ", ".join(f":nl_{c}" for c in LOT_COLUMNS)
        ctes.append(
            f"nl AS (INSERT INTO points_lots (txn_id, {', '.join(LOT_COLUMNS)}) "
            f"SELECT t{plan.new_lot['txn']}.id, {values} FROM t{plan.new_lot['txn']} RETURNING id)"
        )
    if plan.moves:
        rows = []
        for j, (t, lot, points) in enumerate(plan.moves):
            params[f"m{j}_p"] = points
            if lot == NEW_LOT:
                lot_sql = "(SELECT id FROM nl)"
            else:
                params[f"m{j}_l"] = lot
                lot_sql = f"CAST(:m{j}_l AS BIGINT)"
            rows.append(f"((SELECT id FROM t{t}), {lot_sql}, CAST(:m{j}_p AS BIGINT))")
        ctes.append(
            "mv AS (INSERT INTO points_lot_moves (txn_id, lot_id, points) SELECT v.t, v.l, v.p "
            f"FROM au, (VALUES {', '.join(rows)}) AS v(t, l, p))"
        )
    if deltas := plan.deltas():
        rows = []
        for j, (lot, d) in enumerate(deltas.items()):
            params[f"d{j}_l"], params[f"d{j}_p"] = lot, d
            rows.append(f"(CAST(:d{j}_l AS BIGINT), CAST(:d{j}_p AS BIGINT))")
        ctes.append(
            "lu AS (UPDATE points_lots SET remaining = points_lots.remaining + d.points "
            f"FROM au, (VALUES {', '.join(rows)}) AS d(lot_id, points) WHERE points_lots.id = d.lot_id)"
        )
    select = ", ".join(f"(SELECT id FROM t{i})" for i in range(len(plan.txns)))
    ids = conn.execute(_statement(f"WITH {', '.join(ctes)} SELECT {select}"), params).one()
    if ids[0] is None:
        return None
    return [int(x) for x in ids]


@functools.lru_cache(maxsize=256)
def _statement(sql: str) -> TextClause:
    """One TextClause per plan shape (a handful): parsing its binds costs more than the write."""
    return text(sql)
