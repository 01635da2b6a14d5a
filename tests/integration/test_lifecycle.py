"""Lifecycle stages on a hand-made brand: one customer per stage, computed by hand (no CLV model
fitted, so `at_risk` comes from being overdue against the customer's own purchase rhythm)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from siyu.bootstrap import App
from siyu.clv.service import LifecycleRules, lifecycle
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path

ORDERS = {
    "p1": [],  # never bought: prospect
    "n1": ["2024-06-20"],  # first purchase 10 days before: new
    "a1": ["2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01"],  # 29 days since, own gap ~31: active
    "r1": ["2024-01-01", "2024-01-11", "2024-01-21"],  # 161 days since, own gap 10: at risk (overdue)
    "l1": ["2023-01-10", "2023-02-10"],  # 506 days since: lapsed
    "w1": ["2022-12-01", "2024-06-15"],  # back after 562 days, 15 days ago: won back
}


def load(app: App, folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "customers.csv").write_text(
        "brand,source,source_customer_id\n" + "".join(f"lc,crm,{c}\n" for c in ORDERS), encoding="utf-8"
    )
    lines = [
        f"lc,crm,{c}-{i},{c},completed,{day}T12:00:00+08:00,1000\n"
        for c, days in ORDERS.items()
        for i, day in enumerate(days)
    ]
    (folder / "orders.csv").write_text(
        "brand,source,order_id,source_customer_id,status,paid_at,amount_fen\n" + "".join(lines), encoding="utf-8"
    )
    import_path(app, folder)
    run_resolve(app)


def test_one_customer_per_stage_and_flows(sqlite_app: App, tmp_path: Path) -> None:
    load(sqlite_app, tmp_path / "lc")
    rules = LifecycleRules(new_days=30, lapsed_days=365)
    assert lifecycle(sqlite_app, "lc", date(2024, 6, 30), rules)["stages"]["won_back"] == 1
    assert sqlite_app.lake.version("lifecycle") is None  # a read (e.g. the report's) writes nothing
    result = lifecycle(sqlite_app, "lc", date(2024, 6, 30), rules, store=True)
    assert result["model"] is None
    assert result["stages"] == {"prospect": 1, "new": 1, "active": 1, "at_risk": 1, "lapsed": 1, "won_back": 1}
    # A month earlier (2024-05-30): n1 was a prospect, w1 was lapsed; the others had the same stage.
    assert result["previous"] == "2024-05-30"
    assert {(f["from"], f["to"]): f["customers"] for f in result["flows"]} == {
        ("prospect", "new"): 1,
        ("lapsed", "won_back"): 1,
    }
    stored = sqlite_app.engine.table("lifecycle")
    assert stored is not None
    assert sqlite_app.engine.to_arrow(stored.count().name("n").as_table())["n"][0].as_py() == 6


def test_thresholds_are_configurable(sqlite_app: App, tmp_path: Path) -> None:
    load(sqlite_app, tmp_path / "lc")
    # With a 150-day lapse, r1 (161 days) is lapsed rather than at risk; w1's 562-day gap still counts.
    result = lifecycle(sqlite_app, "lc", date(2024, 6, 30), LifecycleRules(lapsed_days=150))
    assert result["stages"]["lapsed"] == 2 and result["stages"]["at_risk"] == 0
