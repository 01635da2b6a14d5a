"""The loader isolates what it cannot load: bisection down to single messages, dead letters with a
PII-free reason, exactly once for everything else (a half batch retried after a partial commit
re-imports as `unchanged`), and no dead letters at all when the machinery itself fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.ingest import inbox
from siyu.ingest import loader as loader_module
from siyu.ingest.dead_letters import list_dead_letters
from siyu.ingest.loader import Loader, load_batch
from siyu.ingest.schema import ENTITIES
from siyu.ingest.views import latest
from siyu.store.models import ImportJob, InboxMessage, QuarantineRow


def _record(app: App, *messages: dict[str, Any], kind: str = "segment") -> None:
    batch = [inbox.Message(str(m.get("messageId", m.get("order_id"))), json.dumps(m)) for m in messages]
    inbox.record(app.store, "acme", "app", kind, batch, utc_now())


def _order(message_id: str, user: str, order_id: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Order Completed", "messageId": message_id,
            "properties": {"order_id": order_id, **properties}}  # fmt: skip


def _latest(app: App, entity: str, *columns: str) -> list[tuple[Any, ...]]:
    table = latest(app.engine, entity)
    assert table is not None
    return sorted(tuple(r.values()) for r in app.engine.to_arrow(table.select(*columns)).to_pylist())


def _pending(app: App) -> int:
    with app.store.unit_of_work() as s:
        return inbox.backlog(s)[0]


def test_a_half_batch_retried_after_a_partial_commit_appends_nothing_twice(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Message 4's order fails when imported (after the batch's customers were committed): the probes
    (mapping only) pass, so the loader bisects by loading halves — every customer is accepted once."""
    _record(
        app,
        {"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"phone": "13800000001"}},
        _order("m2", "u1", "A1", total=12.5),
        {"type": "identify", "userId": "u2", "messageId": "m3", "traits": {"email": "b@example.com"}},
        _order("m4", "u3", "P9", total=1),
        _order("m5", "u4", "A4", total=3),
    )
    real_import = loader_module.import_file

    def import_file(app: App, raw: Any, brand: str | None) -> Any:
        if raw.entity == "orders" and "P9" in raw.table["order_id"].to_pylist():
            raise ValueError("order 'P9' of 13800000001 cannot be stored")  # a data error at commit time
        return real_import(app, raw, brand)

    monkeypatch.setattr(loader_module, "import_file", import_file)
    result = load_batch(app, 100)
    assert result is not None and (result.taken, result.messages) == (5, 4)

    assert _latest(app, "orders", "order_id", "amount_fen") == [("A1", 1250), ("A4", 300)]
    raw = app.engine.table("customers")
    assert raw is not None
    key = list(ENTITIES["customers"].key)
    versions = app.engine.to_arrow(raw.select(*key)).to_pylist()
    # u3 came in with the first, failed attempt (its customers file committed before orders failed).
    assert sorted(v["source_customer_id"] for v in versions) == ["u1", "u2", "u3", "u4"]  # one version each
    with app.store.unit_of_work() as s:
        accepted, unchanged = s.execute(
            select(func.sum(ImportJob.accepted), func.sum(ImportJob.unchanged)).where(ImportJob.entity == "customers")
        ).one()
    # Attempts: all five (u1-u4 accepted), then re-imports, each customer `unchanged`: [m1 m2] u1,
    # [m3 m4 m5] u2 u3 u4, [m3] u2, [m4 m5] u3 u4, [m4] u3 (fails alone: dead), [m5] u4.
    assert (accepted, unchanged) == (4, 1 + 3 + 1 + 2 + 1 + 1)

    [dead] = list_dead_letters(app.store)
    assert (dead.message_id, dead.attempts) == ("m4", 1)
    assert dead.reason == "ValueError in import orders: order '…' of … cannot be stored"
    assert _pending(app) == 0


def test_an_infrastructure_failure_dead_letters_nothing(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    _record(app, _order("m1", "u1", "A1", total=1), _order("m2", "u2", "A2", total=2))

    def disk_full(*_: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loader_module, "import_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        load_batch(app, 100)
    assert list_dead_letters(app.store) == [] and _pending(app) == 2  # retried whole on the next cycle
    monkeypatch.undo()
    assert Loader(app).drain() == 2


def test_values_that_cannot_fit_are_quarantined_and_never_crash_a_batch(app: App) -> None:
    """Money beyond int64 fen and quantities that are not whole numbers never crash a batch: messages
    already in the inbox (accepted before the door refused such values) map without overflow, and
    the importer quarantines them; an order with a bad item line is quarantined whole."""
    products = [{"sku": "S1", "price": 1, "quantity": 2}]
    _record(
        app,
        _order("big-total", "u1", "X1", total=100000000000000000000),  # 10²⁰ yuan: no int64 fen
        _order("big-qty", "u1", "X2", products=[{"sku": "S1", "price": 1, "quantity": 1e21}]),
        _order("half-qty", "u1", "X3", total=1, products=[{"sku": "S1", "price": 1, "quantity": 2.5}]),
        _order("minus-qty", "u1", "X4", total=1, products=[{"sku": "S1", "price": 1, "quantity": -1}]),
        _order("good", "u1", "G1", total=2, products=products),
    )
    huge = {"brand": "acme", "source": "pos", "order_id": "C1", "status": "paid", "paid_at": "2026-01-01T00:00:00Z",
            "source_customer_id": "u9", "amount_fen": "1" + "0" * 20}  # fmt: skip
    _record(app, huge, kind="orders")  # a canonical row already in the inbox: validation quarantines it
    assert Loader(app).drain() == 6
    assert list_dead_letters(app.store) == []
    assert _latest(app, "orders", "order_id") == [("G1",)]
    assert _latest(app, "order_items", "order_id", "qty") == [("G1", 2)]
    with app.store.unit_of_work() as s:
        quarantined = s.execute(select(QuarantineRow.entity, QuarantineRow.field)).all()
    # qty 1e21, 2.5 and -1; amounts of 10²⁰ yuan (Segment) and 10²⁰ fen (canonical), and X2 without a
    # total; X3 and X4 rejected whole for their item lines
    assert sorted(quarantined) == [
        ("order_items", "qty"), ("order_items", "qty"), ("order_items", "qty"),
        ("orders", "amount_fen"), ("orders", "amount_fen"), ("orders", "amount_fen"),
        ("orders", "order_items"), ("orders", "order_items"),
    ]  # fmt: skip


def test_dead_letters_leave_the_pending_index_alone(app: App) -> None:
    """`pending` and `backlog` skip dead letters; `attempts` starts at 0 for rows the raw insert writes."""
    _record(app, {"type": "identify", "userId": "u1", "messageId": "m1"})
    with app.store.unit_of_work() as s:
        assert s.scalar(select(InboxMessage.attempts)) == 0
        message_id = s.scalar(select(InboxMessage.id))
        assert message_id is not None
        inbox.mark_dead(s, message_id, "test", utc_now())
    with app.store.unit_of_work() as s:
        assert inbox.pending(s, 10) == [] and inbox.backlog(s) == (0, None) and inbox.dead_letter_count(s) == 1
