"""The dispatcher handles a claimed batch set-based: consent, policy, customer facts and the rendered
payloads are read and written once per batch; what remains per message is recording its outcome
(one short transaction each: the exactly-once window is one message). So 20 more SMS in a batch
cost at most 2 statements each (BEGIN IMMEDIATE on SQLite and the fenced UPDATE); the per-message
dispatcher took 7 (consent, policy, render write, record). Against the fake Aliyun gateway over
HTTP, on SQLite and PostgreSQL.
Messages are queued unrendered, as journeys queue them; their content carries the phone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from fixtures.messaging import sms_gateway
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.fakes.aliyun_sms import FakeSmsGateway
from siyu.messaging.dispatch import Dispatcher
from siyu.messaging.enqueue import SendRequest, enqueue_many
from siyu.messaging.models import OutboundMessage
from siyu.messaging.settings import ChannelSettings

T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[FakeSmsGateway, str]]:
    with sms_gateway() as server:
        yield server


@pytest.fixture
def dapp(home: Any, store_url: str, gateway: tuple[FakeSmsGateway, str]) -> Iterator[App]:
    channels = ChannelSettings(sms_api_base=gateway[1], sms_access_key_id="fake-id",
                               sms_access_key_secret="fake-secret", sms_sign_name="思域", messaging_rate={},
                               messaging_batch=100)  # fmt: skip
    application = bootstrap(Settings(home=home, database_url=store_url, channels=channels))
    yield application
    application.store.engine.dispose()


def _queue(app: App, prefix: str, n: int) -> None:
    with app.store.begin(Actor.system("test"), now=T0) as uow:
        enqueue_many(uow, [
            SendRequest(brand="demo", customer_id=f"{prefix}{i}", channel="sms", category="transactional",
                        idempotency_key=f"{prefix}:{i}", content={"phone": f"139{i:08d}", "template_code": "SMS_1"})
            for i in range(n)
        ])  # fmt: skip


def _dispatch(app: App) -> tuple[int, int]:
    """(messages sent, statements issued) of one dispatcher pass."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(app.store.engine, "before_cursor_execute", count)
    try:
        stats = Dispatcher(app, clock=lambda: T0 + dt.timedelta(minutes=1)).run_once()
    finally:
        event.remove(app.store.engine, "before_cursor_execute", count)
    return stats.sent, len(seen)


def test_a_batch_of_sms_reads_and_renders_once(dapp: App, gateway: tuple[FakeSmsGateway, str]) -> None:
    fake = gateway[0]
    before, store = len(fake.received), dapp.store.engine.dialect.name  # one gateway: keys distinct per store
    _queue(dapp, f"{store}-a", 10)
    small = _dispatch(dapp)
    _queue(dapp, f"{store}-b", 30)
    large = _dispatch(dapp)
    assert (small[0], large[0]) == (10, 30)
    assert large[1] - small[1] <= 2 * 20 and small[1] <= 2 * 10 + 16, (small, large)
    assert len(fake.received) - before == 40
    with dapp.store.unit_of_work() as s:
        assert dict(s.execute(select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)).all()) == {
            "sent": 40
        }
        assert s.scalar(select(func.count()).where(OutboundMessage.provider_id.is_(None))) == 0
