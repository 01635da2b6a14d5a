"""Behaviour conditions over time windows (brand-local days): did an event N times, bought (an item
filter) N times, spent an amount. Raw rows are filtered by brand, type and window before they meet
the identity map, and counts add up over all of a merged customer's source records.

When "no activity" satisfies a condition (`max_times` with `min_times` 0, `spent < ¥100`), the
customers with no rows at all are included: the set is "everyone except those who fail".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.audiences.compare import positive, satisfied_by
from siyu.audiences.context import ID, Context, empty_ids, ids, in_window
from siyu.audiences.rules import Leaf
from siyu.engine.adapter import json_text
from siyu.ingest.schema import PAID_STATUSES
from siyu.metrics.facts import not_fully_refunded


def _codes(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _counted(ctx: Context, per: ir.Table | None, lo: int, hi: int | None) -> ir.Table:
    """Customers whose count `n` in `per` is within [lo, hi]; a customer absent from `per` has 0."""
    if per is None:
        return ctx.universe if lo <= 0 else empty_ids()
    if lo <= 0:
        if hi is None:
            return ctx.universe
        return ctx.universe.anti_join(ids(per.filter(per.n > hi)), ID)
    keep = per.n >= lo
    if hi is not None:
        keep &= per.n <= hi
    return ids(per.filter(keep))


def property_is(properties: ir.StringValue, key: str, value: str | bool | float) -> ir.BooleanValue:
    """The event's top-level property `key` equals `value`: text as text (case-sensitive), true / false as
    JSON booleans, numbers as numbers (2 = 2.0 = "2"). Read with `json_text`, natively on every engine;
    NULL (no match) where the property is absent or the text is not JSON."""
    text = json_text(properties, key)
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, int):
        # As a number, and exactly where the text is an integer (a float is not, past 2^53). Engines differ on
        # "2.0" as an integer (DuckDB 2, Spark NULL), so that cast only decides where it succeeds.
        whole = text.try_cast("int64")
        return (text.try_cast("float64") == float(value)) & (whole.isnull() | (whole == value))
    if isinstance(value, float):
        return text.try_cast("float64") == value
    return text == value


def events_in(
    ctx: Context,
    event_type: str,
    fields: tuple[str, ...] | None,
    lo: datetime | None,
    hi: datetime | None,
    properties: dict[str, Any] | None = None,
) -> ir.Table | None:
    """The brand's events of one type (in fields, in [lo, hi)) with their customer_id."""
    e = ctx.raw("events")
    if e is None:
        return None
    cond = (e.type == event_type) & in_window(e.occurred_at, lo, hi)
    if fields is not None:
        cond &= e.field.isin(fields)
    for key, value in (properties or {}).items():
        cond &= property_is(e.properties, key, value)
    e = e.filter(cond)
    return ctx.resolve(e.select("source", "source_customer_id", "event_id"))


def _per_customer(ctx: Context, rows: ir.Table | None, lo: int, hi: int | None) -> ir.Table:
    """Customers with between lo and hi rows; "at least once" needs no count, only the ids."""
    if rows is not None and lo == 1 and hi is None:
        return ids(rows)
    return _counted(ctx, None if rows is None else rows.group_by(ID).agg(n=rows.count()), lo, hi)


def did(ctx: Context, leaf: Leaf) -> ir.Table:
    lo, hi = ctx.bounds(leaf.window)
    rows = events_in(ctx, leaf.subject or "", _codes(leaf.params.get("field")), lo, hi, leaf.params.get("properties"))
    return _per_customer(ctx, rows, int(leaf.params.get("min_times", 1)), leaf.params.get("max_times"))


def purchases(
    ctx: Context,
    lo: datetime | None,
    hi: datetime | None,
    items: dict[str, Any] | None = None,
    sources: tuple[str, ...] | None = None,
    stores: tuple[str, ...] | None = None,
) -> ir.Table | None:
    """Purchases (paid, not fully refunded: DESIGN §4) paid in [lo, hi), optionally only orders
    with an item matching `items` (category / spu / sku / price band), with customer_id and the
    net paid amount `net_fen`."""
    o = ctx.raw("orders")
    if o is None:
        return None
    o = o.filter(o.status.isin(PAID_STATUSES) & not_fully_refunded(o) & in_window(o.paid_at, lo, hi))
    if sources is not None:
        o = o.filter(o.source.isin(sources))
    if stores is not None:
        o = o.filter(o.store_code.isin(stores))
    o = ctx.resolve(
        o.select(
            "source",
            "source_customer_id",
            "order_id",
            "paid_at",
            net_fen=(o.amount_fen - o.refund_fen.fill_null(0)).cast("int64"),
        )
    )
    if items:
        # After the identity map (often narrowed to a few candidates), so the item filter meets
        # only those customers' orders.
        it = ctx.raw("order_items")
        if it is None:
            return None
        cond = ibis.literal(True)
        for key in ("category", "spu", "sku"):
            if key in items:
                cond &= it[key].isin(_codes(items[key]) or ())
        price = it.price_fen.fill_null(it.amount_fen // it.qty.nullif(0))
        if "min_price_fen" in items:
            cond &= price >= items["min_price_fen"]
        if "max_price_fen" in items:
            cond &= price <= items["max_price_fen"]
        o = o.semi_join(it.filter(cond).select("source", "order_id"), ["source", "order_id"])
    return o


def bought(ctx: Context, leaf: Leaf) -> ir.Table:
    lo, hi = ctx.bounds(leaf.window)
    rows = purchases(ctx, lo, hi, leaf.value, _codes(leaf.params.get("source")), _codes(leaf.params.get("store_code")))
    return _per_customer(ctx, rows, int(leaf.params.get("min_times", 1)), leaf.params.get("max_times"))


def spent(ctx: Context, leaf: Leaf) -> ir.Table:
    lo, hi = ctx.bounds(leaf.window)
    rows = purchases(ctx, lo, hi)
    zero_matches = satisfied_by(leaf.op, leaf.value, 0)
    if rows is None:
        return ctx.universe if zero_matches else empty_ids()
    per = rows.group_by(ID).agg(total=rows.net_fen.sum())
    if zero_matches:  # customers who spent nothing match too: everyone except those who fail
        return ctx.universe.anti_join(ids(per.filter(~positive(per.total, leaf.op, leaf.value))), ID)
    return ids(per.filter(positive(per.total, leaf.op, leaf.value)))
