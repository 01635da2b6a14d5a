"""Loyalty ledger benchmark on PostgreSQL (积分账本): ledger transactions per second and the nightly
expiry, each against a baseline measured in the same run on the same server.

1. ledger tx/s: --workers processes (each its own engine and Store) post a 50/50 mix of earnings
   (1–50 points) and redemptions (1–30 points, refused when short) with unique keys on random
   accounts among --accounts (each seeded with 1,000 points in one to three lots), for --seconds
   after a warm-up. Each is `do_earn` / `do_redeem` in its own unit of work: read the account, the
   key (and the lots) without a lock, (expire due lots,) write the txn, lots, moves and the account
   in one statement guarded by the account's row version (under the row lock if that lost), commit.
   Baseline: the same workers, each transaction a single-row
   `UPDATE loyalty_accounts SET growth = growth + 1 WHERE id = :random` and commit.
   Afterwards the ledger is checked by SQL: Σ txns = balance = Σ lots − debt for every account.
2. nightly expiry: --expiry-accounts accounts in a program of their own, each with one to three
   lots of 100 points (one earn txn and move each), about half of the lots due, bulk-loaded with
   INSERT … SELECT generate_series; then `do_expire` is timed. Baseline: on a copy of points_lots
   (same expiry index), `UPDATE … SET remaining = 0 WHERE expires_at <= :at AND remaining > 0`.
   Afterwards: every due lot is empty, and Σ txns = balance for every account.
3. sync and tier evaluation over the lake (--phase lake): --members accounts of brand `demo`, each
   with ten paid orders in 2026 (one order line each, a third of them 面霜 which earn ×2), written
   straight to the lake with their identity map and memberships; in the store, every account and
   link, and a posting for every order but the first of 1,000 members (NEW_ORDERS). Timed: `sync`
   (finds nothing to enrol, posts the 1,000 new orders, upgrades the accounts they moved) and a
   periodic `tiers evaluate` of every account (seeded at the tier and growth its orders give, except
   one in 500 a tier below — upgraded, with the tier's coupons — and one in 50 with stale growth). Baseline: one DuckDB
   `GROUP BY source_customer_id` summing the same orders' Parquet files (read the orders once).

The benchmark creates a database of its own on the server (dropped at the end unless --keep).

Usage: .venv/bin/python benchmarks/bench_loyalty.py [--database-url postgresql://u:pw@host/db]
           [--accounts 10000] [--seconds 20] [--workers 8] [--expiry-accounts 1000000]
           [--members 1000000] [--phase tx|expiry|lake|both|all] [--keep]
--database-url defaults to $SIYU_TEST_POSTGRES_URL; `both` is tx and expiry, `all` adds lake.
Targets (2 cores): ≥ 1,000 ledger tx/s with 8 workers; expiry of 1M accounts ≤ 30 s; sync and
tier evaluation over 1M members / 10M orders ≤ 60 s each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine, create_engine, text

from siyu.loyalty.errors import InsufficientPointsError
from siyu.loyalty.expiry import do_expire
from siyu.loyalty.points import do_earn, do_redeem
from siyu.loyalty.programs import do_apply_program, load_program
from siyu.store.db import Store, make_engine, open_store

DEMO = Path(__file__).parents[1] / "src/siyu/loyalty/examples/demo_group.yaml"
CODE = "demo_club"
EXPIRY_CODE = "bench_expiry"
AT = dt.datetime(2027, 3, 1, 2, tzinfo=dt.UTC)  # the expiry run; the ledger phase uses the real clock
TARGET_TPS = 1_000
TARGET_EXPIRY_S = 30.0  # issue 19 (60 s before)
TARGET_LAKE_S = 60.0
ORDERS_PER_MEMBER = 10
NEW_ORDERS = 1_000  # orders the timed sync finds unposted
LAKE_AT = dt.datetime(2026, 12, 31, 16, tzinfo=dt.UTC)  # the end of 2026-12-31 local: after every order
WARMUP = 1.0  # seconds of each phase not counted
# Figures before issue 19 (docs/loyalty.md, same machine, quiet), printed beside this run's.
BEFORE = {"ledger": "587 tx/s = 0.43×", "expiry": "59.9 s = 8.2×"}


def _psycopg(url: str) -> str:
    return "postgresql+psycopg://" + url.removeprefix("postgresql://").removeprefix("postgresql+psycopg://")


# -- setup --------------------------------------------------------------------------------------


def seed_accounts(engine: Engine, program: str, n: int, *, due_share: float, earned: dt.datetime) -> None:
    """`n` accounts of `program`, each with 1–3 lots (one earn txn + move each) summing its balance.
    A lot is due at AT with probability ≈ `due_share` (by a hash of its id), else a year later."""
    due, later = AT - dt.timedelta(days=1), AT + dt.timedelta(days=365)
    params = {"p": program, "n": n, "earned": earned, "due": due, "later": later, "share": int(due_share * 1000)}
    statements = [
        """INSERT INTO loyalty_accounts (program, member_no, brand, enrolled_at, enrolled_via, tier, tier_since,
                                         growth, balance, debt, status)
           SELECT :p, 'm' || g, 'demo', :earned, 'migration', 'silver', :earned, 0, 0, 0, 'active'
           FROM generate_series(1, :n) g""",
        # 1,000 points over 1–3 lots for the ledger phase (1000 / k each, the first takes the rest)
        """INSERT INTO points_txns (program, account_id, kind, points, idempotency_key, actor, balance_after,
                                    created_at)
           SELECT a.program, a.id, 'earn',
                  CASE WHEN :share = 0 THEN (1000 / (1 + a.id % 3)) + CASE WHEN j = 1 THEN 1000 % (1 + a.id % 3)
                       ELSE 0 END ELSE 100 END,
                  'seed-' || a.id || '-' || j, 'bench', 0, :earned
           FROM loyalty_accounts a CROSS JOIN generate_series(1, 3) j
           WHERE a.program = :p AND j <= 1 + a.id % 3""",
        """INSERT INTO points_lots (account_id, txn_id, brand, earned_at, expires_at, points, remaining)
           SELECT t.account_id, t.id, 'demo', t.created_at,
                  CASE WHEN ((t.id * 2654435761) % 1000) < :share THEN CAST(:due AS timestamptz)
                       ELSE CAST(:later AS timestamptz) END,
                  t.points, t.points
           FROM points_txns t WHERE t.program = :p AND t.kind = 'earn'""",
        """INSERT INTO points_lot_moves (txn_id, lot_id, points)
           SELECT l.txn_id, l.id, l.points FROM points_lots l JOIN points_txns t ON t.id = l.txn_id
           WHERE t.program = :p""",
        # balance_after: the running sum in id order, as the ledger would have written it
        """UPDATE points_txns t SET balance_after = s.after
           FROM (SELECT id, SUM(points) OVER (PARTITION BY account_id ORDER BY id) AS after
                 FROM points_txns WHERE program = :p) s
           WHERE t.id = s.id""",
        """UPDATE loyalty_accounts a SET balance = s.total
           FROM (SELECT account_id, SUM(points) AS total FROM points_txns WHERE program = :p GROUP BY account_id) s
           WHERE a.id = s.account_id""",
        """INSERT INTO loyalty_account_links (program, brand, customer_id, account_id, linked_at)
           SELECT program, 'demo', member_no, id, enrolled_at FROM loyalty_accounts WHERE program = :p""",
    ]
    with engine.begin() as c:
        for sql in statements:
            c.execute(text(sql), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))


def check_ledger_sql(engine: Engine, program: str) -> str:
    """The ledger invariants, by SQL over every account of `program`; returns a one-line verdict."""
    with engine.connect() as c:
        bad = c.execute(
            text(
                """SELECT COUNT(*) FROM loyalty_accounts a
                   LEFT JOIN (SELECT account_id, SUM(points) s FROM points_txns GROUP BY account_id) t
                          ON t.account_id = a.id
                   LEFT JOIN (SELECT account_id, SUM(remaining) s, MIN(remaining) m FROM points_lots
                              GROUP BY account_id) l ON l.account_id = a.id
                   WHERE a.program = :p AND (a.balance <> COALESCE(t.s, 0) OR a.balance <> COALESCE(l.s, 0) - a.debt
                         OR COALESCE(l.m, 0) < 0)"""
            ),
            {"p": program},
        ).scalar_one()
        moves = c.execute(
            text(
                """SELECT COUNT(*) FROM points_lots l
                   JOIN loyalty_accounts a ON a.id = l.account_id AND a.program = :p
                   LEFT JOIN (SELECT lot_id, SUM(points) s FROM points_lot_moves GROUP BY lot_id) m ON m.lot_id = l.id
                   WHERE l.remaining <> COALESCE(m.s, 0)"""
            ),
            {"p": program},
        ).scalar_one()
    assert bad == 0 and moves == 0, f"ledger broken: {bad} accounts, {moves} lots disagree"
    return "ok (Σ txns = balance = Σ lots − debt; Σ moves = remaining)"


# -- phase 1: ledger transactions per second -----------------------------------------------------


def run_workers(url: str, kind: str, workers: int, seconds: float, ids: tuple[int, int]) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    stop = ctx.Value("d", 0.0)
    out = ctx.Queue()
    ready = ctx.Queue()
    procs = [
        ctx.Process(target=_worker_entry, args=(url, kind, n, ids, start, stop, out, seconds, ready))
        for n in range(workers)
    ]
    for p in procs:
        p.start()
    # wait until every worker has imported and connected (a loaded machine takes many seconds)
    for _ in procs:
        ready.get(timeout=300)
    began = time.time()
    stop.value = began + WARMUP + seconds
    start.set()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    counted = sum(r[0] for r in results)
    return {"tx": counted, "tps": counted / seconds, "refused": sum(r[1] for r in results)}


def _worker_entry(
    url: str, kind: str, n: int, ids: tuple[int, int], start: Any, stop: Any, out: Any, seconds: float, ready: Any
) -> None:
    rng = random.Random(n)
    lo, hi = ids
    store = Store(make_engine(url))
    program = None
    if kind == "ledger":
        with store.unit_of_work() as session:
            program = load_program(session, CODE)
    with store.engine.connect() as c:  # open the pool's connection before the clock starts
        c.execute(text("SELECT 1"))
    ready.put(n)
    start.wait()
    end = stop.value
    counted_from = end - seconds
    counted = refused = i = 0
    while (now := time.time()) < end:
        account = rng.randint(lo, hi)
        if kind == "baseline":
            with store.engine.begin() as c:
                c.execute(text("UPDATE loyalty_accounts SET growth = growth + 1 WHERE id = :id"), {"id": account})
        else:
            assert program is not None
            key = f"w{n}-{i}-{uuid.uuid4().hex[:8]}"
            at = dt.datetime.now(dt.UTC)
            try:
                with store.write_unit() as session:
                    if rng.random() < 0.5:
                        do_earn(session, program, account, rng.randint(1, 50), key=key, at=at, actor="bench")
                    else:
                        do_redeem(session, program, account, rng.randint(1, 30), key=key, at=at, actor="bench")
            except InsufficientPointsError:
                refused += 1
        i += 1
        if now >= counted_from:
            counted += 1
    store.engine.dispose()
    out.put((counted, refused, i))


# -- phase 2: nightly expiry ---------------------------------------------------------------------


def expiry_phase(url: str, store: Store, n: int) -> dict[str, float]:
    source = DEMO.read_text(encoding="utf-8").replace(f"program: {CODE}", f"program: {EXPIRY_CODE}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_expiry.yaml"
        path.write_text(source, encoding="utf-8")
        do_apply_program(store, path, actor="bench", at=AT)
    engine = store.engine
    t = time.perf_counter()
    seed_accounts(engine, EXPIRY_CODE, n, due_share=0.5, earned=AT - dt.timedelta(days=400))
    load_s = time.perf_counter() - t
    with engine.connect() as c:
        lots, due_lots, due_points = c.execute(
            text(
                """SELECT COUNT(*), COUNT(*) FILTER (WHERE expires_at <= :at),
                          COALESCE(SUM(remaining) FILTER (WHERE expires_at <= :at), 0)
                   FROM points_lots l JOIN loyalty_accounts a ON a.id = l.account_id AND a.program = :p"""
            ),
            {"at": AT, "p": EXPIRY_CODE},
        ).one()
    # baseline: the least an expiry can do, on a copy with the same index
    with engine.begin() as c:
        c.execute(text("CREATE TABLE bench_lots_copy AS SELECT * FROM points_lots"))
        c.execute(text("CREATE INDEX ix_bench_lots_copy_expiry ON bench_lots_copy (expires_at, account_id)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE bench_lots_copy"))
    t = time.perf_counter()
    with engine.begin() as c:
        c.execute(
            text("UPDATE bench_lots_copy SET remaining = 0 WHERE expires_at <= :at AND remaining > 0"), {"at": AT}
        )
    baseline_s = time.perf_counter() - t
    t = time.perf_counter()
    run = do_expire(store, EXPIRY_CODE, at=AT)
    expire_s = time.perf_counter() - t
    assert run.lots == due_lots and run.points == due_points, (run, due_lots, due_points)
    with engine.connect() as c:
        left = c.execute(
            text("SELECT COUNT(*) FROM points_lots WHERE expires_at <= :at AND remaining > 0"), {"at": AT}
        ).scalar_one()
    assert left == 0
    verdict = check_ledger_sql(engine, EXPIRY_CODE)
    return {
        "accounts": n,
        "lots": lots,
        "due_lots": due_lots,
        "expired_accounts": run.accounts,
        "expired_points": run.points,
        "load_s": load_s,
        "expire_s": expire_s,
        "baseline_s": baseline_s,
        "verdict": verdict,  # type: ignore[dict-item]
    }


# -- phase 3: sync and tier evaluation over the lake -----------------------------------------------


def _lake_sql(chunk: tuple[int, int]) -> dict[str, str]:
    """DuckDB SELECTs of one chunk [lo, hi) of members: customers, identity map, memberships, orders,
    order lines. Member i: source customer c<i> (phone 139<i>), customer C<i>, member M<i>, joined
    2025-06-01 + i seconds; order k (0–9) paid on day (7i + 36k) mod 365 of 2026, 100–999 yuan."""
    from siyu.ingest.schema import ENTITIES, Kind

    lo, hi = chunk
    people = f"SELECT i FROM range({lo}, {hi}) t(i)"
    orders = (
        "SELECT i, k, 'o' || i || '_' || k AS order_id,"
        " TIMESTAMPTZ '2026-01-01 02:00:00+00' + to_days(CAST((i * 7 + k * 36) % 365 AS INTEGER))"
        " + to_seconds(CAST(i % 3600 AS BIGINT)) AS paid_at,"
        " 10000 + (hash(i * 10 + k) % 90000)::BIGINT AS amount_fen"
        f" FROM range({lo}, {hi}) t(i) CROSS JOIN range(0, {ORDERS_PER_MEMBER}) u(k)"
    )
    given: dict[str, tuple[str, dict[str, str]]] = {
        "customers": (people, {"phone": "'139' || lpad(CAST(i AS VARCHAR), 8, '0')"}),
        "memberships": (
            people,
            {
                "member_no": "'M' || i",
                "program": "'demo_club'",
                "joined_at": "TIMESTAMPTZ '2025-06-01 00:00:00+00' + to_seconds(i)",
            },
        ),
        "orders": (
            orders,
            {"order_id": "order_id", "status": "'paid'", "paid_at": "paid_at", "amount_fen": "amount_fen"},
        ),
        "order_items": (
            orders,
            {
                "order_id": "order_id",
                "line_no": "1",
                "category": "CASE WHEN (i + k) % 3 = 0 THEN '面霜' ELSE '洁面' END",
                "qty": "1",
                "amount_fen": "amount_fen",
            },
        ),
    }
    types = {Kind.TIMESTAMP: "TIMESTAMPTZ", Kind.DATE: "DATE", Kind.FEN: "BIGINT", Kind.INT: "BIGINT"}
    meta = (
        "0::BIGINT AS _line, '' AS _row_hash, TIMESTAMPTZ '2027-01-01 00:00:00+00' AS ingested_at,"
        " 'bench' AS _import_id, 'bench' AS _file"
    )
    out = {
        "identity_map": "SELECT 'demo' AS brand, 'pos' AS source, 'c' || i AS source_customer_id,"
        f" 'C' || i AS customer_id, TIMESTAMPTZ '2027-01-01 00:00:00+00' AS resolved_at FROM ({people})"
    }
    for name, (rows, values) in given.items():
        values = {"brand": "'demo'", "source": "'pos'", "source_customer_id": "'c' || i", **values}
        cols = [
            f"CAST({values.get(c.name, 'NULL')} AS {types.get(c.kind, 'VARCHAR')}) AS {c.name}"
            for c in ENTITIES[name].columns
        ]
        if name == "order_items":
            cols = [c for c in cols if not c.endswith(" source_customer_id")]
        out[name] = f"SELECT {', '.join(cols)}, {meta} FROM ({rows})"
    return out


def build_lake(home: Path, n: int) -> None:
    """Write the members' lake tables in chunks of 200,000 members (2M orders)."""
    import duckdb

    from siyu.lake.tables import Lake

    lake = Lake(home / "lake")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    step = 200_000
    for lo in range(0, n, step):
        for name, sql in _lake_sql((lo, min(n, lo + step))).items():
            lake.append(name, con.sql(sql).to_arrow_table())
    con.close()


def seed_store(engine: Engine, n: int, values: dict[int, int], tiers: list[tuple[str, int]]) -> None:
    """Accounts M<i> linked to C<i>, at the tier and growth `values` (account number i → growth)
    gives, except i % 500 == 1 a tier lower and i % 50 == 2 with growth 0 (an evaluation changes
    them); postings for every order but k = 0 of every member i % step == 0 (NEW_ORDERS of them)."""
    step = max(1, n // NEW_ORDERS)
    case = "CASE " + " ".join(f"WHEN v.g >= {t} THEN '{code}'" for code, t in reversed(tiers)) + " END"
    lower = (
        "CASE "
        + " ".join(
            f"WHEN v.g >= {t} THEN '{tiers[max(0, k - 1)][0]}'" for k, (code, t) in reversed(list(enumerate(tiers)))
        )
        + " END"
    )
    with engine.begin() as c:
        c.execute(text("CREATE TEMP TABLE bench_values (i BIGINT PRIMARY KEY, g BIGINT)"))
        raw = c.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy("COPY bench_values (i, g) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for i in range(n):
                copy.write_row((i, values.get(i, 0)))
        statements = [
            f"""INSERT INTO loyalty_accounts (program, member_no, brand, enrolled_at, enrolled_via, tier, tier_since,
                                             growth, balance, debt, status)
               SELECT :p, 'M' || v.i, 'demo', TIMESTAMPTZ '2025-06-01 00:00:00+00' + v.i * INTERVAL '1 second',
                      'membership', CASE WHEN v.i % 500 = 1 THEN {lower} ELSE {case} END,
                      TIMESTAMPTZ '2025-06-01 00:00:00+00', CASE WHEN v.i % 50 = 2 THEN 0 ELSE v.g END,
                      0, 0, 'active'
               FROM bench_values v ORDER BY v.i""",
            """INSERT INTO loyalty_account_links (program, brand, customer_id, account_id, linked_at)
               SELECT program, 'demo', 'C' || substr(member_no, 2), id, enrolled_at FROM loyalty_accounts
               WHERE program = :p""",
            """INSERT INTO loyalty_order_postings (program, key, account_id, points, posted_at)
               SELECT a.program, 'order:demo:pos:o' || substr(a.member_no, 2) || '_' || k, a.id, 0, :at
               FROM loyalty_accounts a CROSS JOIN generate_series(0, :k) k
               WHERE a.program = :p AND NOT (k = 0 AND CAST(substr(a.member_no, 2) AS BIGINT) % :step = 0)""",
        ]
        for sql in statements:
            c.execute(text(sql), {"p": CODE, "at": LAKE_AT, "k": ORDERS_PER_MEMBER - 1, "step": step})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))


def lake_phase(url: str, store: Store, n: int, work: Path) -> dict[str, Any]:
    import duckdb

    from siyu.bootstrap import App, bootstrap
    from siyu.config import Settings
    from siyu.loyalty.linked import links_table
    from siyu.loyalty.sync import sync
    from siyu.loyalty.tiers import evaluate, qualifying_values

    home = work / "home"
    t = time.perf_counter()
    build_lake(home, n)
    app: App = bootstrap(Settings(home=home, database_url=url))
    with app.store.unit_of_work() as session:
        program = load_program(session, CODE)
    # the growth every member's orders give (a member enrolled before all of them: every order counts)
    links = pa.table(
        {
            "brand": pa.array(["demo"] * n),
            "customer_id": pa.array([f"C{i}" for i in range(n)]),
            "account_id": pa.array(range(n), pa.int64()),
            "enrolled_at": pa.array([AT - dt.timedelta(days=1000)] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    values = qualifying_values(app, program, links, LAKE_AT)
    seed_store(store.engine, n, values, [(x.code, x.threshold) for x in program.tiers.levels])
    load_s = time.perf_counter() - t
    with app.store.unit_of_work() as session:
        assert links_table(session, CODE).num_rows == n
    orders = app.lake.files("orders")
    con = duckdb.connect()
    t = time.perf_counter()
    groups = con.sql(
        f"SELECT COUNT(*) FROM (SELECT source_customer_id, SUM(amount_fen) FROM read_parquet({orders!r})"
        " GROUP BY source_customer_id)"
    ).fetchall()
    baseline_s = time.perf_counter() - t
    assert groups[0][0] == n
    t = time.perf_counter()
    synced = sync(app, CODE, at=LAKE_AT, actor="bench")
    sync_s = time.perf_counter() - t
    new = len(range(0, n, max(1, n // NEW_ORDERS)))
    assert synced.orders == new and synced.enrolled == 0, synced.as_dict()
    t = time.perf_counter()
    run = evaluate(app, CODE, at=LAKE_AT, actor="bench")
    evaluate_s = time.perf_counter() - t
    app.store.engine.dispose()
    return {
        "members": n,
        "orders": n * ORDERS_PER_MEMBER,
        "new": new,
        "sync": synced.as_dict(),
        "evaluated": run.evaluated,
        "upgraded": run.upgraded,
        "downgraded": run.downgraded,
        "load_s": load_s,
        "baseline_s": baseline_s,
        "sync_s": sync_s,
        "evaluate_s": evaluate_s,
    }


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("SIYU_TEST_POSTGRES_URL"))
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--expiry-accounts", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=1_000_000, help="lake phase: members (10 orders each)")
    parser.add_argument("--phase", choices=["tx", "expiry", "lake", "both", "all"], default="all")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        sys.exit("give a PostgreSQL server: --database-url postgresql://user:pw@host/db (or SIYU_TEST_POSTGRES_URL)")

    name = f"siyu_bench_loyalty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_psycopg(args.database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.database_url.rsplit("/", 1)[0] + "/" + name
    print(f"database {name} on {args.database_url.rsplit('@', 1)[-1].rsplit('/', 1)[0]}; {os.cpu_count()} cores")
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        store = open_store(url)
        do_apply_program(store, DEMO, actor="bench", at=AT)
        if args.phase in ("tx", "both", "all"):
            t = time.perf_counter()
            seed_accounts(store.engine, CODE, args.accounts, due_share=0.0, earned=AT - dt.timedelta(days=30))
            with store.engine.connect() as c:
                lo, hi = c.execute(
                    text("SELECT MIN(id), MAX(id) FROM loyalty_accounts WHERE program = :p"), {"p": CODE}
                ).one()
            print(f"seeded {args.accounts:,} accounts in {time.perf_counter() - t:.1f} s", flush=True)
            base = run_workers(url, "baseline", args.workers, args.seconds, (lo, hi))
            print(f"baseline: {base['tps']:,.0f} tx/s", flush=True)
            ledger = run_workers(url, "ledger", args.workers, args.seconds, (lo, hi))
            print(f"ledger  : {ledger['tps']:,.0f} tx/s ({ledger['refused']:,} refused as short)", flush=True)
            verdict = check_ledger_sql(store.engine, CODE)
            ratio = ledger["tps"] / base["tps"]
            rows.append(
                (
                    f"ledger tx/s, {args.workers} workers, {args.accounts:,} accounts",
                    f"{ledger['tps']:,.0f}",
                    f"{base['tps']:,.0f} (1-row UPDATE)",
                    f"{ratio:.2f}×  {'✓' if ledger['tps'] >= TARGET_TPS else '✗'} ≥ {TARGET_TPS:,}",
                    BEFORE["ledger"],
                )
            )
            print(f"ledger check: {verdict}", flush=True)
        if args.phase in ("expiry", "both", "all"):
            print(f"loading {args.expiry_accounts:,} accounts for the expiry …", flush=True)
            e = expiry_phase(url, store, args.expiry_accounts)
            print(
                f"loaded {e['accounts']:,} accounts, {e['lots']:,} lots ({e['due_lots']:,} due) in {e['load_s']:.1f} s;"
                f" expired {e['expired_points']:,} points on {e['expired_accounts']:,} accounts; check: {e['verdict']}",
                flush=True,
            )
            rows.append(
                (
                    f"nightly expiry, {e['accounts']:,} accounts",
                    f"{e['expire_s']:.1f} s",
                    f"{e['baseline_s']:.1f} s (bare UPDATE)",
                    f"{e['expire_s'] / e['baseline_s']:.1f}×  {'✓' if e['expire_s'] <= TARGET_EXPIRY_S else '✗'}"
                    f" ≤ {TARGET_EXPIRY_S:.0f} s",
                    BEFORE["expiry"],
                )
            )
        if args.phase in ("lake", "all"):
            print(f"writing {args.members:,} members and {args.members * ORDERS_PER_MEMBER:,} orders …", flush=True)
            with tempfile.TemporaryDirectory() as work:
                r = lake_phase(url, store, args.members, Path(work))
            print(
                f"loaded in {r['load_s']:.1f} s; sync posted {r['sync']['orders']:,} new orders"
                f" ({r['sync']['points_earned']:,} points, {r['sync']['tiers_upgraded']:,} upgrades); evaluation:"
                f" {r['evaluated']:,} accounts, {r['upgraded']:,} up, {r['downgraded']:,} down",
                flush=True,
            )
            scale = f"{r['members']:,} members, {r['orders']:,} orders"
            for label, key in (("sync", "sync_s"), ("tiers evaluate", "evaluate_s")):
                rows.append(
                    (
                        f"{label}, {scale}",
                        f"{r[key]:.1f} s",
                        f"{r['baseline_s']:.2f} s (DuckDB GROUP BY)",
                        f"{r[key] / r['baseline_s']:.1f}×  {'✓' if r[key] <= TARGET_LAKE_S else '✗'}"
                        f" ≤ {TARGET_LAKE_S:.0f} s",
                        "",
                    )
                )
        store.engine.dispose()
    finally:
        if not args.keep:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    head = ("measure", "siyu", "baseline", "ratio / target", "before issue 19")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    print()
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
