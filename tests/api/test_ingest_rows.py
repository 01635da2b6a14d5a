"""Canonical ingest over HTTP: per-row outcomes, durability before the answer, the loader, limits."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from sqlalchemy import func, select

from api.conftest import KeyMaker, bearer
from siyu.bootstrap import App
from siyu.ingest.loader import Loader
from siyu.ingest.views import latest
from siyu.privacy.lake_columns import open_rows
from siyu.store.models import Field, InboxMessage, QuarantineRow, RelationType

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
    rows = open_rows(app.settings.pii_keyring, "customers", app.engine.to_arrow(table).to_pylist())  # PII opened
    return {r["source_customer_id"]: r for r in rows}


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


def test_money_and_counts_are_strict_json_integers(app: App, client: httpx.Client, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest", source="pos")
    base = {"source_customer_id": "p1", "status": "paid", "paid_at": "2026-11-01T10:00:00+08:00"}
    orders = [
        {**base, "order_id": "o1", "amount_fen": 1999, "points_used": True},  # was stored as 1 point
        {**base, "order_id": "o2", "amount_fen": "1999"},  # was stored as 1999
        {**base, "order_id": "o3", "amount_fen": 19.99},
        {**base, "order_id": "o4", "amount_fen": 100000000000000000000},  # beyond int64 fen
        {**base, "order_id": "o5", "amount_fen": 1999, "points_used": 7},
    ]
    body = client.post("/api/v1/ingest/orders", json=orders, headers=bearer(key)).json()
    assert [r["outcome"] for r in body["rows"]] == ["rejected"] * 4 + ["accepted"]
    assert [r["errors"][0]["field"] for r in body["rows"][:4]] == [
        "points_used",
        "amount_fen",
        "amount_fen",
        "amount_fen",
    ]
    assert "at most 15 digits" in body["rows"][3]["errors"][0]["reason"]
    assert _pending(app) == 1


@pytest.mark.parametrize("when", ["99999-01-01T00:00:00", "0000-01-01T00:00:00", "1989-12-31T23:59:59Z"])
def test_timestamps_out_of_bounds_are_rejected_with_the_field(
    app: App, client: httpx.Client, make_key: KeyMaker, when: str
) -> None:
    key = make_key("demo", "ingest", source="app")
    event = {"event_id": "e1", "type": "visit", "source_customer_id": "u1", "occurred_at": when}
    body = client.post("/api/v1/ingest/events", json=[event], headers=bearer(key)).json()
    assert body["rows"][0]["outcome"] == "rejected"
    assert body["rows"][0]["errors"][0]["field"] == "occurred_at"
    assert _pending(app) == 0


def test_fields_and_relation_types_are_declared_over_the_api(
    app: App, client: httpx.Client, make_key: KeyMaker
) -> None:
    key = make_key("demo", "ingest", source="douyin")
    field = [{"code": "douyin", "name_zh": "抖音", "name_en": "Douyin", "platform": "douyin"}]
    r = client.post("/api/v1/ingest/fields", json=field, headers=bearer(key))
    assert r.status_code == 200, r.text  # was 500 (KeyError: 'source')
    assert r.json()["counts"]["accepted"] == 1
    kinds = [{"code": "douyin_fan_group", "name_zh": "抖音粉丝群", "name_en": "Douyin fan group", "field": "douyin"},
             {"code": "follow", "name_zh": "关注", "name_en": "Follow", "connection": "false"},
             {"code": "Bad Code"}]  # fmt: skip
    body = client.post("/api/v1/ingest/relation_types", json=kinds, headers=bearer(key)).json()
    assert [r["outcome"] for r in body["rows"]] == ["accepted", "accepted", "rejected"]
    assert body["rows"][2]["errors"][0]["field"] == "code"
    Loader(app).drain()
    with app.store.unit_of_work() as s:
        declared = s.get(Field, ("demo", "douyin"))
        assert declared is not None and declared.declared and declared.name_zh == "抖音"
        fan_group = s.get(RelationType, ("demo", "douyin_fan_group"))
        assert fan_group is not None and fan_group.connection and fan_group.field == "douyin"
    again = client.post("/api/v1/ingest/relation_types", json=kinds[:2], headers=bearer(key)).json()
    assert again["counts"]["unchanged"] == 2 and _pending(app) == 0

    client.post("/api/v1/ingest/customers", json=[{"source_customer_id": "d1"}], headers=bearer(key))
    rel = {"field": "douyin", "source_customer_id": "d1", "started_at": "2026-11-01T10:00:00+08:00"}
    rows = [{**rel, "relation_type": t} for t in ("douyin_fan_group", "follow", "like")]
    body = client.post("/api/v1/ingest/relations", json=rows, headers=bearer(key)).json()
    assert [r["outcome"] for r in body["rows"]] == ["accepted", "accepted", "rejected"]
    reason = body["rows"][2]["errors"][0]["reason"]
    assert "unknown relation_type 'like'" in reason and "relation_types.csv (columns brand, code" in reason
