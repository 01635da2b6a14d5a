"""Customer–guide bindings (客户归属): the binding run and "who is this customer's guide now".

Scale decides where things live (docs/guides.md): the run is Ibis over the lake (1M customers and
10M orders), its effective-dated history is the lake table `guide_binding_history`, and the current
bindings are both a lake table (`guide_bindings_current`, the run's previous answer, to diff against)
and the store table `guide_bindings`, written only where a binding changed, so `current_guide()`
answers inside any unit of work (a journey's task step, the WeCom channel) without the engine.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.events.catalogue import MAX_KEYS, BindingChanged
from siyu.guides import binding, mirror
from siyu.guides.claims import NODE, claims, idmap, online
from siyu.guides.credit import paid_orders
from siyu.guides.location import nearest_stores
from siyu.guides.models import CurrentBinding, CustomerStore, ManualBinding, StaffMember
from siyu.guides.rulebook import rules_in_force
from siyu.guides.rules import GuideRules
from siyu.ingest.views import current
from siyu.lake.tables import sql_text
from siyu.store.uow import UnitOfWork

HISTORY_TABLE = "guide_binding_history"
CURRENT_TABLE = "guide_bindings_current"
HOME_STORE_TABLE = "guide_customer_stores"
_HOME_ORDER = {"purchase": 0, "profile": 1, "location": 2}
SOURCES = ("wecom_add", "scan", "purchase", "manual", "transfer")


@dataclass(frozen=True)
class Guide:
    """A customer's guide now: the staff member, their store, how and since when, locked until when."""

    staff_id: str
    store_code: str | None
    source: str
    since: dt.datetime
    locked_until: dt.datetime | None
    scope: str


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.UTC)


def current_guide(session: Session, brand: str, customer_id: str, store_code: str | None = None) -> Guide | None:
    """The guide `customer_id` of `brand` is bound to now, from the last binding run, or None.

    In `first_friend_per_store` mode a customer may have one guide per store: `store_code` asks for
    that store's guide; without it (and in `every_friend` mode) the most recently bound guide wins.
    Reads the store only, so it works in any unit of work (`uow.session`).
    """
    rows = session.scalars(
        select(CurrentBinding).where(CurrentBinding.brand == brand, CurrentBinding.customer_id == customer_id)
    ).all()
    if store_code is not None:
        rows = [r for r in rows if r.store_code == store_code] or list(rows)
    if not rows:
        return None
    row = max(rows, key=lambda r: (_aware(r.since), r.staff_id))
    since = _aware(row.since)
    assert since is not None
    return Guide(row.staff_id, row.store_code, row.source, since, _aware(row.locked_until), row.scope)


def do_bind_manually(
    uow: UnitOfWork,
    brand: str,
    customer_id: str,
    staff_id: str,
    store_code: str | None = None,
    source: str = "manual",
    at: dt.datetime | None = None,
    note: str | None = None,
) -> int:
    """Record a manual or transfer binding (it overrides every lock from `at`); the next binding run
    (`siyu guides bind`, or the handler) makes it current. WeCom transfers (h4) call this with
    source `transfer` once `transfer_result` says succeeded."""
    if source not in ("manual", "transfer"):
        raise ValueError(f"source must be manual or transfer, got {source!r}")
    row = ManualBinding(
        brand=brand,
        customer_id=customer_id,
        staff_id=staff_id,
        store_code=store_code,
        source=source,
        at=at or uow.now,
        note=note,
    )
    uow.session.add(row)
    uow.session.flush()
    uow.audit(f"guides.bind.{source}", "customer", customer_id, brand=brand, after={"staff_id": staff_id})
    return row.id


@dataclass
class BindResult:
    brand: str
    claims: int
    steps: int
    bound: int
    changed_customers: int
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, for operators

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def _keep(app: App, tag: str):  # type: ignore[no-untyped-def]
    names: list[str] = []

    def keep(expr: ir.Table, name: str) -> ir.Table:
        names.append(f"guides_{tag}_{name}")
        return app.engine.materialise(expr, names[-1])

    return keep, names


def run_binding(app: App, brand: str, actor: str = "system:guides") -> BindResult:
    """Recompute every binding of `brand` from its claims; write the lake history, then the changed
    current bindings and home stores, the staff mirror and a `BindingChanged` event in one store
    transaction, then the lake copies the next run diffs against (see siyu.guides.mirror)."""
    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        phases[name] = round(time.perf_counter() - started - sum(phases.values()), 3)

    with app.store.unit_of_work() as session:
        rules = rules_in_force(session, brand)
    keep, names = _keep(app, brand)
    try:
        # sorted by position, so each step's `_seq == k` reads only its blocks (zone maps)
        seq = keep(binding.sequenced(claims(app, brand, rules)).order_by("_seq"), "claims")
        stats = app.engine.to_arrow(seq.aggregate(n=seq.count(), steps=seq._seq.max().fill_null(-1) + 1))
        n_claims, steps = int(stats["n"][0].as_py()), int(stats["steps"][0].as_py())
        lap("claims")
        state, changes = binding.run(seq, steps, keep)
        lap("steps")
        now_bound = state.filter(state.staff_id.notnull()).mutate(brand=ibis.literal(brand))
        new_current = app.engine.to_arrow(now_bound.select("brand", *binding.STATE_SCHEMA))
        hist = binding.history(changes).mutate(brand=ibis.literal(brand))
        new_history = app.engine.to_arrow(hist.select("brand", *[c for c in hist.columns if c != "brand"]))
        lap("history")
        new_homes = home_stores(app, brand, rules)
        staff = staff_rows(app, brand)
        lap("home_stores")
    finally:
        for name in names:
            app.engine.drop_temporary(name)
    changed = mirror.changed_customers(app, brand, CURRENT_TABLE, new_current)
    homes_changed = mirror.changed_customers(app, brand, HOME_STORE_TABLE, new_homes)
    lap("diff")
    app.lake.replace(HISTORY_TABLE, new_history, f"brand = {sql_text(brand)}")
    lap("lake_history")
    with app.store.begin(Actor.parse(actor)) as uow:
        mirror.write_changed(uow.session, CurrentBinding, brand, new_current, changed)
        mirror.write_changed(uow.session, CustomerStore, brand, new_homes, homes_changed)
        write_staff(uow.session, brand, staff)
        if changed:
            complete = len(changed) <= MAX_KEYS
            uow.emit(BindingChanged(brand, tuple(changed) if complete else (), complete, len(changed)))
    lap("store")
    mirror.replace_in_lake(app, brand, CURRENT_TABLE, new_current)
    mirror.replace_in_lake(app, brand, HOME_STORE_TABLE, new_homes)
    lap("lake_current")
    seconds = round(time.perf_counter() - started, 3)
    return BindResult(brand, n_claims, steps, new_current.num_rows, len(changed), seconds, phases)


def home_stores(app: App, brand: str, rules: GuideRules) -> pa.Table:
    """brand, customer_id, store_code, source: the store of the customer's latest store purchase,
    else the store_code of their profile (customers rows), else the nearest open store by location."""
    parts = []
    orders = paid_orders(app, brand)
    if orders is not None:
        o = orders.filter(~online(orders, rules))
        # a hash aggregate, not a window (no sort of every store order); paid_at + order_id breaks ties
        latest = o.paid_at.cast("string") + o.order_id
        o = o.group_by("customer_id").aggregate(store_code=o.store_code.argmax(latest))
        parts.append(o.mutate(source=ibis.literal("purchase")))
    customers, ids = current(app, "customers"), idmap(app, brand)
    if customers is not None and ids is not None:
        c = customers.filter((customers.brand == brand) & customers.store_code.notnull()).join(ids, NODE)
        c = c.group_by("customer_id").aggregate(store_code=c.store_code.max())
        parts.append(c.mutate(source=ibis.literal("profile")))
    located = nearest_stores(app, brand, rules)
    if located is not None:
        parts.append(located.select("customer_id", "store_code", source=ibis.literal("location")))
    if not parts:
        return pa.table({k: pa.array([], pa.string()) for k in ("brand", "customer_id", "store_code", "source")})
    u = ibis.union(*parts)
    u = u.mutate(_p=u.source.substitute(_HOME_ORDER, else_=9))  # one row per source and customer
    best = u.group_by("customer_id").aggregate(store_code=u.store_code.argmin(u._p), source=u.source.argmin(u._p))
    best = best.select(
        brand=ibis.literal(brand), customer_id=best.customer_id, store_code=best.store_code, source=best.source
    )
    return app.engine.to_arrow(best)


def write_staff(session: Session, brand: str, staff: list[dict[str, object]]) -> None:
    """Replace the store's staff mirror of `brand` (managers for alerts, workbench keys)."""
    session.execute(delete(StaffMember).where(StaffMember.brand == brand))
    if staff:
        session.execute(insert(StaffMember), staff)


def staff_rows(app: App, brand: str) -> list[dict[str, object]]:
    staff = current(app, "staff")
    if staff is None:
        return []
    s = staff.filter(staff.brand == brand).select("brand", "staff_id", "name", "role", "store_code", "status")
    rows: list[dict[str, object]] = app.engine.to_arrow(s).to_pylist()
    return rows
