"""Relationship layers (FAST+ 用户关系五层) of every customer at the end of a period (DESIGN §4).

rank 5 koc: repurchase member with ≥ 1 successful propagation in P
rank 4 repurchase: member at the end of P with purchases on ≥ 2 local days in P, made as a member
rank 3 purchased: member at the end of P with purchases on exactly 1 day in P, made as a member
rank 2 member_no_purchase: member at the end of P, no purchase as a member in P
rank 1 basic: not a member, but holds an active relation at the end of P
rank 0 none
"""

from __future__ import annotations

from datetime import UTC

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.core.clock import utc_now
from siyu.lake.tables import sql_text
from siyu.metrics.facts import Facts, utc
from siyu.metrics.labels import LAYERS
from siyu.metrics.periods import Period

LAYERS_TABLE = "layers"


def active_at(table: ir.Table, start_col: str, end_col: str, at: ir.Value) -> ir.BooleanValue:
    """Valid at the instant `at`: started before it and not ended by then (intervals are [start, end))."""
    return (table[start_col] < at) & (table[end_col].isnull() | (table[end_col] >= at))


def layer_ranks(facts: Facts, period: Period) -> ir.Table:
    """customer_id, rank for every customer of the brand at the end of `period`."""
    start, end = utc(period.start), utc(period.end)
    m = facts.memberships
    active = m.filter(active_at(m, "joined_at", "left_at", end))
    members = active.group_by("customer_id").agg(joined_at=active.joined_at.min())

    p = facts.purchases
    in_period = p.filter(p.paid_at >= start, p.paid_at < end)
    as_member = in_period.join(members, "customer_id")
    as_member = as_member.filter(as_member.paid_at >= as_member.joined_at)
    days = as_member.group_by("customer_id").agg(days=as_member.day.nunique())

    r = facts.relations
    connected = r.filter(active_at(r, "started_at", "ended_at", end)).select("customer_id").distinct()
    pr = facts.propagations
    propagated = pr.filter(pr.at >= start, pr.at < end).select("customer_id").distinct()

    flags = (
        facts.customers.left_join(members.select("customer_id", is_member=ibis.literal(True)), "customer_id")
        .drop("customer_id_right")
        .left_join(days, "customer_id")
        .drop("customer_id_right")
        .left_join(connected.mutate(is_connected=ibis.literal(True)), "customer_id")
        .drop("customer_id_right")
        .left_join(propagated.mutate(propagated=ibis.literal(True)), "customer_id")
        .drop("customer_id_right")
    )
    is_member = flags.is_member.fill_null(False)
    n_days = flags.days.fill_null(0)
    rank = ibis.cases(
        (is_member & (n_days >= 2) & flags.propagated.fill_null(False), 5),
        (is_member & (n_days >= 2), 4),
        (is_member & (n_days == 1), 3),
        (is_member, 2),
        (flags.is_connected.fill_null(False), 1),
        else_=0,
    )
    return flags.select("customer_id", rank=rank.cast("int8"))


def store_layers(facts: Facts, period: Period, ranks: ir.Table) -> int:
    """Write the period's layers to the lake table `layers` (replacing an earlier computation of the
    same brand, grain and period), so history, transitions and segments can read them. The table is
    partitioned by brand, grain and period, so a replacement rewrites only that period's files."""
    data = facts.app.engine.to_arrow(ranks)
    n = data.num_rows
    layer = pa.array(LAYERS).take(data["rank"].cast(pa.int32()))
    table = pa.table(
        {
            "brand": pa.array([facts.brand.code] * n, pa.string()),
            "grain": pa.array([period.grain] * n, pa.string()),
            "period": pa.array([period.label] * n, pa.string()),
            "period_end": pa.array([period.end.astimezone(UTC)] * n, pa.timestamp("us", tz="UTC")),
            "customer_id": data["customer_id"],
            "layer": layer,
            "rank": data["rank"],
            "computed_at": pa.array([utc_now()] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    predicate = (
        f"brand = {sql_text(facts.brand.code)} AND grain = '{period.grain}' AND period = {sql_text(period.label)}"
    )
    return facts.app.lake.replace(LAYERS_TABLE, table, predicate, partition_by=["brand", "grain", "period"])
