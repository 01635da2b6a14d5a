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
from siyu.ingest.views import latest
from siyu.privacy.lake_columns import open_rows
from siyu.store.models import InboxMessage


def _rows(app: App, entity: str) -> list[dict[str, Any]]:
    table = latest(app.engine, entity)
    return [] if table is None else open_rows(app.settings.pii_keyring, entity, app.engine.to_arrow(table).to_pylist())


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


def _rudderstack(kind: str, user_id: str, anonymous_id: str, **message: Any) -> dict[str, Any]:
    """A message as the RudderStack JavaScript SDK (rudderlabs/rudder-sdk-js, v1 `analytics.js`) sends it:
    `processAndSendDataToDestinations` sets `message.context.traits = {...this.userTraits}` on every
    call and puts no top-level `traits` on an identify; `userId` and `anonymousId` are always set,
    `channel` is "web", `originalTimestamp` is the browser clock and `sentAt` is added on flush.
    RudderStack's Python SDK (rudder-sdk-python) posts the same message shape to `/v1/batch`."""
    return {
        "channel": "web",
        "context": {
            "app": {"build": "1.0.0", "name": "RudderLabs JavaScript SDK", "namespace": "com.rudderlabs.javascript"},
            "library": {"name": "RudderLabs JavaScript SDK", "version": "1.1.11"},
            "locale": "zh-CN",
            "traits": message.pop("traits", {}),
        },
        "type": kind,
        "messageId": f"rs-{kind}-{message.get('event', '')}-{user_id}",
        "originalTimestamp": "2026-12-01T08:00:00.000Z",
        "sentAt": "2026-12-01T08:00:00.500Z",
        "anonymousId": anonymous_id,
        "userId": user_id,
        "integrations": {"All": True},
        **message,
    }


def test_rudderstack_traits_in_context_reach_the_profile(app: App, base_url: str, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest", source="web")
    traits = {"phone": "13800138001", "email": "rs@example.com", "firstName": "雷", "lastName": "李"}
    batch = {
        "batch": [
            _rudderstack("identify", "r1", "anon-r1", traits=traits),
            _rudderstack("track", "r1", "anon-r1", event="Product Viewed", properties={"sku": "A"},
                         traits={**traits, "city": "杭州"}),
        ],
        "sentAt": "2026-12-01T08:00:00.500Z",
    }  # fmt: skip
    with httpx.Client(base_url=base_url, auth=(key, ""), timeout=30) as c:
        assert c.post("/v1/batch", json=batch).json() == {"success": True}
    # The official Segment library: top-level traits win over context.traits.
    sdk = Client(key, host=base_url, sync_mode=True, max_retries=0)
    sdk.identify("s1", {"email": "top@example.com"}, context={"traits": {"email": "ctx@example.com", "phone": "139"}})
    sdk.flush()
    Loader(app).drain()
    customers = {c["source_customer_id"]: c for c in _rows(app, "customers")}
    # Before: r1 had no phone, e-mail or name (they were only in context.traits).
    r1 = customers["r1"]
    assert (r1["phone"], r1["email"], r1["name"], r1["city"]) == ("13800138001", "rs@example.com", "李雷", "杭州")
    assert (customers["s1"]["email"], customers["s1"]["phone"]) == ("top@example.com", "139")


def test_values_refused_at_the_door_answer_400_with_the_field(base_url: str, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest", source="web")
    deep = '{"a":' * 300 + "1" + "}" * 300
    with httpx.Client(base_url=base_url, auth=(key, ""), timeout=30) as c:
        # 255–1024 levels: orjson parses it but cannot write it back; this was a 500.
        r = c.post("/v1/track", content=f'{{"userId": "u", "event": "A", "traits": {deep}}}'.encode())
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "traits"
        r = c.post("/v1/track", json={"userId": "u", "event": "A", "timestamp": "9999-12-31T00:00:00Z"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "timestamp"
        r = c.post("/v1/track", json={"userId": "u", "event": "A", "timestamp": 1718683200})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "timestamp"
        order = {"order_id": "O", "total": 0.001, "products": [{"price": 1, "quantity": -3}]}
        r = c.post("/v1/batch", json={"batch": [{"type": "track", "userId": "u", "event": "Order Completed",
                                                 "properties": order}]})  # fmt: skip
        assert r.status_code == 400
        fields = [e["field"] for e in r.json()["errors"]]
        assert fields == ["batch.0.properties.total", "batch.0.properties.products.0.quantity"]
