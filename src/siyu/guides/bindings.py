"""Customer–guide bindings (客户归属): the binding run and "who is this customer's guide now".

Scale decides where things live (docs/guides.md): the run is Ibis over the lake (1M customers and
10M orders), its effective-dated history is the lake table `guide_binding_history`, and the current
bindings are both a lake table (`guide_bindings_current`, the run's previous answer, to diff against)
and the store table `guide_bindings`, written only where a binding changed, so `current_guide()`
answers inside any unit of work (a journey's task step, the WeCom channel) without the engine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.events.catalogue import MAX_KEYS, BindingChanged
from siyu.guides import binding
from siyu.guides.claims import claims
from siyu.guides.models import CurrentBinding, ManualBinding
from siyu.guides.rulebook import rules_in_force
from siyu.lake.tables import sql_text
from siyu.store.uow import UnitOfWork

HISTORY_TABLE = "guide_binding_history"
CURRENT_TABLE = "guide_bindings_current"
SOURCES = ("wecom_add", "scan", "purchase", "manual", "transfer")
_CHUNK = 5_000


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

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def _keep(app: App, tag: str):  # type: ignore[no-untyped-def]
    names: list[str] = []

    def keep(expr: ir.Table, name: str) -> ir.Table:
        names.append(f"guides_{tag}_{name}")
        return app.engine.materialise(expr, names[-1])

    return keep, names


def run_binding(app: App, brand: str, actor: str = "system:guides") -> BindResult:
    """Recompute every binding of `brand` from its claims; write the lake history, the changed
    current bindings to the store, and a `BindingChanged` event, in one store transaction."""
    started = dt.datetime.now(dt.UTC)
    with app.store.unit_of_work() as session:
        rules = rules_in_force(session, brand)
    keep, names = _keep(app, brand)
    try:
        seq = keep(binding.sequenced(claims(app, brand, rules)), "claims")
        stats = app.engine.to_arrow(seq.aggregate(n=seq.count(), steps=seq._seq.max().fill_null(-1) + 1))
        n_claims, steps = int(stats["n"][0].as_py()), int(stats["steps"][0].as_py())
        state, changes = binding.run(seq, steps, keep)
        now_bound = state.filter(state.staff_id.notnull()).mutate(brand=ibis.literal(brand))
        new_current = app.engine.to_arrow(now_bound.select("brand", *binding.STATE_SCHEMA))
        hist = binding.history(changes).mutate(brand=ibis.literal(brand))
        new_history = app.engine.to_arrow(hist.select("brand", *[c for c in hist.columns if c != "brand"]))
        changed = _changed_customers(app, brand, ibis.memtable(new_current))
    finally:
        for name in names:
            app.engine.drop_temporary(name)
    predicate = f"brand = {sql_text(brand)}"
    app.lake.replace(HISTORY_TABLE, new_history, predicate)
    _write_store(app, brand, new_current, changed, actor)
    app.lake.replace(CURRENT_TABLE, new_current, predicate)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return BindResult(brand, n_claims, steps, new_current.num_rows, len(changed), round(seconds, 3))


def _changed_customers(app: App, brand: str, new: ir.Table) -> list[str]:
    """Customers whose current bindings differ from the last run's (compared in the engine)."""
    old = app.engine.table(CURRENT_TABLE)
    cols = ["customer_id", "scope", "staff_id", "store_code", "source", "since", "locked_until"]
    new_rows = new.select(*cols)
    if old is None:
        return sorted(app.engine.to_arrow(new_rows.select("customer_id").distinct())["customer_id"].to_pylist())
    old_rows = old.filter(old.brand == brand).select(*cols)
    differ = new_rows.difference(old_rows).union(old_rows.difference(new_rows))
    return sorted(app.engine.to_arrow(differ.select("customer_id").distinct())["customer_id"].to_pylist())


def _write_store(app: App, brand: str, current: pa.Table, changed: list[str], actor: str) -> None:
    by_customer = set(changed)
    rows = [r for r in current.to_pylist() if r["customer_id"] in by_customer]
    with app.store.begin(Actor.parse(actor)) as uow:
        s = uow.session
        for i in range(0, len(changed), _CHUNK):
            chunk = changed[i : i + _CHUNK]
            s.execute(
                delete(CurrentBinding).where(CurrentBinding.brand == brand, CurrentBinding.customer_id.in_(chunk))
            )
        for i in range(0, len(rows), _CHUNK):
            s.execute(insert(CurrentBinding), rows[i : i + _CHUNK])
        if changed:
            complete = len(changed) <= MAX_KEYS
            uow.emit(BindingChanged(brand, tuple(changed) if complete else (), complete, len(changed)))
