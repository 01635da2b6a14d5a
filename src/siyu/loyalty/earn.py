"""Which orders a program still has to post, with their earn-rule multiplier and bonus: one Ibis
expression.

An order earns when it is paid (PAID_STATUSES), on or after the program's start and the member's
enrolment, by a brand of the program and a customer linked to an account. Its earn-rule
multiplier m is the amount-weighted multiplier of its lines (each line: the highest multiplier
among the earn rules matching its brand, channel, category and the brand-local paid day; 1 if
none), returned exactly as two integers, m = rule_mult_num / rule_mult_den (every multiplier
scaled by the least common denominator of the program's multipliers). Campaign bonuses of
matching rules are added once per order. The points themselves — base from the amount and m,
then the tier and birthday-month multipliers of the account at posting time — are
`siyu.loyalty.earning.order_earning`, applied by `siyu.loyalty.sync`.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.bootstrap import App
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import current
from siyu.loyalty.linked import NODE, linked_nodes
from siyu.loyalty.program import EarnRule, Program

ACTION_COLUMNS = (
    "account_id",
    "brand",
    "source",
    "order_id",
    "paid_at",
    "status",
    "amount_fen",
    "refund_fen",
    "points_used",
    "coupon_code",
    "store_code",
    "rule_mult_num",
    "rule_mult_den",
    "bonus",
    "key",
    "post_order",  # the order itself is not posted yet
    "post_refund",  # its refund amount is not posted yet
)


def _instant(day: dt.date, zone: str) -> ir.TimestampValue:
    """The first instant (UTC) of a brand-local day: rule dates are compared as instants."""
    local = dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return ibis.literal(local.astimezone(dt.UTC), type="timestamp('UTC')")


def _matches(rule: EarnRule, t: ir.Table, zone: str, *, with_category: bool) -> ir.BooleanValue:
    cond: ir.BooleanValue = ibis.literal(True)
    if rule.brands:
        cond &= t.brand.isin(rule.brands)
    if rule.channels:
        cond &= t.source.isin(rule.channels)
    if rule.start:
        cond &= t.paid_at >= _instant(rule.start, zone)
    if rule.end:
        cond &= t.paid_at < _instant(rule.end + dt.timedelta(days=1), zone)
    if rule.categories:
        cond = cond & t.category.isin(rule.categories) if with_category else ibis.literal(False)
    return cond


def _multiplier(
    rules: tuple[EarnRule, ...], t: ir.Table, zone: str, *, scale: int, with_category: bool
) -> ir.IntegerValue:
    """The highest multiplier among the matching rules (multipliers do not compound), else 1,
    times `scale` (a common denominator of the rules' multipliers: the result is an integer)."""
    best: ir.IntegerValue = ibis.literal(scale, type="int64")
    for rule in rules:
        hit = _matches(rule, t, zone, with_category=with_category)
        scaled = rule.multiplier * scale
        assert scaled.denominator == 1
        best = ibis.ifelse(hit, ibis.greatest(best, scaled.numerator), best)
    return best


def _bonus(rules: tuple[EarnRule, ...], orders: ir.Table, items: ir.Table | None, zone: str) -> ir.IntegerValue:
    """Σ bonus of the rules an order matches (a category rule matches if any line is of it)."""
    total: ir.IntegerValue = ibis.literal(0)
    for rule in rules:
        if not rule.bonus:
            continue
        if rule.categories and items is None:
            continue
        hit = _matches(rule.model_copy(update={"categories": ()}), orders, zone, with_category=False)
        if rule.categories and items is not None:
            lines = items.filter(items.category.isin(rule.categories))
            hit &= (orders.brand + "|" + orders.source + "|" + orders.order_id).isin(
                lines.brand + "|" + lines.source + "|" + lines.order_id
            )
        total = total + ibis.ifelse(hit, rule.bonus, 0)
    return total


def order_actions(
    app: App, program: Program, links: pa.Table, done: pa.Table, until: dt.datetime | None = None
) -> pa.Table:
    """Orders of linked members that still need a ledger posting (never posted, or refunded to a
    new amount since), with base points and bonus; sorted by payment time.

    `links`: brand, customer_id, account_id, enrolled_at. `done`: key (posted order keys, incl.
    refund keys) — the anti-join that makes every run post only what is new; `post_order` and
    `post_refund` say which part of a row is. `until`: only orders paid by then.
    """
    orders = current(app, "orders")
    with linked_nodes(app, links) as nodes:
        if orders is None or nodes is None:
            return pa.table({c: pa.array([], pa.string()) for c in ACTION_COLUMNS})
        return _actions(app, program, orders, nodes, done, until)


def _actions(
    app: App, program: Program, orders: ir.Table, nodes: ir.Table, done: pa.Table, until: dt.datetime | None
) -> pa.Table:
    zone = program.timezone
    o = orders.filter(orders.brand.isin(program.brands), orders.status.isin(PAID_STATUSES), orders.paid_at.notnull())
    if program.start:
        o = o.filter(o.paid_at >= _instant(program.start, zone))
    if until is not None:  # a sync "as of" an instant posts nothing paid after it
        o = o.filter(o.paid_at <= ibis.literal(until, type="timestamp('UTC')"))
    o = o.join(nodes, NODE)
    o = o.filter(o.paid_at >= o.enrolled_at)
    rules = program.points.earn_rules
    scale = math.lcm(*(rule.multiplier.denominator for rule in rules))
    key = ibis.literal("order:") + o.brand + ":" + o.source + ":" + o.order_id
    o = o.mutate(key=key, refund_fen=o.refund_fen.fill_null(0), points_used=o.points_used.fill_null(0))
    done_keys = ibis.memtable(done)
    try:
        refund_key = o.key + ":refund:" + o.refund_fen.cast("string")
        o = o.mutate(
            post_order=~o.key.isin(done_keys.key), post_refund=(o.refund_fen > 0) & ~refund_key.isin(done_keys.key)
        )
        # A customer who stopped sharing across brands: their new orders are not posted; a refund
        # of one posted before still is (siyu.loyalty.sharing)
        o = o.filter((o.post_order & o.shares) | (~o.post_order & o.post_refund))
        o = o.mutate(_order_mult=_multiplier(rules, o, zone, scale=scale, with_category=False))
        items = current(app, "order_items")
        if items is not None:
            keys = ["brand", "source", "order_id"]
            lines = items.join(o.select(*keys, "paid_at", "_order_mult"), keys)
            line_mult = ibis.greatest(
                lines._order_mult, _multiplier(rules, lines, zone, scale=scale, with_category=True)
            )
            weighted = lines.group_by(keys).aggregate(
                _w=(lines.amount_fen * line_mult).sum(), _a=lines.amount_fen.sum()
            )
            o = o.left_join(weighted, keys).drop(*(f"{k}_right" for k in keys))
            by_lines = o._a.notnull() & (o._a > 0)
            num = ibis.ifelse(by_lines, o._w, o._order_mult)
            den = ibis.ifelse(by_lines, o._a * scale, scale)
        else:
            num, den = o._order_mult, ibis.literal(scale, type="int64")
        o = o.mutate(
            rule_mult_num=num.cast("int64"),
            rule_mult_den=den.cast("int64"),
            bonus=_bonus(rules, o, items, zone).cast("int64"),
        )
        todo = o.order_by([o.paid_at, o.order_id]).select(*ACTION_COLUMNS)
        return app.engine.to_arrow(todo)
    finally:
        app.engine.release(done_keys)
