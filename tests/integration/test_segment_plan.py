"""The loader's compiled Segment mapping: compiled once per process, the same rows as building it anew."""

from __future__ import annotations

import json
from typing import Any

import ibis
import pyarrow as pa

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.ingest import inbox
from siyu.ingest.isolation import messages_table
from siyu.ingest.loader import load_batch, segment_plan
from siyu.ingest.segment import segment_to_canonical
from siyu.ingest.views import latest
from siyu.privacy.lake_columns import open_value


def _messages(app: App, *messages: dict[str, Any]) -> list[inbox.Pending]:
    batch = [inbox.Message(m["messageId"], json.dumps(m)) for m in messages]
    inbox.record(app.store, "acme", "app", "segment", batch, utc_now())
    with app.store.unit_of_work() as session:
        return inbox.pending(session, 100)


def _rebuilt(app: App, rows: list[inbox.Pending]) -> dict[str, pa.Table]:
    messages = ibis.memtable(messages_table(rows))
    mapped = segment_to_canonical(messages, lambda e: latest(app.engine, e), bounds=app.settings.time_bounds)
    return {entity: app.engine.to_arrow(expr) for entity, expr in mapped.items()}


def _rows(tables: dict[str, pa.Table]) -> dict[str, list[str]]:
    return {e: sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist()) for e, t in tables.items()}


def test_the_compiled_mapping_is_compiled_once_and_maps_like_the_expressions(sqlite_app: App) -> None:
    app = sqlite_app
    order = {"order_id": "A1", "total": 12.5, "products": [{"sku": "S1", "quantity": 2, "price": 6.25}]}
    rows = _messages(
        app,
        {"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"phone": "13911112222", "name": "李雷"}},
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m2", "properties": order},
    )
    plan = segment_plan(app)
    assert _rows(plan.run(messages_table(rows))) == _rows(_rebuilt(app, rows))
    load_batch(app, 100)  # now the lake holds u1 and order A1: the next batch merges into them
    rows = _messages(
        app,
        {"type": "identify", "userId": "u1", "messageId": "m3", "traits": {"email": "li@example.com"}},
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Refunded",
            "messageId": "m4",
            "properties": {"order_id": "A1"},
        },
    )
    compiled = plan.run(messages_table(rows))
    assert _rows(compiled) == _rows(_rebuilt(app, rows))
    assert compiled["customers"].column("email").to_pylist() == ["li@example.com"]
    # merged from the lake, where it is sealed: the mapping carries the envelope, the importer opens it
    [phone] = compiled["customers"].column("phone").to_pylist()
    assert open_value(app.settings.pii_keyring, "customers", "phone", phone) == "13911112222"
    assert segment_plan(app) is plan
    assert plan.compilations == 2  # once without lake tables, once with: never per batch
    plan.run(messages_table(rows))
    assert plan.compilations == 2
