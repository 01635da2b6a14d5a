"""Two `siyu serve` processes (each with its loader) and two `siyu worker` processes on one
PostgreSQL store and one workspace: customers and orders posted through both servers at once land
exactly once, and the points ledger posts every order exactly once — the loader lock and the event
handlers' leases split the work between the four processes without doubling any of it. An API key's
rate limit holds across both servers."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from api.conftest import bearer, free_port, new_key
from fixtures.processes import Proc, siyu_cmd, wait_healthy
from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.ingest.views import latest
from siyu.loyalty.models import LoyaltyAccount, OrderPosting
from siyu.loyalty.programs import do_apply_program
from siyu.store.models import InboxMessage

pytestmark = pytest.mark.postgres

PROGRAM = """\
version: 1
program: shop_club
level: brand
brands: [shop]
timezone: Asia/Shanghai
enrolment: [first_order]
tiers:
  levels:
    - {code: member, name_zh: 会员, name_en: Member, threshold: 0}
points:
  per_yuan: 1
  expiry: {policy: never}
"""
CUSTOMERS = 40
ORDERS_EACH = 3  # 120 orders of 100.00 yuan: 300 points per customer
DEADLINE = 240.0


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def _rows(i: int) -> tuple[dict[str, object], list[dict[str, object]]]:
    customer = {"source": "pos", "source_customer_id": f"c{i}", "phone": f"1390000{i:04d}"}
    paid = dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)
    orders = [
        {"source": "pos", "order_id": f"o{i}-{k}", "source_customer_id": f"c{i}", "status": "paid",
         "amount_fen": 10_000, "paid_at": (paid + dt.timedelta(days=k)).isoformat()}
        for k in range(ORDERS_EACH)
    ]  # fmt: skip
    return customer, orders


@pytest.mark.slow
def test_two_servers_and_two_workers_do_everything_once(pg_database: str, tmp_path: Path, procs: list[Proc]) -> None:
    home = tmp_path / "home"
    app = bootstrap(Settings(home=home, database_url=pg_database))
    program = tmp_path / "shop_club.yaml"
    program.write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, program, actor="test", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    key = new_key(app, "shop", "ingest")
    env = {**os.environ, "SIYU_HOME": str(home), "SIYU_DATABASE_URL": pg_database, "SIYU_LOADER_MAX_AGE": "0.2",
           "SIYU_PII_KEY": "many-processes-pii-key"}  # fmt: skip  # servers refuse the development key
    urls = []
    for n in range(2):
        port = free_port()
        urls.append(f"http://127.0.0.1:{port}")
        procs.append(Proc(siyu_cmd("serve", "--port", str(port), "--log-level", "warning"), env, tmp_path,
                          tmp_path / f"server{n}.log"))  # fmt: skip
        procs.append(Proc(siyu_cmd("worker"), env, tmp_path, tmp_path / f"worker{n}.log"))
    for p in procs:
        p.start()
    deadline = time.monotonic() + DEADLINE
    for n, url in enumerate(urls):
        wait_healthy(url, procs[2 * n], deadline)

    def post(i: int) -> None:
        customer, orders = _rows(i)
        url = urls[i % 2]  # every other customer through the other server; each sent twice (a retry)
        with httpx.Client(base_url=url, timeout=60, headers=bearer(key)) as client:
            for _ in range(2):
                assert client.post("/api/v1/ingest/customers", json=[customer]).status_code == 200
                assert client.post("/api/v1/ingest/orders", json=orders).status_code == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(CUSTOMERS)))

    def settled() -> bool:
        with app.store.unit_of_work() as s:
            pending = s.scalar(select(func.count()).select_from(InboxMessage).where(InboxMessage.loaded_at.is_(None)))
            postings = s.scalar(select(func.count()).select_from(OrderPosting))
        return pending == 0 and postings == CUSTOMERS * ORDERS_EACH

    while not settled():
        assert all(p.alive() for p in procs), "a process died: see its log in " + str(tmp_path)
        assert time.monotonic() < deadline, "the four processes did not finish the work in time"
        time.sleep(0.5)
    time.sleep(2)  # a late double-posting would show now

    orders = latest(app.engine, "orders").filter(lambda t: t.brand == "shop").to_pyarrow()
    assert orders.num_rows == CUSTOMERS * ORDERS_EACH  # each order once, though posted twice via two servers
    with app.store.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(OrderPosting)) == CUSTOMERS * ORDERS_EACH
        balances = s.execute(select(LoyaltyAccount.balance)).scalars().all()
    assert sorted(balances) == [ORDERS_EACH * 100] * CUSTOMERS  # ⌊100.00 × 1⌋ per order, once each
    for p in procs:
        with contextlib.suppress(Exception):
            assert p.alive()

    # One rate limit across both servers (the bucket is in the store): 1 request/s with bursts of 2
    # is spent by two requests to server 0, so server 1 refuses the third.
    slow = new_key(app, "shop", "ingest", rate_limit=1)
    bad = {"not": "a list of rows"}  # refused at once for its body, after the limit is taken
    with httpx.Client(timeout=30, headers=bearer(slow)) as client:
        assert [client.post(f"{urls[0]}/api/v1/ingest/customers", json=bad).status_code for _ in range(2)] == [422] * 2
        third = client.post(f"{urls[1]}/api/v1/ingest/customers", json=bad)
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
