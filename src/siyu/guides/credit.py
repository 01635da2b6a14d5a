"""Sales credit (业绩归属): which guide and which store every paid order counts for.

| sales_credit  | store order                                         | online order (线上订单)            |
| ------------- | --------------------------------------------------- | ---------------------------------- |
| none          | no guide; the order's store                         | no guide, no store                 |
| bound_guide   | the guide bound at paid_at; the order's store       | the bound guide and their store    |
| order_guide   | guide_code, else the bound guide, else the store only | the bound guide and their store  |

"Bound at paid_at" reads the effective-dated history (a purchase that binds counts for its own
order). With several bindings (per store, every friend) the one of the order's store wins, else the
most recent. Orders are paid and not fully refunded; `net_fen` = amount − refund.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.bootstrap import App
from siyu.guides.claims import NODE, idmap, online
from siyu.guides.rules import GuideRules
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import current
from siyu.metrics.facts import not_fully_refunded

CREDIT_SCHEMA = {
    "order_id": "string",
    "source": "string",
    "customer_id": "string",
    "paid_at": "timestamp('UTC')",
    "net_fen": "int64",
    "online": "boolean",
    "credited_staff": "string",
    "credited_store": "string",
    "credit_via": "string",
}


def paid_orders(app: App, brand: str) -> ir.Table | None:
    orders, ids = current(app, "orders"), idmap(app, brand)
    if orders is None or ids is None:
        return None
    o = orders.filter((orders.brand == brand) & orders.status.isin(PAID_STATUSES) & orders.paid_at.notnull())
    o = o.filter(not_fully_refunded(o))
    return o.join(ids, NODE).mutate(net_fen=(o.amount_fen - o.refund_fen.fill_null(0)).cast("int64"))


def bound_at_payment(orders: ir.Table, history: ir.Table, single_scope: bool = False) -> ir.Table:
    """order key + bound_staff, bound_store: the binding in force when each order was paid."""
    h = history.select(
        "customer_id", "scope", b_staff="staff_id", b_store="store_code", b_from="valid_from", b_to="valid_to"
    )
    o = orders.select("source", "order_id", "customer_id", "paid_at", "store_code")
    j = o.join(h, "customer_id")  # equi-join first: few bindings per customer
    j = j.filter((j.b_from <= j.paid_at) & (j.b_to.isnull() | (j.paid_at < j.b_to)))
    if single_scope:  # first_friend: a customer's bindings never overlap, so at most one matches
        return j.select("source", "order_id", bound_staff=j.b_staff, bound_store=j.b_store)
    same_store = ibis.ifelse(j.b_store == j.store_code, 0, 1)
    rank = ibis.row_number().over(group_by=["source", "order_id"], order_by=[same_store, ibis.desc(j.b_from)])
    j = j.mutate(_r=rank)
    return j.filter(j._r == 0).select("source", "order_id", bound_staff=j.b_staff, bound_store=j.b_store)


def credited(orders: ir.Table, history: ir.Table, rules: GuideRules) -> ir.Table:
    """Every order with its credited guide and store under `rules.sales_credit` (see the table above)."""
    bound = bound_at_payment(orders, history, rules.binding.mode == "first_friend")
    j = orders.left_join(bound, ["source", "order_id"]).drop("source_right", "order_id_right")
    is_online = online(j, rules)
    none_s = ibis.null(str)
    mode = rules.sales_credit
    if mode == "none":
        staff, store, via = none_s, ibis.ifelse(is_online, none_s, j.store_code), ibis.literal("none")
    elif mode == "bound_guide":
        staff = j.bound_staff
        store = ibis.ifelse(is_online, j.bound_store, j.store_code)
        via = ibis.ifelse(j.bound_staff.notnull(), "bound_guide", "none")
    else:
        staff = ibis.ifelse(is_online, j.bound_staff, j.guide_code.fill_null(j.bound_staff))
        store = ibis.ifelse(is_online, j.bound_store, j.store_code)
        via = ibis.cases(
            (~is_online & j.guide_code.notnull(), "order_guide"),
            (j.bound_staff.notnull(), "bound_guide"),
            (store.notnull(), "store"),
            else_="none",
        )
    return j.select(
        "order_id",
        "source",
        "customer_id",
        "paid_at",
        "net_fen",
        online=is_online,
        credited_staff=staff,
        credited_store=store,
        credit_via=via,
    )
