"""Guide performance (导购绩效) for one period, per guide and rolled up per store. All Ibis.

Per guide (docs/guides.md has the definitions with a worked example):
- new_friends / lost_friends: `wecom_friend` relations with the guide started / ended in the period;
- bound_customers: customers bound to the guide at the period's end (binding history);
- attributed_orders / attributed_fen: orders paid in the period credited to the guide (sales credit);
- commission_fen: each attributed order's item lines (or, without lines, its net amount) at the
  rate of its category's rule (else the `*` rule), in the tier the guide's attributed_fen reached;
  summed per guide, then floored to whole fen;
- tasks_done (done in the period) / tasks_open (open now): from the store;
- reply_p50_s: median seconds from a customer's turn (the first inbound chat message after an
  outbound one, or the first of a conversation) to the guide's next outbound message, over turns
  starting in the period (NULL without imported chat messages);
- capital / conversion_rate: FAST+ of the customers bound to the guide at the period's end: how
  many are in a relationship layer, and the share of last period's layered ones that deepened.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir
from sqlalchemy import func, select

from siyu.bootstrap import App
from siyu.guides.bindings import HISTORY_TABLE
from siyu.guides.credit import credited, paid_orders
from siyu.guides.models import GuideTask
from siyu.guides.rulebook import rules_in_force
from siyu.guides.rules import GuideRules
from siyu.ingest.views import current
from siyu.metrics.facts import NoCustomersError, utc
from siyu.metrics.fast import FastMetrics
from siyu.metrics.periods import Period

COUNTS: tuple[str, ...] = ("new_friends", "lost_friends", "bound_customers", "attributed_orders", "attributed_fen")
COUNTS += ("commission_fen", "tasks_done", "tasks_open", "capital")


def _in(col: ir.TimestampValue, period: Period) -> ir.BooleanValue:
    return (col >= utc(period.start)) & (col < utc(period.end))


def friends(app: App, brand: str, period: Period) -> ir.Table | None:
    r = current(app, "relations")
    if r is None:
        return None
    r = r.filter((r.brand == brand) & (r.relation_type == "wecom_friend") & r.staff_code.notnull())
    return r.group_by(staff_id=r.staff_code).aggregate(
        new_friends=_in(r.started_at, period).sum().cast("int64"),
        lost_friends=_in(r.ended_at, period).fill_null(False).sum().cast("int64"),
    )


def bound_at(history: ir.Table, period: Period) -> ir.Table:
    """customer_id, staff_id, store_code of the bindings in force at the period's end."""
    end = utc(period.end)
    h = history.filter((history.valid_from < end) & (history.valid_to.isnull() | (history.valid_to >= end)))
    return h.select("customer_id", "staff_id", "store_code")


def commission(app: App, brand: str, attributed: ir.Table, rules: GuideRules) -> ir.Table:
    """staff_id, commission_fen (see the module docstring)."""
    if not rules.commission:
        return attributed.group_by(staff_id=attributed.credited_staff).aggregate(
            commission_fen=ibis.literal(0, "int64")
        )
    items = current(app, "order_items")
    lines: ir.Table
    base = attributed.select("source", "order_id", "net_fen", staff_id=attributed.credited_staff)
    if items is not None:
        it = items.filter(items.brand == brand).select("source", "order_id", "category", "amount_fen")
        with_lines = base.join(it, ["source", "order_id"])
        without = base.anti_join(it, ["source", "order_id"])
        lines = with_lines.select("staff_id", "category", fen=with_lines.amount_fen.cast("int64")).union(
            without.select("staff_id", category=ibis.null(str), fen=without.net_fen)
        )
    else:
        lines = base.select("staff_id", category=ibis.null(str), fen=base.net_fen)
    totals = base.group_by("staff_id").aggregate(total=base.net_fen.sum())
    tiers = ibis.memtable(
        {
            "rule": [c.category for c in rules.commission for _ in c.tiers],
            "from_fen": [t.from_fen for c in rules.commission for t in c.tiers],
            "rate_bp": [t.rate_bp for c in rules.commission for t in c.tiers],
        }
    )
    # the tier each guide reached, per rule: the highest from_fen at or below their total
    reached = totals.join(tiers, totals.total >= tiers.from_fen)
    reached = reached.mutate(_r=ibis.row_number().over(group_by=["staff_id", "rule"], order_by=ibis.desc("from_fen")))
    rate = reached.filter(reached._r == 0).select("staff_id", "rule", "rate_bp")
    named = {c.category for c in rules.commission} - {"*"}
    lines = lines.mutate(rule=ibis.ifelse(lines.category.isin(named or {""}), lines.category, "*"))
    paid = lines.join(rate, ["staff_id", "rule"])
    per_guide = paid.group_by("staff_id").aggregate(bp_fen=(paid.fen * paid.rate_bp).sum())
    return per_guide.select("staff_id", commission_fen=(per_guide.bp_fen // 10_000).cast("int64"))


def reply_times(app: App, brand: str, period: Period) -> ir.Table | None:
    """staff_id, reply_p50_s over customer turns starting in the period."""
    m = current(app, "messages")
    if m is None:
        return None
    m = m.filter(m.brand == brand)
    conv = ["staff_id", "external_userid"]
    w = ibis.window(group_by=conv, order_by=[m.sent_at, m.msgid])
    after = ibis.window(group_by=conv, order_by=[m.sent_at, m.msgid], following=(0, None))
    m = m.mutate(
        prev_dir=m.direction.lag().over(w),
        next_out=ibis.ifelse(m.direction == "out", m.sent_at, ibis.null("timestamp('UTC')")).min().over(after),
    )
    turns = m.filter((m.direction == "in") & (m.prev_dir.isnull() | (m.prev_dir == "out")) & _in(m.sent_at, period))
    turns = turns.filter(turns.next_out.notnull())
    secs = (turns.next_out.epoch_seconds() - turns.sent_at.epoch_seconds()).cast("float64")
    return turns.mutate(_s=secs).group_by("staff_id").aggregate(reply_p50_s=ibis._._s.median())


def _tasks(app: App, brand: str, period: Period) -> dict[str | None, tuple[int, int]]:
    with app.store.unit_of_work() as session:
        done = session.execute(
            select(GuideTask.assignee_staff_id, func.count())
            .where(
                GuideTask.brand == brand,
                GuideTask.status == "done",
                GuideTask.assignee_staff_id.is_not(None),
                GuideTask.done_at >= period.start,
                GuideTask.done_at < period.end,
            )
            .group_by(GuideTask.assignee_staff_id)
        ).all()
        open_ = session.execute(
            select(GuideTask.assignee_staff_id, func.count())
            .where(GuideTask.brand == brand, GuideTask.status == "open", GuideTask.assignee_staff_id.is_not(None))
            .group_by(GuideTask.assignee_staff_id)
        ).all()
    out: dict[str | None, tuple[int, int]] = {}
    for staff, n in done:
        out[staff] = (int(n), 0)
    for staff, n in open_:
        out[staff] = (out.get(staff, (0, 0))[0], int(n))
    return out


def _fast(app: App, brand: str, period: Period, bound: ir.Table) -> ir.Table | None:
    """staff_id, capital, deepened, base of the customers bound at the period's end."""
    try:
        fast = FastMetrics(app, brand)
        fast.ensure(period)
        cur, prev = fast.ranks(period), fast.ranks(period.previous())
    except NoCustomersError:
        return None
    j = bound.join(cur, "customer_id").join(prev.select("customer_id", prev_rank=prev["rank"]), "customer_id")
    return j.group_by("staff_id").aggregate(
        capital=(j["rank"] >= 1).sum().cast("int64"),
        base=(j.prev_rank >= 1).sum().cast("int64"),
        deepened=((j.prev_rank >= 1) & (j["rank"] > j.prev_rank)).sum().cast("int64"),
    )


def performance(app: App, brand: str, period: Period) -> dict[str, Any]:
    """{"guides": [...], "stores": [...]} for `period` (see the module docstring)."""
    with app.store.unit_of_work() as session:
        rules = rules_in_force(session, brand)
    staff = current(app, "staff")
    parts: list[ir.Table] = []
    history = app.engine.table(HISTORY_TABLE)
    history = None if history is None else history.filter(history.brand == brand)
    guides = (
        staff.filter(staff.brand == brand).select("staff_id", "store_code", "name", "role")
        if staff is not None
        else None
    )
    if (f := friends(app, brand, period)) is not None:
        parts.append(f)
    fast = None
    if history is not None:
        bound = bound_at(history, period)
        parts.append(bound.group_by("staff_id").aggregate(bound_customers=bound.customer_id.nunique().cast("int64")))
        fast = _fast(app, brand, period, bound)
        orders = paid_orders(app, brand)
        if orders is not None:
            att = credited(orders.filter(_in(orders.paid_at, period)), history, rules)
            att = att.filter(att.credited_staff.notnull())
            parts.append(
                att.group_by(staff_id=att.credited_staff).aggregate(
                    attributed_orders=att.count().cast("int64"), attributed_fen=att.net_fen.sum().cast("int64")
                )
            )
            parts.append(commission(app, brand, att, rules))
    if fast is not None:
        parts.append(fast)
    if (r := reply_times(app, brand, period)) is not None:
        parts.append(r)
    rows = _merge(app, parts, guides)
    tasks = _tasks(app, brand, period)
    for row in rows:
        row["tasks_done"], row["tasks_open"] = tasks.get(row["staff_id"], (0, 0))
        base, deepened = row.pop("base", 0) or 0, row.pop("deepened", 0) or 0
        row["conversion_rate"] = None if not base else round(deepened / base, 6)
        row["deepened"], row["base"] = deepened, base
    return {"brand": brand, "period": period.label, "guides": rows, "stores": _stores(rows)}


def _merge(app: App, parts: list[ir.Table], guides: ir.Table | None) -> list[dict[str, Any]]:
    keys = [p.select("staff_id") for p in parts] + ([guides.select("staff_id")] if guides is not None else [])
    if not keys:
        return []
    merged = ibis.union(*keys, distinct=True)
    merged = merged.filter(merged.staff_id.notnull())
    for p in [*parts, *([guides] if guides is not None else [])]:
        merged = merged.left_join(p, "staff_id").drop("staff_id_right")
    rows: list[dict[str, Any]] = app.engine.to_arrow(merged.order_by("staff_id")).to_pylist()
    for row in rows:
        for k in (*COUNTS, "base", "deepened"):
            row[k] = int(row.get(k) or 0)
        row.setdefault("reply_p50_s", None)
    return rows


def _stores(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roll-up per store (of the staff member): sums of the counts; conversion over the sums."""
    stores: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        s = stores.setdefault(
            row.get("store_code"),
            {"store_code": row.get("store_code"), "guides": 0, **dict.fromkeys((*COUNTS, "base", "deepened"), 0)},
        )
        s["guides"] += 1
        for k in (*COUNTS, "base", "deepened"):
            s[k] += row[k]
    for s in stores.values():
        s["conversion_rate"] = None if not s["base"] else round(s["deepened"] / s["base"], 6)
    return sorted(stores.values(), key=lambda s: str(s["store_code"]))
