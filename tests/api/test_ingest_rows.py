"""Canonical ingest over HTTP: per-row outcomes, durability before the answer, the loader, limits."""

from __future__ import annotations

import gzip
import json

import httpx
from sqlalchemy import func, select

from api.conftest import KeyMaker, bearer
from siyu.bootstrap import App
from siyu.ingest.loader import Loader
from siyu.lake.views import latest
from siyu.store.models import InboxMessage, QuarantineRow

ROWS = [
    {"source": "crm", "source_customer_id": "u1", "phone": "13800000001", "name": "Alice"},
    {"source": "crm", "source_customer_id": "u2", "email": "bob@example.com", "birthday": "1990-02-30"},
    {"brand": "demo", "source": "crm", "source_customer_id": "u3", "gender": "female"},
]


def _pending(app: App) -> int:
    with app.store.unit_of_work() as s:
        return int(s.scalar(select(func.count()).select_from(InboxMessage).where(InboxMessage.loaded_at.is_(None))))


def _lake_customers(app: App) -> dict[str, dict[str, object]]:
    table = latest(app.engine, "customers")
    assert table is not None
    return {r["source_customer_id"]: r for r in app.engine.to_arrow(table).to_pylist()}


def test_outcomes_durability_and_idempotency(app: App, client: httpx.Client, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest")
    r = client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"] == {"accepted": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert [row["outcome"] for row in body["rows"]] == ["accepted", "rejected", "accepted"]
    assert body["rows"][1]["errors"][0]["field"] == "birthday"
    # Durable before the answer: in the inbox, not yet in the lake.
    assert _pending(app) == 2
    assert app.engine.table("customers") is None

    assert Loader(app).drain() == 2
    assert _pending(app) == 0
    customers = _lake_customers(app)
    assert sorted(customers) == ["u1", "u3"]
    assert customers["u1"]["name"] == "Alice" and customers["u3"]["gender"] == "female"

    again = client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(key)).json()
    assert again["counts"] == {"accepted": 0, "updated": 0, "unchanged": 2, "rejected": 1}
    assert _pending(app) == 0  # unchanged rows are not recorded again

    changed = [{**ROWS[0], "name": "Alice Wang"}]
    assert client.post("/api/v1/ingest/customers", json=changed, headers=bearer(key)).json()["counts"]["updated"] == 1
    # The same update posted twice before the loader runs is recorded once.
    client.post("/api/v1/ingest/customers", json=changed, headers=bearer(key))
    assert _pending(app) == 1
    assert Loader(app).drain() == 1
    assert _lake_customers(app)["u1"]["name"] == "Alice Wang"
    raw = app.engine.to_arrow(app.engine.table("customers"))
    assert raw.num_rows == 3  # u1, u3, and u1's new version: nothing duplicated


def test_brand_of_the_key_only(app: App, client: httpx.Client, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest")
    rows = [{"brand": "other", "source": "crm", "source_customer_id": "x1"}]
    body = client.post("/api/v1/ingest/customers", json=rows, headers=bearer(key)).json()
    assert body["rows"][0]["outcome"] == "rejected"
    assert body["rows"][0]["errors"][0]["field"] == "brand"
    assert _pending(app) == 0


def test_gzip_body_and_orders_loaded(app: App, client: httpx.Client, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest", source="pos")
    client.post("/api/v1/ingest/customers", json=[{"source_customer_id": "p1"}], headers=bearer(key))
    orders = [
        {"source_customer_id": "p1", "order_id": "o1", "status": "paid", "paid_at": "2026-11-01T10:00:00+08:00",
         "amount_fen": 1999, "refund_fen": 0},
        {"source_customer_id": "p1", "order_id": "o2", "status": "paid", "amount_fen": -5},
    ]  # fmt: skip
    body = gzip.compress(json.dumps(orders).encode())
    headers = {**bearer(key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    r = client.post("/api/v1/ingest/orders", content=body, headers=headers)
    assert r.status_code == 200, r.text
    outcome = r.json()["rows"]
    assert outcome[0]["outcome"] == "accepted"
    assert outcome[1]["outcome"] == "rejected"
    assert {e["field"] for e in outcome[1]["errors"]} >= {"amount_fen"}
    Loader(app).drain()
    table = latest(app.engine, "orders")
    assert table is not None
    rows = app.engine.to_arrow(table).to_pylist()
    assert [(r["order_id"], r["amount_fen"], r["source"]) for r in rows] == [("o1", 1999, "pos")]
    with app.store.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(QuarantineRow)) == 0  # rejected at the door, not queued


def test_limits_and_problem_details(client: httpx.Client, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest")
    too_many = [{"source": "crm", "source_customer_id": f"c{i}"} for i in range(10_001)]
    r = client.post("/api/v1/ingest/customers", json=too_many, headers=bearer(key))
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "payload_too_large"

    r = client.post("/api/v1/ingest/unicorns", json=[], headers=bearer(key))
    assert r.status_code == 422
    problem = r.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"].endswith("invalid_request")
    assert problem["errors"][0]["field"] == "entity"

    r = client.post("/api/v1/ingest/customers", json={"not": "a list"}, headers=bearer(key))
    assert r.status_code == 422

    bomb = gzip.compress(b"[" + b" " * (9 * 1024 * 1024) + b"]")
    headers = {**bearer(key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert client.post("/api/v1/ingest/customers", content=bomb, headers=headers).status_code == 413
