"""Rule tags (规则标签), computed in batch with Ibis into the lake table `tag_values`
(brand, tag, customer_id, value, number, computed_at; one partition per brand and tag, replaced
whole by each run — older runs stay readable by Delta time travel).

A rule is one of:

- cases — the first audience rule a customer matches gives the value (profile, layers, RFM,
  lifecycle, CLV, behaviour: anything the audience language says):
  `{"cases": [{"value": "vip", "when": {"layer": "koc"}}, {"value": "fan", "when": {...}}]}`
- measure — a number per customer over a window, optionally cut into bands (price band 价格带):
  `{"measure": "avg_item_price_fen", "last_days": 365, "bands": [{"value": "low", "below": 20000},
  {"value": "mid", "below": 40000}, {"value": "high"}]}`
  measures: spend_fen, orders, avg_order_fen, avg_item_price_fen, items, days_since_purchase,
  events (with "event" and optional "field"); `items` filters by category / spu / sku.
- top — the category or SPU (brand series) a customer spent most on: `{"top": "category", "last_days": 365}`
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.audiences.behaviour import events_in, purchases
from siyu.audiences.compile import compile_rule
from siyu.audiences.context import ID, Context
from siyu.audiences.errors import RuleError, TagError
from siyu.audiences.models import TagDefinition, TagHistory
from siyu.audiences.rules import parse_rule
from siyu.audiences.tag_checks import window
from siyu.audiences.tags import TAG_VALUES_TABLE, subject, tag_definition
from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.lake.tables import sql_text
from siyu.store.uow import UnitOfWork


def _measure(ctx: Context, rule: dict[str, Any]) -> ir.Table:
    """customer_id, number for one measure over the rule's window."""
    lo, hi = ctx.bounds(window(rule))
    name = rule["measure"]
    empty = ibis.memtable({ID: [], "number": []}, schema={ID: "string", "number": "float64"})
    if name == "events":
        fields = rule.get("field")
        rows = events_in(ctx, rule["event"], (fields,) if isinstance(fields, str) else fields, lo, hi)
        return empty if rows is None else rows.group_by(ID).agg(number=rows.count().cast("float64"))
    p = purchases(ctx, lo, hi, rule.get("items"))
    if p is None:
        return empty
    if name in ("avg_item_price_fen", "items"):
        items = ctx.raw("order_items")
        if items is None:
            return empty
        lines = items.join(p.select("source", "order_id", ID), ["source", "order_id"])
        per = lines.group_by(ID).agg(amount=lines.amount_fen.sum(), qty=lines.qty.sum())
        value = per.qty if name == "items" else (per.amount / per.qty.nullif(0)).round()
        return per.select(ID, number=value.cast("float64"))
    per = p.group_by(ID).agg(spend=p.net_fen.sum(), orders=p.count(), last=p.paid_at.max())
    value = {
        "spend_fen": per.spend,
        "orders": per.orders,
        "avg_order_fen": (per.spend / per.orders).round(),
        "days_since_purchase": ibis.literal(ctx.end_of_as_of()).delta(per["last"], unit="day"),
    }[name]
    return per.select(ID, number=value.cast("float64"))


def _top(ctx: Context, rule: dict[str, Any]) -> ir.Table:
    lo, hi = ctx.bounds(window(rule))
    p = purchases(ctx, lo, hi)
    items = ctx.raw("order_items")
    if p is None or items is None:
        return ibis.memtable({ID: [], "value": []}, schema={ID: "string", "value": "string"})
    column = rule["top"]
    lines = items.filter(items[column].notnull()).join(p.select("source", "order_id", ID), ["source", "order_id"])
    per = lines.group_by([ID, column]).agg(amount=lines.amount_fen.sum())
    ranked = per.mutate(_n=ibis.row_number().over(group_by=ID, order_by=[ibis.desc("amount"), per[column]]))
    return ranked.filter(ranked._n == 0).select(ID, value=ranked[column])


def tag_expression(ctx: Context, rule: dict[str, Any]) -> ir.Table:
    """customer_id, value (text), number for every customer the rule gives a value."""
    if "cases" in rule:
        parts, taken = [], None
        for i, case in enumerate(rule["cases"]):
            matched = compile_rule(ctx, parse_rule(case["when"], f"cases[{i}].when"))
            if taken is not None:
                matched = matched.anti_join(taken, ID)
            parts.append(matched.select(ID, value=ibis.literal(str(case["value"])), number=ibis.null("float64")))
            taken = matched if taken is None else ibis.union(taken, matched)
        return ibis.union(*parts)
    if "top" in rule:
        top = _top(ctx, rule)
        return top.select(ID, "value", number=ibis.null("float64"))
    measured = _measure(ctx, rule)
    bands = rule.get("bands")
    if not bands:
        text = ibis.ifelse(
            measured.number == measured.number.round(),
            measured.number.cast("int64").cast("string"),
            measured.number.cast("string"),
        )
        return measured.select(ID, value=text, number=measured.number)
    cases = [(measured.number < b["below"], str(b["value"])) for b in bands if "below" in b]
    last = bands[-1]
    value = ibis.cases(*cases, else_=str(last["value"]) if "below" not in last else ibis.null("string"))
    banded = measured.select(ID, value=value, number=measured.number)
    return banded.filter(banded.value.notnull())


@dataclass(frozen=True)
class ComputedTag:
    """One rule tag's run: values already in the lake (`lake_version`), not yet recorded in the store."""

    brand: str
    tag: str
    rule: dict[str, Any]  # the rule the values were computed with
    as_of: date
    customers: int
    values: dict[str, int]  # customers per value
    lake_version: int
    computed_at: datetime
    seconds: float


def compute_tag(app: App, brand: str, code: str, as_of: date | None = None) -> ComputedTag:
    """Compute one rule tag for every customer of the brand and replace its values in the lake.
    Nothing is written to the store: record the run with `do_compute_tag` (a short transaction
    after the long compute)."""
    started = time.perf_counter()
    definition = tag_definition(app, brand, code)
    if definition["kind"] != "rule":
        raise RuleError("$", f"tag {code!r} is a {definition['kind']} tag; only rule tags are computed (非规则标签)")
    ctx = Context(app, brand, as_of)
    try:
        data = app.engine.to_arrow(tag_expression(ctx, definition["rule"]))
    finally:
        ctx.release()
    n = data.num_rows
    now = utc_now()
    table = pa.table(
        {
            "brand": pa.array([brand] * n, pa.string()),
            "tag": pa.array([code] * n, pa.string()),
            "customer_id": data[ID],
            "value": data["value"].cast(pa.string()),
            "number": data["number"].cast(pa.float64()),
            "computed_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    version = app.lake.replace(
        TAG_VALUES_TABLE, table, f"brand = {sql_text(brand)} AND tag = {sql_text(code)}", partition_by=["brand", "tag"]
    )
    counts = pa.TableGroupBy(table.select(["value"]), ["value"]).aggregate([([], "count_all")]).to_pylist()
    return ComputedTag(
        brand=brand,
        tag=code,
        rule=definition["rule"],
        as_of=ctx.as_of,
        customers=n,
        values={str(r["value"]): int(r["count_all"]) for r in sorted(counts, key=lambda r: str(r["value"]))},
        lake_version=version,
        computed_at=now,
        seconds=round(time.perf_counter() - started, 2),
    )


def do_compute_tag(uow: UnitOfWork, run: ComputedTag) -> dict[str, Any]:
    """Record a rule tag's run: the definition's computed time, size and lake version, a history row
    and one audit row with the counts (`tag.compute`; never one row per customer)."""
    d = uow.session.get(TagDefinition, (run.brand, run.tag))
    if d is None or d.rule_json is None or json.loads(d.rule_json) != run.rule:
        raise TagError(
            f"tag {run.tag!r} was deleted or redefined while it was computed; compute it again (计算期间标签已变更)"
        )
    before = {"customers": d.computed_customers, "lake_version": d.lake_version}
    d.computed_at, d.computed_customers, d.lake_version = run.computed_at, run.customers, run.lake_version
    uow.session.add(
        TagHistory(
            brand=run.brand, tag_code=run.tag, action="compute", new_value=f"{run.customers} customers",
            actor=str(uow.actor), at=uow.now, reason=f"as of {run.as_of}",
        )
    )  # fmt: skip
    after = {"customers": run.customers, "values": run.values, "lake_version": run.lake_version,
             "as_of": run.as_of.isoformat()}  # fmt: skip
    uow.audit("tag.compute", "tag", subject(run.brand, run.tag), brand=run.brand, before=before, after=after)
    return {
        "brand": run.brand,
        "tag": run.tag,
        "as_of": run.as_of.isoformat(),
        "customers": run.customers,
        "values": run.values,
        "lake_version": run.lake_version,
        "seconds": run.seconds,
    }
