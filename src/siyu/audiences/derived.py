"""Conditions on what siyu computed before: relationship layers and their change, RFM, lifecycle,
predicted CLV (lake tables written by `siyu metrics materialise` / `siyu lifecycle` / `siyu clv predict`) and
tags (rule tags in the lake table `tag_values`, manual and imported tags in the store).

Without an explicit period / as-of, a condition reads the latest result at or before the rule's
as-of day; when there is none the error says which command computes it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.audiences.compare import select
from siyu.audiences.context import ID, Context, ids
from siyu.audiences.errors import MissingDataError, RuleError
from siyu.audiences.rules import Leaf, join_path
from siyu.audiences.tags import tag_definition, tag_rows
from siyu.clv.service import LIFECYCLE_TABLE, PREDICTIONS_TABLE
from siyu.metrics.labels import RANK
from siyu.metrics.layers import LAYERS_TABLE
from siyu.metrics.periods import BadPeriodError, Period, parse_period
from siyu.metrics.rfm import RFM_TABLE


def _table(ctx: Context, name: str, leaf: Leaf, how: str) -> ir.Table:
    table = ctx.derived(name)
    if table is None:
        raise MissingDataError(
            f"{leaf.path or '$'}: no {name} computed yet for brand {ctx.brand.code!r}: run {how} first (尚未计算)"
        )
    return table


def _period(ctx: Context, leaf: Leaf) -> Period:
    grain = leaf.params.get("grain", "month")
    label = leaf.params.get("period")
    if label is not None:
        try:
            return parse_period(label, grain, ctx.brand.timezone)
        except BadPeriodError as exc:
            raise RuleError(join_path(leaf.path, "period"), f"{exc.message}") from exc
    layers = _table(ctx, LAYERS_TABLE, leaf, "`siyu metrics materialise --from …`")
    end = ibis.literal(ctx.end_of_as_of(), type="timestamp('UTC')")
    done = layers.filter((layers.grain == grain) & (layers.period_end <= end))
    latest = ctx.app.engine.to_arrow(done.aggregate(p=done.period.max()))["p"][0].as_py()
    if latest is None:
        raise MissingDataError(
            f"{leaf.path or '$'}: no {grain} layers computed up to {ctx.as_of}: run `siyu metrics materialise "
            "--from …` first (尚未计算关系层级)"
        )
    return parse_period(str(latest), grain, ctx.brand.timezone)


def layer_ranks(ctx: Context, leaf: Leaf, period: Period) -> ir.Table:
    layers = _table(ctx, LAYERS_TABLE, leaf, "`siyu metrics materialise --from …`")
    rows = layers.filter((layers.grain == period.grain) & (layers.period == period.label))
    if ctx.app.engine.to_arrow(rows.select(ID).limit(1)).num_rows == 0:
        raise MissingDataError(
            f"{leaf.path or '$'}: layers of {period.label} were not computed: run `siyu metrics materialise "
            f"--brand {ctx.brand.code} --from {period.label}` (该周期尚未计算关系层级)"
        )
    return rows.select(ID, "rank").distinct()


def _ranks(value: Any) -> Any:
    return [RANK[v] for v in value] if isinstance(value, list) else RANK[value]


def layer(ctx: Context, leaf: Leaf) -> ir.Table:
    rows = layer_ranks(ctx, leaf, _period(ctx, leaf))
    return select(ctx, rows, "rank", leaf.op, _ranks(leaf.value))


def layer_change(ctx: Context, leaf: Leaf) -> ir.Table:
    period = _period(ctx, leaf)
    cur = layer_ranks(ctx, leaf, period)
    prev = layer_ranks(ctx, leaf, period.previous())
    both = cur.left_join(prev.select(ID, was=prev["rank"]), ID)
    now, was = both["rank"], both.was.fill_null(0)
    cond = {
        "deepened": (was >= 1) & (now > was),
        "declined": (now >= 1) & (now < was),
        "unchanged": (now >= 1) & (now == was),
        "entered": (was == 0) & (now >= 1),
        "left": (was >= 1) & (now == 0),
    }[leaf.value]
    if "from" in leaf.params:
        cond &= was == RANK[leaf.params["from"]]
    if "to" in leaf.params:
        cond &= now == RANK[leaf.params["to"]]
    return ids(both.filter(cond))


def _latest_as_of(ctx: Context, table: ir.Table, leaf: Leaf, how: str) -> date:
    wanted = leaf.params.get("as_of")
    done = table.filter(table.as_of <= ibis.literal(wanted or ctx.as_of))
    if "window_days" in leaf.params:
        done = done.filter(done.window_days == leaf.params["window_days"])
    day = ctx.app.engine.to_arrow(done.aggregate(d=done.as_of.max()))["d"][0].as_py()
    if day is None or (wanted is not None and day != wanted):
        when = wanted or f"up to {ctx.as_of}"
        raise MissingDataError(f"{leaf.path or '$'}: nothing computed as of {when}: run {how} first (尚未计算)")
    return day  # type: ignore[no-any-return]


def _rfm_rows(ctx: Context, leaf: Leaf) -> ir.Table:
    how = "`siyu metrics materialise --as-of …`"
    rfm = _table(ctx, RFM_TABLE, leaf, how)
    day = _latest_as_of(ctx, rfm, leaf, how)
    rows = rfm.filter(rfm.as_of == ibis.literal(day))
    window = leaf.params.get("window_days")
    if window is None:  # several windows on one day: prefer the default 365 days
        windows = ctx.app.engine.to_arrow(rows.select("window_days").distinct())["window_days"].to_pylist()
        window = 365 if 365 in windows or not windows else min(windows)
    return rows.filter(rows.window_days == window)


def rfm_group(ctx: Context, leaf: Leaf) -> ir.Table:
    rows = _rfm_rows(ctx, leaf)
    return select(ctx, rows.select(ID, v=rows.group), "v", leaf.op, leaf.value)


def rfm(ctx: Context, leaf: Leaf) -> ir.Table:
    rows = _rfm_rows(ctx, leaf)
    return select(ctx, rows.select(ID, v=rows[leaf.subject or ""]), "v", leaf.op, leaf.value)


def lifecycle(ctx: Context, leaf: Leaf) -> ir.Table:
    how = "`siyu lifecycle --as-of …`"
    table = _table(ctx, LIFECYCLE_TABLE, leaf, how)
    rows = table.filter(table.as_of == ibis.literal(_latest_as_of(ctx, table, leaf, how)))
    return select(ctx, rows.select(ID, v=rows.stage), "v", leaf.op, leaf.value)


def clv(ctx: Context, leaf: Leaf) -> ir.Table:
    table = _table(ctx, PREDICTIONS_TABLE, leaf, "`siyu clv fit` and `siyu clv predict`")
    return select(ctx, table.select(ID, v=table[leaf.subject or ""]), "v", leaf.op, leaf.value)


NUMERIC_OPS = (">", ">=", "<", "<=", "between")


def tag(ctx: Context, leaf: Leaf) -> ir.Table:
    code = leaf.subject or ""
    definition = tag_definition(ctx.app, ctx.brand.code, code, path=join_path(leaf.path, "tag"))
    values = definition["values"]
    if definition["value_type"] == "enum" and leaf.value is not None and leaf.op not in NUMERIC_OPS:
        wanted = leaf.value if isinstance(leaf.value, list) else [leaf.value]
        for i, v in enumerate(wanted):
            if str(v) not in values:
                where = (
                    join_path(join_path(leaf.path, "value"), i)
                    if isinstance(leaf.value, list)
                    else join_path(leaf.path, "value")
                )
                raise RuleError(where, f"tag {code!r} has no value {v!r}; values: {', '.join(values)} (标签无此取值)")
    rows = tag_rows(ctx.app, ctx.brand.code, code, definition)
    numeric = leaf.op in NUMERIC_OPS or (isinstance(leaf.value, (int, float)) and not isinstance(leaf.value, bool))
    if numeric and definition["value_type"] != "number":
        raise RuleError(
            join_path(leaf.path, "op"), f"tag {code!r} is not numeric: compare it with =, in, exists (非数值标签)"
        )
    column = "number" if numeric else "value"
    value = [str(v) for v in leaf.value] if isinstance(leaf.value, list) and not numeric else leaf.value
    if not numeric and value is not None and not isinstance(value, list):
        value = str(value)
    return select(ctx, rows, column, leaf.op, value)
