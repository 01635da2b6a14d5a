"""The official Segment Python library (`segment-analytics-python`) pointed at siyu, over real
HTTP (gzip on): identify, track, page, screen, Order Completed / Refunded and alias end up in the
lake as canonical rows, and alias merges two source customers in One-ID."""

from __future__ import annotations

from typing import Any

import httpx
from segment.analytics.client import Client
from sqlalchemy import func, select

from api.conftest import KeyMaker
from siyu.bootstrap import App
from siyu.ingest.loader import Loader
from siyu.lake.views import latest
from siyu.store.models import InboxMessage


def _rows(app: App, entity: str) -> list[dict[str, Any]]:
    table = latest(app.engine, entity)
    return [] if table is None else app.engine.to_arrow(table).to_pylist()


def test_segment_library_end_to_end(app: App, base_url: str, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest", source="app")
    errors: list[Exception] = []
    sdk = Client(key, host=base_url, gzip=True, sync_mode=True, max_retries=0, on_error=lambda e, _: errors.append(e))
    sdk.identify("u1", {"phone": "138 0013 9001", "email": "ann@example.com", "name": "Ann"}, anonymous_id="dev-1")
    sdk.identify("u1", {"city": "杭州"})  # fewer traits: merges, keeps the phone
    sdk.track("u1", "Product Viewed", {"product_id": "P1", "price": 19.99})
    sdk.page("u1", "Shop", "Home", {"url": "https://shop.example.com/"})
    sdk.screen(anonymous_id="dev-2", category="App", name="Cart")
    products = [
        {"product_id": "P1", "sku": "P1-S", "category": "skin", "price": 19.99, "quantity": 3},
        {"product_id": "P2", "sku": "P2-M", "category": "hair", "price": 5, "quantity": 1},
    ]
    sdk.track("u1", "Order Completed", {"order_id": "A100", "total": 64.97, "products": products})
    sdk.track("u1", "Order Refunded", {"order_id": "A100", "total": 5})
    sdk.alias("dev-2", "u1")
    sdk.flush()
    assert errors == []

    with app.store.unit_of_work() as s:
        accepted = s.scalar(select(func.count()).select_from(InboxMessage))
    assert accepted == 8
    # A client retry of the same message (same messageId) records nothing new.
    sdk.track("u1", "Product Viewed", {"product_id": "P1"}, message_id="m-1")
    sdk.track("u1", "Product Viewed", {"product_id": "P1"}, message_id="m-1")
    sdk.flush()
    with app.store.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(InboxMessage)) == 9

    Loader(app).drain()

    customers = {c["source_customer_id"]: c for c in _rows(app, "customers")}
    assert customers["u1"]["phone"] == "138 0013 9001" and customers["u1"]["city"] == "杭州"
    assert customers["u1"]["anonymous_id"] == "dev-1" and customers["u1"]["source"] == "app"
    assert "dev-2" in customers
    events = _rows(app, "events")
    types = sorted(e["type"] for e in events)
    assert types.count("view_item") == 2 and types.count("visit") == 2
    orders = _rows(app, "orders")
    assert [(o["order_id"], o["amount_fen"], o["refund_fen"], o["status"]) for o in orders] == [
        ("A100", 6497, 500, "partially_refunded")
    ]
    items = sorted((i["line_no"], i["sku"], i["qty"], i["amount_fen"]) for i in _rows(app, "order_items"))
    assert items == [(1, "P1-S", 3, 5997), (2, "P2-M", 1, 500)]

    idmap = app.engine.to_arrow(app.engine.table("identity_map")).to_pylist()
    ids = {r["source_customer_id"]: r["customer_id"] for r in idmap}
    assert ids["u1"] == ids["dev-2"]  # alias merged them


def test_segment_single_endpoints_and_errors(base_url: str, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest", source="web")
    with httpx.Client(base_url=base_url, auth=(key, ""), timeout=30) as c:
        assert c.post("/v1/track", json={"userId": 42, "event": "Signed In"}).json() == {"success": True}
        r = c.post("/v1/track", json={"event": "Signed In"})  # nobody named
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        assert "userId" in r.json()["detail"]
        r = c.post("/v1/track", json={"userId": "u"})  # no event name
        assert r.status_code == 400 and any(e["field"].endswith("event") for e in r.json()["errors"])
        r = c.post("/v1/batch", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        r = c.post("/v1/alias", json={"userId": "u"})
        assert r.status_code == 400 and any("previousId" in e["field"] for e in r.json()["errors"])
