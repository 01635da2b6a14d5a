"""Queueing a batch (a journey worker's) answers exactly as queueing its messages one by one, and a
cap holds when two transactions queue for the same customer at the same instant (PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.messaging.consent import ConsentChange, do_record_consents
from siyu.messaging.enqueue import EnqueueResult, SendRequest, do_enqueue, enqueue_many
from siyu.messaging.models import OutboundMessage
from siyu.messaging.policy import BrandPolicy, Cap, save_policy

SH = ZoneInfo("Asia/Shanghai")
ACTOR = Actor.system("test")
NOW = dt.datetime(2026, 12, 1, 10, tzinfo=SH)


def sh(day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hh, mm, tzinfo=SH)


def req(key: str, at: dt.datetime, customer: str = "c1", **kw: object) -> SendRequest:
    fields: dict[str, object] = {
        "brand": "demo", "customer_id": customer, "channel": "sms", "category": "marketing",
        "idempotency_key": key, "content": {"template_code": "SMS_1"}, "not_before": at, **kw,
    }  # fmt: skip
    return SendRequest(**fields)  # type: ignore[arg-type]


# A hand-worked batch under the default policy (≤ 2 marketing in 7 days, quiet 21:00–08:00 Shanghai)
# and a per-channel cap of 1 e-mail a day; c9 unsubscribed from marketing SMS.
BATCH = [
    (req("k1", sh(1, 10)), ("queued", None)),
    (req("k2", sh(1, 22, 30)), ("deferred", "quiet_hours")),  # → 2nd 08:00, the 2nd counted message
    (req("k3", sh(2, 12)), ("suppressed", "cap:2/7d")),  # k1 and k2 are within 7 days
    (req("k3", sh(2, 12)), ("suppressed", "cap:2/7d")),  # the same key again: the same message
    (req("t1", sh(2, 12), category="transactional"), ("queued", None)),  # caps skip transactional
    (req("e1", sh(1, 9), customer="c2", channel="email"), ("queued", None)),
    (req("e2", sh(1, 11), customer="c2", channel="email"), ("suppressed", "cap:1/1d:email")),
    (req("s1", sh(1, 10), customer="c9"), ("suppressed", "consent:marketing_sms withdrawn (cli)")),
    (req("s2", sh(1, 10), customer="c9", category="transactional"), ("queued", None)),  # receipts go out
    (req("w1", sh(1, 23), customer=None, channel="webhook"), ("queued", None)),  # nobody to cap or quiet
]


def _setup(app: App, brand: str) -> None:
    with app.store.begin(ACTOR, now=NOW) as uow:
        save_policy(uow.session, brand, BrandPolicy(caps=(Cap(2, 7), Cap(1, 1, "email"))), uow.now)
        change = ConsentChange(brand, "c9", "marketing_sms", granted=False, source="cli", evidence={})
        do_record_consents(uow, [change])


def test_a_batch_answers_as_one_by_one(app: App) -> None:
    _setup(app, "demo")
    _setup(app, "solo")
    requests = [r for r, _ in BATCH]
    solo = [dataclasses.replace(r, brand="solo", idempotency_key="solo:" + r.idempotency_key) for r in requests]
    with app.store.begin(ACTOR, now=NOW) as uow:
        one_by_one = [do_enqueue(uow, r) for r in solo]
    with app.store.begin(ACTOR, now=NOW) as uow:
        batch = enqueue_many(uow, requests)
    assert [(r.status, r.reason) for r in batch] == [want for _, want in BATCH]
    assert [(r.status, r.reason, r.created) for r in batch] == [(r.status, r.reason, r.created) for r in one_by_one]
    assert [r.created for r in batch][2:4] == [True, False] and batch[2].message_id == batch[3].message_id
    with app.store.unit_of_work() as s:
        rows = {m.idempotency_key: m for m in s.query(OutboundMessage)}
        assert len(rows) == 2 * (len(BATCH) - 1)
        for r in requests:  # the same not_before (the deferral) both ways
            assert rows[r.idempotency_key].not_before == rows["solo:" + r.idempotency_key].not_before
    # a batch replayed (a worker run again) writes nothing and answers the stored rows
    with app.store.begin(ACTOR, now=NOW) as uow:
        again = enqueue_many(uow, requests)
    assert [(r.message_id, r.status, r.created) for r in again] == [(r.message_id, r.status, False) for r in batch]


@pytest.mark.postgres
def test_a_cap_holds_across_two_concurrent_transactions(pg_database: str, tmp_path: Path) -> None:
    """Two transactions queue a marketing message for c1 (cap 1 a week) at the same instant: the
    second waits for the first's per-customer lock, then reads its message and is suppressed."""
    app = bootstrap(Settings(home=tmp_path / "home", database_url=pg_database))
    try:
        with app.store.begin(ACTOR, now=NOW) as uow:
            save_policy(uow.session, "demo", BrandPolicy(caps=(Cap(1, 7),)), uow.now)
        second: list[EnqueueResult] = []

        def other_worker() -> None:
            with app.store.begin(ACTOR, now=NOW) as uow:
                second.append(do_enqueue(uow, req("B", sh(1, 10, 1))))

        with app.store.begin(ACTOR, now=NOW) as uow:
            first = do_enqueue(uow, req("A", sh(1, 10)))
            thread = threading.Thread(target=other_worker)
            thread.start()
            thread.join(2.0)  # without the lock it would pass the cap and commit meanwhile
            assert thread.is_alive(), "the second transaction did not wait for the first's cap lock"
        thread.join(30)
        assert (first.status, [(r.status, r.reason) for r in second]) == ("queued", [("suppressed", "cap:1/7d")])
    finally:
        app.store.engine.dispose()
