"""Branch rules (the audience rule language) answered for the customers at a step, at one moment."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import ibis
import pyarrow as pa

from siyu.audiences.compile import compile_rule
from siyu.audiences.context import Context
from siyu.audiences.service import parse_input
from siyu.bootstrap import App


def branch_answers(
    app: App, brand: str, zone: ZoneInfo, rule: object, customers: list[str], now: dt.datetime
) -> set[str]:
    """The customers among `customers` the audience rule holds for now (one engine query over
    those customers' records: `Context.narrowed`)."""
    _, node = parse_input(rule)  # type: ignore[arg-type]
    ctx = Context(app, brand, now.astimezone(zone).date())
    try:
        narrowed = ctx.narrowed(ibis.memtable(pa.table({"customer_id": pa.array(customers, pa.string())})))
        return set(app.engine.to_arrow(compile_rule(narrowed, node))["customer_id"].to_pylist())
    finally:
        ctx.release()


# Past this many customers at one branch in a pass, the rule is evaluated once for the whole brand
# (one query, no temporary table) and the answer reused by every batch of the pass: all of them
# act at the same moment, so it is the same answer.
WHOLE_BRAND = 400
Answers = dict[tuple[str, str, dt.datetime], set[str]]


def rule_holds(
    app: App, brand: str, zone: ZoneInfo, rule: object, customers: list[str], now: dt.datetime, cache: Answers
) -> set[str]:
    key = (brand, json.dumps(rule, sort_keys=True, default=str), now)
    if key in cache:
        return cache[key]
    if len(customers) < WHOLE_BRAND:
        return branch_answers(app, brand, zone, rule, customers, now)
    _, node = parse_input(rule)  # type: ignore[arg-type]
    ctx = Context(app, brand, now.astimezone(zone).date())
    try:
        cache[key] = set(app.engine.to_arrow(compile_rule(ctx, node))["customer_id"].to_pylist())
    finally:
        ctx.release()
    return cache[key]
