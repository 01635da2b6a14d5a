"""The loyalty queries over the lake keep their intermediate results near the size of their inputs.

A regression guard for a join order that exploded: the store's account links (an in-memory table,
no statistics) joined the orders on `brand = brand AND paid_at >= enrolled_at` before the identity
map, giving orders × members-per-brand rows (202M on the default demo). Each query the loyalty code
runs on DuckDB is re-run here under EXPLAIN ANALYZE, and its largest operator output must stay within
the rows read from the lake (orders, order lines, identity map): a hash join on the node key
cannot produce more rows than that; an inequality join of orders with members does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import ibis
import pyarrow as pa
import pytest

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.demo.generate import generate
from siyu.demo.loyalty import PROGRAM, program_file
from siyu.engine.connect import Engine
from siyu.engine.duckdb import DuckDBEngine
from siyu.identity.service import MAP_TABLE, run_resolve
from siyu.ingest.importer import import_path
from siyu.loyalty.earn import order_actions
from siyu.loyalty.linked import links_table
from siyu.loyalty.programs import do_apply_program, load_program
from siyu.loyalty.sync import enrol_only
from siyu.loyalty.tiers import qualifying_values

END = dt.date(2026, 10, 31)  # the data's last day
AT = dt.datetime(2026, 10, 31, 16, tzinfo=dt.UTC)  # the next local midnight


class PlanRecordingEngine(DuckDBEngine):
    """The real DuckDB engine; every query it runs is also profiled (EXPLAIN ANALYZE) and the
    largest row count any operator produced is recorded (DuckDB's own profile: a DuckDB-only test)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.con, engine.lake)
        self.largest: list[int] = []

    def to_arrow(self, expr: ibis.Expr) -> pa.Table:
        result = super().to_arrow(expr)  # registers the expression's in-memory tables
        sql = "EXPLAIN (ANALYZE, FORMAT json) " + ibis.to_sql(self.spelled(expr), dialect="duckdb")
        profile = json.loads(self.con.con.sql(sql).fetchall()[0][1])
        self.largest.append(max(_rows(op) for op in profile["operator"]))
        return result


def _rows(op: dict[str, Any]) -> int:
    return max([int(op.get("intermediate_rows", 0)), *(_rows(c) for c in op.get("children", []))])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """A small demo group (300 + 100 people) with the demo program applied and its members enrolled
    (the store on SQLite: these tests are about the lake queries)."""
    home = tmp_path_factory.mktemp("plans")
    app = bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}"))
    summary = generate(home / "demo", customers=300, seed=5, end=END)
    generate(home / "demo_b", customers=100, seed=6, end=END, brand="demo_b")
    import_path(app, home / "demo")
    import_path(app, home / "demo_b")
    run_resolve(app)
    assert summary.end == END
    do_apply_program(app.store, program_file(), actor="test", at=AT)
    assert enrol_only(app, PROGRAM, at=AT) > 50
    yield app
    app.store.engine.dispose()


def _lake_rows(engine: Engine) -> int:
    """The most rows any one lake table the queries read holds."""
    tables = [engine.table(n) for n in ("orders", "order_items", MAP_TABLE)]
    return max(engine.to_arrow(t.count().as_table()).column(0)[0].as_py() for t in tables if t is not None)


def test_tier_values_plan_stays_within_its_inputs(demo: App) -> None:
    recorder = PlanRecordingEngine(demo.engine)
    app = App(settings=demo.settings, store=demo.store, lake=demo.lake, engine=recorder)
    with app.store.unit_of_work() as session:
        program = load_program(session, PROGRAM)
        links = links_table(session, PROGRAM)
    values = qualifying_values(app, program, links, AT)
    assert len(values) >= 5 and recorder.largest
    # the old plan: every paid order × every member of its brand enrolled before it (≈ 10⁶ here)
    assert max(recorder.largest) <= _lake_rows(demo.engine)


def test_order_actions_plan_stays_within_its_inputs(demo: App) -> None:
    recorder = PlanRecordingEngine(demo.engine)
    app = App(settings=demo.settings, store=demo.store, lake=demo.lake, engine=recorder)
    with app.store.unit_of_work() as session:
        program = load_program(session, PROGRAM)
        links = links_table(session, PROGRAM)
    done = pa.table({"key": pa.array([], pa.string())})
    actions = order_actions(app, program, links, done, until=AT)
    assert actions.num_rows >= 5 and recorder.largest
    assert max(recorder.largest) <= _lake_rows(demo.engine)
