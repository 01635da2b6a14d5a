"""The store copy of the binding run's answer (siyu.guides.mirror): bulk-written from Arrow, read back
by `current_guide` exactly, and on a later run only the changed customers are replaced."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.guides.bindings import Guide, current_guide
from siyu.guides.mirror import write_changed
from siyu.guides.models import CurrentBinding

T = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
TS = pa.timestamp("us", "UTC")


def bindings(staff: list[str], locked: list[dt.datetime | None]) -> pa.Table:
    n = len(staff)
    return pa.table(
        {
            "brand": ["b"] * n,
            "customer_id": [f"c{i}" for i in range(n)],
            "scope": ["*"] * n,
            "staff_id": staff,
            "store_code": ["s1", None][:n] + ["s1"] * max(0, n - 2),
            "source": ["wecom_add"] * n,
            "since": pa.array([T] * n, TS),
            "locked_until": pa.array(locked, TS),
        }
    )


def guides(app: App) -> dict[str, Guide | None]:
    with app.store.unit_of_work() as s:
        return {c: current_guide(s, "b", c) for c in ("c0", "c1", "c2")}


def test_bulk_write_then_only_changed_customers(app: App) -> None:
    first = bindings(["g1", "g2", "g3"], [T + dt.timedelta(days=30), None, None])
    with app.store.begin(Actor.system("test")) as uow:
        write_changed(uow.session, CurrentBinding, "b", first, ["c0", "c1", "c2"])
    got = guides(app)
    assert got["c0"] == Guide("g1", "s1", "wecom_add", T, T + dt.timedelta(days=30), "*")
    assert got["c1"] == Guide("g2", None, "wecom_add", T, None, "*")
    # a later run: c1 moved to g9, c2 is no longer bound; c0 unchanged (not rewritten)
    second = bindings(["g1", "g9"], [T + dt.timedelta(days=30), None])
    with app.store.begin(Actor.system("test")) as uow:
        write_changed(uow.session, CurrentBinding, "b", second, ["c1", "c2"])
    got = guides(app)
    assert (got["c0"].staff_id, got["c1"].staff_id, got["c2"]) == ("g1", "g9", None)  # type: ignore[union-attr]
