"""Comparisons shared by every condition kind, with one rule for missing data:

- `=`, `in`, `>`, `contains`, `exists`, … : the customer has at least one value that matches;
- `!=`, `not_in`: the customer has a known value and none of its values matches;
- `missing`: the customer has no known value at all.

So `city != "上海"` leaves out customers whose city is unknown, while `not (city = "上海")` keeps
them: NOT is always "every customer of the brand except those matching".
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir

from siyu.audiences.context import ID, Context, ids


def positive(col: ir.Value, op: str, value: Any) -> ir.BooleanValue:
    """The row-level test for the positive ops."""
    if op == "=":
        return col == value
    if op == "in":
        return col.isin(value)
    if op == "contains":
        return col.cast("string").contains(str(value))
    if op == ">":
        return col > value
    if op == ">=":
        return col >= value
    if op == "<":
        return col < value
    if op == "<=":
        return col <= value
    if op == "between":
        return col.between(value[0], value[1])
    if op == "exists":
        return col.notnull()
    raise ValueError(op)


NEGATED = {"!=": "=", "not_in": "in"}


def select(ctx: Context, rows: ir.Table, column: str, op: str, value: Any) -> ir.Table:
    """Customers (distinct ids) whose values in `rows[column]` satisfy `op value` (rows carry customer_id)."""
    col = rows[column]
    known = rows.filter(col.notnull())
    if op == "missing":
        return ctx.universe.anti_join(ids(known), ID)
    if op in NEGATED:
        hit = known.filter(positive(known[column], NEGATED[op], value))
        return ids(known).anti_join(ids(hit), ID)
    return ids(rows.filter(col.notnull() & positive(col, op, value)))


def satisfied_by(op: str, value: Any, sample: Any) -> bool:
    """Whether a plain Python value satisfies the op (to know if "no data" = 0 should match)."""
    if op in ("missing", "exists", "!=", "not_in", "contains", "in"):
        return False
    checks = {
        "=": sample == value,
        ">": sample > value,
        ">=": sample >= value,
        "<": sample < value,
        "<=": sample <= value,
    }
    if op == "between":
        return bool(value[0] <= sample <= value[1])
    return bool(checks[op])
