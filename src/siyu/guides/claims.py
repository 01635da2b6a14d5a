"""Binding claims of one brand, read from the lake and the store as one Ibis table (binding.CLAIM_SCHEMA).

- a `wecom_friend` relation with staff_code starts: bind (wecom_add, or scan), at started_at;
- it ends (the customer deleted the guide): release, at ended_at (if `release_on_delete`);
- a paid store order with guide_code: bind with takeover (renew when not `purchase_binds`), source
  purchase, at paid_at, scope store = the order's store_code;
- a share_click / visit event with properties.staff_code: renew (share_visit lock), at occurred_at;
- a manual or transfer binding (store table guide_manual_bindings): bind with force.

A relation whose `source` column is `scan` (an add through a channel code) has binding source `scan`.

Exclusive channel codes (专属活码, `siyu qrcodes create --exclusive`) prevent double attribution: an
add through one (its `wecom_friend_added` event says `exclusive`) opens a window, until the customer
deletes that guide, in which no other guide's add or purchase binds the customer, in any mode and
scope; manual and transfer bindings still do.
Online orders (a source in `online_sources`, or no store_code) never bind: they are credited.
"""

from __future__ import annotations

from datetime import UTC

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from siyu.bootstrap import App
from siyu.guides.binding import CLAIM_SCHEMA, empty
from siyu.guides.models import ManualBinding
from siyu.guides.rules import GuideRules
from siyu.identity.service import MAP_TABLE
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import current

NODE = ["source", "source_customer_id"]
SHARE_EVENTS = ("share_click", "visit")


def idmap(app: App, brand: str) -> ir.Table | None:
    table = app.engine.table(MAP_TABLE)
    return None if table is None else table.filter(table.brand == brand).select(*NODE, "customer_id")


def staff_stores(app: App, brand: str) -> ir.Table:
    """staff_id → store_code of the brand's staff (empty when no staff were imported)."""
    staff = current(app, "staff")
    if staff is None:
        return empty({"staff_id": "string", "home_store": "string"})
    staff = staff.filter(staff.brand == brand)
    return staff.select("staff_id", home_store=staff.store_code)


def online(orders: ir.Table, rules: GuideRules) -> ir.BooleanValue:
    return orders.store_code.isnull() | orders.source.isin(rules.online_sources or ("",))


def _claim(
    t: ir.Table,
    at: ir.Value,
    staff: ir.Value,
    store: ir.Value,
    source: ir.Value | str,
    kind: str,
    lock_days: int,
    force: bool = False,
    takeover: bool = False,
) -> ir.Table:
    return t.select(
        "customer_id",
        at=at.cast("timestamp('UTC')"),
        staff_id=staff.cast("string"),
        store_code=store.cast("string"),
        source=ibis.literal(source) if isinstance(source, str) else source,
        kind=ibis.literal(kind),
        lock_days=ibis.literal(lock_days, "int64"),
        force=ibis.literal(force),
        takeover=ibis.literal(takeover),
    )


def _friend_claims(app: App, brand: str, ids: ir.Table, rules: GuideRules) -> list[ir.Table]:
    relations = current(app, "relations")
    if relations is None:
        return []
    r = relations.filter(
        (relations.brand == brand) & (relations.relation_type == "wecom_friend") & relations.staff_code.notnull()
    ).join(ids, NODE)
    source = ibis.ifelse(r.source == "scan", "scan", "wecom_add")
    out = [_claim(r, r.started_at, r.staff_code, ibis.null(str), source, "bind", rules.binding.locks.add)]
    if rules.binding.release_on_delete:
        ended = r.filter(r.ended_at.notnull())
        out.append(_claim(ended, ended.ended_at, ended.staff_code, ibis.null(str), "release", "release", 0))
    return out


def exclusive_windows(app: App, brand: str, ids: ir.Table) -> ir.Table | None:
    """customer_id, ex_staff, ex_from, ex_to (NULL: open) of friendships that started through an
    exclusive channel code: the add event with `exclusive` and its relation (same contact, guide, time)."""
    events, relations = current(app, "events"), current(app, "relations")
    if events is None or relations is None:
        return None
    e = events.filter((events.brand == brand) & (events.type == "wecom_friend_added") & events.properties.notnull())
    props = e.properties.cast("json")
    e = e.mutate(ex_staff=props["staff_id"].str, _ex=props["exclusive"].bool)
    e = e.filter(e._ex.fill_null(False) & e.ex_staff.notnull()).select(*NODE, "ex_staff", ex_from=e.occurred_at)
    r = relations.filter((relations.brand == brand) & (relations.relation_type == "wecom_friend"))
    w = e.left_join(
        r.select(*NODE, "staff_code", "started_at", ex_to=r.ended_at),
        [*NODE, e.ex_staff == r.staff_code, e.ex_from == r.started_at],
    )
    w = w.select(*NODE, "ex_staff", "ex_from", "ex_to").join(ids, NODE)
    return w.select(
        "customer_id", "ex_staff", ex_from=w.ex_from.cast("timestamp('UTC')"), ex_to=w.ex_to.cast("timestamp('UTC')")
    )


def _purchase_claims(app: App, brand: str, ids: ir.Table, rules: GuideRules) -> list[ir.Table]:
    orders = current(app, "orders")
    if orders is None:
        return []
    o = orders.filter(
        (orders.brand == brand)
        & orders.status.isin(PAID_STATUSES)
        & orders.paid_at.notnull()
        & orders.guide_code.notnull()
    )
    o = o.filter(~online(o, rules)).join(ids, NODE)
    days = rules.binding.locks.purchase
    if rules.binding.purchase_binds:
        return [_claim(o, o.paid_at, o.guide_code, o.store_code, "purchase", "bind", days, takeover=True)]
    return [_claim(o, o.paid_at, o.guide_code, o.store_code, "purchase", "renew", days)]


def _share_claims(app: App, brand: str, ids: ir.Table, rules: GuideRules) -> list[ir.Table]:
    events = current(app, "events")
    if events is None or not rules.binding.locks.share_visit:
        return []
    e = events.filter((events.brand == brand) & events.type.isin(SHARE_EVENTS) & events.properties.notnull())
    e = e.mutate(_staff=e.properties.cast("json")["staff_code"].str)
    e = e.filter(e._staff.notnull()).join(ids, NODE)
    return [_claim(e, e.occurred_at, e._staff, ibis.null(str), "share_visit", "renew", rules.binding.locks.share_visit)]


def _manual_claims(app: App, brand: str) -> list[ir.Table]:
    with app.store.unit_of_work() as session:
        rows = session.execute(
            select(
                ManualBinding.customer_id,
                ManualBinding.at,
                ManualBinding.staff_id,
                ManualBinding.store_code,
                ManualBinding.source,
            ).where(ManualBinding.brand == brand)
        ).all()
    if not rows:
        return []
    cols = list(zip(*rows, strict=True))
    data = pa.table(
        {
            "customer_id": pa.array(cols[0], pa.string()),
            "at": pa.array([a if a.tzinfo else a.replace(tzinfo=UTC) for a in cols[1]], pa.timestamp("us", "UTC")),
            "staff_id": pa.array(cols[2], pa.string()),
            "store_code": pa.array(cols[3], pa.string()),
            "source": pa.array(cols[4], pa.string()),
        }
    )
    m = ibis.memtable(data)
    return [_claim(m, m.at, m.staff_id, m.store_code, m.source, "bind", 0, force=True)]


def claims(app: App, brand: str, rules: GuideRules) -> ir.Table:
    """Every claim of `brand` with its scope (see binding.py) and the staff member's store filled in."""
    ids = idmap(app, brand)
    parts: list[ir.Table] = _manual_claims(app, brand)
    if ids is not None:
        for build in (_friend_claims, _purchase_claims, _share_claims):
            parts += build(app, brand, ids, rules)
    if not parts:
        return empty(CLAIM_SCHEMA)
    all_claims = ibis.union(*parts)
    windows = exclusive_windows(app, brand, ids) if ids is not None else None
    if windows is not None:  # another guide's add or purchase inside an exclusive window binds nobody
        c = all_claims
        inside = [
            c.customer_id == windows.customer_id,
            c.staff_id != windows.ex_staff,
            c.at > windows.ex_from,
            windows.ex_to.isnull() | (c.at < windows.ex_to),
        ]
        blocked = (c.kind == "bind") & ~c.force
        all_claims = c.filter(~blocked).union(c.filter(blocked).anti_join(windows, inside))
    homes = staff_stores(app, brand)
    c = all_claims.left_join(homes, "staff_id").drop("staff_id_right")
    c = c.mutate(store_code=c.store_code.fill_null(c.home_store)).drop("home_store")
    mode = rules.binding.mode
    scope: ir.Value = (
        ibis.literal("*")
        if mode == "first_friend"
        else c.store_code.fill_null("*")
        if mode == "first_friend_per_store"
        else c.staff_id
    )
    return c.mutate(scope=scope).select(*CLAIM_SCHEMA)
