"""Binding and attribution benchmark: `siyu guides bind` and sales credit over --customers customers and
--orders orders, against a baseline measured in the same run: a plain scan-and-aggregate of the same
lake tables (orders by guide_code, relations by staff_code).

Method. Synthetic lake tables are written straight to Delta (no import, no One-ID: the identity map
is the identity): per customer one `wecom_friend` relation with a random guide (10 % ended later,
20 % a second guide), orders Poisson around --orders/--customers per customer over 2023, 70 % in
store (60 % of those with a guide_code from the same store), 30 % online. Rules: first_friend, locks
add 30 / purchase 90 days, sales_credit order_guide. Phases, each timed:

1. baseline: orders grouped by guide_code (count, sum) and relations grouped by staff_code;
2. bind (first run): claims → state machine → history, current bindings to the lake and the store;
3. bind (re-run): the same, nothing changed (diff in the engine, no store writes);
4. attribution: every order credited (bound guide at paid_at from the history), summed per guide.

Usage: .venv/bin/python benchmarks/bench_guides.py [--customers 1000000] [--orders 10000000]
           [--guides 2000] [--work /tmp/siyu-bench-guides]
Target (2 cores): binding + attribution over 1M customers and 10M orders <= 60 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from pathlib import Path

import duckdb

from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.guides.bindings import HISTORY_TABLE, run_binding
from siyu.guides.credit import credited, paid_orders
from siyu.guides.rulebook import do_apply_rules, rules_in_force

TARGET_S = 60.0
BRAND = "bench"
RULES = f"""brand: {BRAND}
version: 1
binding: {{mode: first_friend, locks: {{add: 30, purchase: 90}}}}
sales_credit: order_guide
"""


def write_lake(app, customers: int, orders: int, guides: int) -> None:  # type: ignore[no-untyped-def]
    """The synthetic tables, generated in DuckDB and written as Delta tables."""
    con = duckdb.connect()
    stores = max(1, guides // 10)
    per = orders / customers
    con.execute("SET threads TO 2")
    # the identity map: each customer under the WeCom and the order sources
    idmap_all = con.sql(
        f"SELECT '{BRAND}' AS brand, s.source, 'c' || i AS source_customer_id, 'c' || i AS customer_id "
        f"FROM range({customers}) t(i), (VALUES ('wecom'), ('pos'), ('tmall')) s(source)"
    ).to_arrow_table()
    relations = con.sql(
        f"""
        WITH base AS (
          SELECT i, (hash(i) % {guides}) AS g,
                 TIMESTAMPTZ '2023-01-01 00:00:00+00' + to_seconds((hash(i * 7) % 31536000)::BIGINT) AS started
          FROM range({customers}) t(i)
        ), extra AS (
          SELECT i, (hash(i * 13) % {guides}) AS g, started + INTERVAL 40 DAY AS started
          FROM base WHERE hash(i * 3) % 5 = 0
        ), allr AS (SELECT * FROM base UNION ALL SELECT * FROM extra)
        SELECT '{BRAND}' AS brand, 'wecom' AS source, 'wecom' AS field, 'wecom_friend' AS relation_type,
               'c' || i AS source_customer_id, started AS started_at,
               CASE WHEN hash(i * 11 + g) % 10 = 0 THEN started + INTERVAL 60 DAY END AS ended_at,
               'g' || g AS staff_code, NULL::VARCHAR AS ended_by
        FROM allr
        """
    ).to_arrow_table()
    staff = con.sql(
        f"SELECT '{BRAND}' AS brand, 'g' || i AS staff_id, 'guide ' || i AS name, 'guide' AS role, "
        f"'s' || (i % {stores}) AS store_code, 'active' AS status, NULL::TIMESTAMPTZ AS joined_at, "
        f"NULL::TIMESTAMPTZ AS left_at FROM range({guides}) t(i)"
    ).to_arrow_table()
    order_rows = con.sql(
        f"""
        WITH o AS (
          SELECT i, (hash(i) % {customers}) AS c, hash(i * 17) % 10 AS kind, hash(i * 5) % {guides} AS g,
                 TIMESTAMPTZ '2023-01-01 00:00:00+00' + to_seconds((hash(i * 7) % 31536000)::BIGINT) AS paid
          FROM range({orders}) t(i)
        )
        SELECT '{BRAND}' AS brand, CASE WHEN kind < 7 THEN 'pos' ELSE 'tmall' END AS source, 'o' || i AS order_id,
               'c' || c AS source_customer_id,
               CASE WHEN kind < 7 THEN 's' || (g % {stores}) END AS store_code,
               CASE WHEN kind < 4 THEN 'g' || g END AS guide_code,
               'completed' AS status, paid AS paid_at, (1000 + hash(i * 3) % 50000)::BIGINT AS amount_fen,
               0::BIGINT AS refund_fen
        FROM o
        """
    ).to_arrow_table()
    from siyu.identity.service import MAP_TABLE

    app.lake.overwrite(MAP_TABLE, idmap_all)
    for name, table in (("relations", relations), ("staff", staff), ("orders", order_rows)):
        app.lake.overwrite(name, table)
    print(f"  data: {customers:,} customers, {order_rows.num_rows:,} orders (≈{per:.1f} each), "
          f"{relations.num_rows:,} relations, {guides:,} guides", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--orders", type=int, default=10_000_000)
    p.add_argument("--guides", type=int, default=2_000)
    p.add_argument("--work", type=Path, default=Path("/tmp/siyu-bench-guides"))
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    app = bootstrap(Settings(home=args.work, database_url=f"sqlite:///{args.work / 'siyu.db'}"))
    t = time.perf_counter()
    write_lake(app, args.customers, args.orders, args.guides)
    print(f"  generate + write: {time.perf_counter() - t:.1f} s", flush=True)
    with app.store.begin(Actor.system("bench")) as uow:
        do_apply_rules(uow, RULES, "bench.yaml")
    e = app.engine
    results: dict[str, float] = {}

    t = time.perf_counter()
    o, r = e.table("orders"), e.table("relations")
    assert o is not None and r is not None
    e.to_arrow(o.group_by("guide_code").aggregate(n=o.count(), fen=o.amount_fen.sum()))
    e.to_arrow(r.group_by("staff_code").aggregate(n=r.count()))
    results["baseline_s"] = time.perf_counter() - t

    t = time.perf_counter()
    first = run_binding(app, BRAND, actor="system:bench")
    results["bind_first_s"] = time.perf_counter() - t
    t = time.perf_counter()
    again = run_binding(app, BRAND, actor="system:bench")
    results["bind_rerun_s"] = time.perf_counter() - t

    t = time.perf_counter()
    with app.store.unit_of_work() as session:
        rules = rules_in_force(session, BRAND)
    orders, hist = paid_orders(app, BRAND), e.table(HISTORY_TABLE)
    assert orders is not None and hist is not None
    c = credited(orders, hist.filter(hist.brand == BRAND), rules)
    per_guide = e.to_arrow(c.group_by("credited_staff", "credit_via").aggregate(n=c.count(), fen=c.net_fen.sum()))
    results["attribution_s"] = time.perf_counter() - t

    total = results["bind_first_s"] + results["attribution_s"]
    report = {
        "customers": args.customers,
        "orders": args.orders,
        "claims": first.claims,
        "steps": first.steps,
        "bound": first.bound,
        "rerun_changed": again.changed_customers,
        "credited_groups": per_guide.num_rows,
        "bind_first_phases_s": first.phases,
        "bind_rerun_phases_s": again.phases,
        **{k: round(v, 2) for k, v in results.items()},
        "bind_plus_attribution_s": round(total, 2),
        "vs_baseline": round(total / max(results["baseline_s"], 1e-9), 1),
        "target_s": TARGET_S,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
