"""PostgreSQL: a transaction that took its outbox id first and commits last is not skipped by a
handler that read past later ids in between (see siyu.events.outbox)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from fixtures.outbox_wait import final_events
from siyu.core.actor import Actor
from siyu.events.catalogue import OrdersLanded
from siyu.events.outbox import after
from siyu.store.db import Store, open_store

pytestmark = pytest.mark.postgres
AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.fixture
def store(pg_database: str) -> Iterator[Store]:
    s = open_store(pg_database)
    yield s
    s.engine.dispose()


def test_a_late_commit_with_an_early_id_is_read_after_the_early_commits(store: Store) -> None:
    slow = store.begin(Actor.system("slow"), now=AT)
    slow_uow = slow.__enter__()
    slow_uow.emit(OrdersLanded.of("b", "slow", ["s"], 1))  # takes the smaller id, stays open
    slow_uow.session.flush()
    with store.begin(Actor.system("fast"), now=AT) as uow:
        uow.emit(OrdersLanded.of("b", "fast", ["f"], 1))  # bigger id, committed first

    with store.unit_of_work() as s:
        first = after(s, 0, 0, 10)
    # the fast event's writer is newer than a transaction still running: not final yet, not read
    assert first == []
    slow.__exit__(None, None, None)
    both = final_events(store, 2)
    assert [e.event.import_id for e in both] == ["slow", "fast"]  # type: ignore[attr-defined]
    # a reader that had stopped at neither still gets both; one that took both gets nothing more
    with store.unit_of_work() as s:
        assert after(s, both[-1].txid, both[-1].id, 10) == []
