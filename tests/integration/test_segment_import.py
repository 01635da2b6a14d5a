"""Segment messages end to end: request body → inbox rows → canonical rows → importer → lake → One-ID."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import ibis
import orjson
import pyarrow as pa

from siyu.api.schemas.segment import InboxRow, parse_batch
from siyu.bootstrap import App
from siyu.identity.service import MAP_TABLE, run_resolve
from siyu.ingest.counts import Counts
from siyu.ingest.importer import import_file, quarantine
from siyu.ingest.segment import segment_to_canonical, to_raw_files
from siyu.ingest.views import latest
from siyu.privacy.lake_columns import open_rows

RECEIVED = datetime(2024, 6, 18, 13, 0, tzinfo=UTC)


def _library_batch() -> bytes:
    """A `/v1/batch` body exactly as segment-analytics-python builds it (send=False returns each message)."""
    from segment.analytics import Client

    client = Client("write-key", send=False, sync_mode=True)
    at = datetime(2024, 6, 18, 20, 0, tzinfo=UTC)
    sent = [
        client.track(anonymous_id="anon-1", event="Product Viewed", properties={"product_id": "P1"}, timestamp=at),
        client.page(anonymous_id="anon-1", name="Home", properties={"field": "mini_program"}, timestamp=at),
        client.identify(user_id=1001, traits={"phone": "138 0013 8000", "name": "李雷"}, timestamp=at),
        client.alias(previous_id="anon-1", user_id=1001, timestamp=at),
        client.track(
            user_id=1001,
            event="Order Completed",
            properties={
                "order_id": "O-1",
                "total": 67.97,
                "discount": 2.5,
                "products": [
                    {"product_id": "P1", "sku": "P1-M", "price": 19.99, "quantity": 3},
                    {"product_id": "P2", "sku": "P2", "price": 8},
                ],
            },
            timestamp=at,
        ),
        client.track(
            user_id=1001, event="Order Refunded", properties={"order_id": "O-1", "total": 19.99}, timestamp=at
        ),
        # Another person who shares nothing with the first.
        client.identify(user_id=2002, traits={"email": "han@example.com"}, timestamp=at),
    ]
    return orjson.dumps({"batch": [msg for _, msg in sent], "sentAt": at.isoformat(), "writeKey": "write-key"})


def _messages(rows: list[InboxRow], first_id: int = 1) -> ibis.Table:
    n = len(rows)
    return ibis.memtable(
        pa.table(
            {
                "inbox_id": pa.array(range(first_id, first_id + n), pa.int64()),
                "brand": ["acme"] * n,
                "source": ["mini_app"] * n,
                "message_id": [r.message_id for r in rows],
                "payload": [r.payload for r in rows],
                "received_at": pa.array([RECEIVED] * n, pa.timestamp("us", tz="UTC")),
            }
        )
    )


def _load(app: App, rows: list[InboxRow], first_id: int = 1) -> dict[str, Counts]:
    """What the inbox loader does with one batch."""
    mapped = segment_to_canonical(
        _messages(rows, first_id),
        lambda entity: latest(app.engine, entity),
        materialise=lambda table: app.engine.materialise(table, "segment_parsed"),
    )
    tables = {entity: app.engine.to_arrow(expr) for entity, expr in mapped.items()}
    return {raw.entity: import_file(app, raw, None).counts for raw in to_raw_files(tables)}


def _lake(app: App, entity: str) -> list[dict[str, Any]]:
    table = latest(app.engine, entity)
    assert table is not None
    return open_rows(app.settings.pii_keyring, entity, app.engine.to_arrow(table).to_pylist())  # PII opened


def test_segment_batch_lands_in_the_lake_and_alias_merges_people(sqlite_app: App) -> None:
    rows = parse_batch(_library_batch())
    counts = _load(sqlite_app, rows)
    assert {e: c.quarantined for e, c in counts.items()} == dict.fromkeys(counts, 0)
    assert counts["customers"].accepted == 3  # anon-1, 1001, 2002
    assert counts["identities"].accepted == 2  # the alias, on both sides
    assert counts["events"].accepted == 4  # view, page, order completed, order refunded (identify, alias: no events)

    (order,) = _lake(sqlite_app, "orders")
    assert order["source_customer_id"] == "1001"
    assert (order["amount_fen"], order["discount_fen"], order["refund_fen"]) == (6797, 250, 1999)
    assert order["status"] == "partially_refunded"
    assert order["paid_at"] == datetime(2024, 6, 18, 20, 0, tzinfo=UTC)
    items = sorted(_lake(sqlite_app, "order_items"), key=lambda r: r["line_no"])
    assert [(i["line_no"], i["sku"], i["qty"], i["price_fen"], i["amount_fen"]) for i in items] == [
        (1, "P1-M", 3, 1999, 5997),
        (2, "P2", 1, 800, 800),
    ]
    events = {e["type"]: e for e in _lake(sqlite_app, "events")}
    assert set(events) == {"view_item", "visit", "order_completed", "order_refunded"}
    assert events["visit"]["field"] == "mini_program" and events["view_item"]["field"] == "mini_app"
    assert json.loads(events["view_item"]["properties"]) == {"segment_event": "Product Viewed", "product_id": "P1"}

    outcome = run_resolve(sqlite_app)
    assert (outcome.source_customers, outcome.customers) == (3, 2)
    id_map = sqlite_app.engine.table(MAP_TABLE)
    assert id_map is not None
    ids = {r["source_customer_id"]: r["customer_id"] for r in sqlite_app.engine.to_arrow(id_map).to_pylist()}
    assert ids["anon-1"] == ids["1001"] != ids["2002"]


def test_mapping_a_batch_again_changes_nothing(sqlite_app: App) -> None:
    rows = parse_batch(_library_batch())
    _load(sqlite_app, rows)
    again = _load(sqlite_app, rows)  # a loader re-run after a crash before marking the batch loaded
    assert {e: (c.accepted, c.updated, c.quarantined) for e, c in again.items()} == dict.fromkeys(again, (0, 0, 0))
    (order,) = _lake(sqlite_app, "orders")
    assert order["refund_fen"] == 1999  # not counted twice


def test_a_later_identify_and_full_refund_update_the_lake(sqlite_app: App) -> None:
    _load(sqlite_app, parse_batch(_library_batch()))
    later = orjson.dumps(
        {
            "batch": [
                {"type": "identify", "userId": "1001", "traits": {"email": "li@example.com"}, "messageId": "i-2"},
                {"type": "track", "userId": "1001", "event": "Order Refunded", "properties": {"order_id": "O-1"}},
            ]
        }
    )
    counts = _load(sqlite_app, parse_batch(later), first_id=100)
    assert counts["customers"].updated == 1 and counts["orders"].updated == 1
    customer = next(c for c in _lake(sqlite_app, "customers") if c["source_customer_id"] == "1001")
    assert (customer["phone"], customer["name"], customer["email"]) == ("138 0013 8000", "李雷", "li@example.com")
    (order,) = _lake(sqlite_app, "orders")
    assert (order["status"], order["refund_fen"], order["amount_fen"]) == ("refunded", 6797, 6797)


def test_an_order_with_a_bad_item_line_is_quarantined_whole(sqlite_app: App) -> None:
    # Stored in the inbox before the door checked quantities (the door now answers 400 for these).
    products = [{"sku": "A", "price": 5, "quantity": 1}, {"sku": "B", "price": 5, "quantity": 1.5}]
    properties = {"order_id": "O-9", "total": 10, "products": products}
    bad = {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "oc-9",
           "timestamp": "2024-06-18T12:00:00Z", "properties": properties}  # fmt: skip
    rows = [InboxRow("oc-9", "track", json.dumps(bad))]
    counts = _load(sqlite_app, rows)
    assert (counts["orders"].accepted, counts["orders"].quarantined) == (0, 1)  # was: stored as paid
    assert (counts["order_items"].accepted, counts["order_items"].quarantined) == (0, 2)
    reasons = {(q["entity"], q["field"]): q["reason"] for q in quarantine(sqlite_app)}
    item = "item line 2 rejected (商品行无效): qty: must be a non-negative integer, got a decimal: 1.5"
    assert reasons[("orders", "order_items")] == item
    assert reasons[("order_items", "order_id")] == f"order rejected: {item}"  # line 1, good on its own
    assert reasons[("order_items", "qty")] == "must be a non-negative integer, got a decimal: 1.5"
