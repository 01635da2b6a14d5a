"""Event handlers: at least once, resumed from their own position after a SIGKILL mid-batch, with
no loss and (for an idempotent handler) no double effect. Real processes, real kills."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import text

from fixtures.outbox_wait import final_events
from siyu.core.actor import Actor
from siyu.events.catalogue import EventsLanded, OrdersLanded
from siyu.events.dispatch import Handler, run_handler
from siyu.events.outbox import EventConsumer, StoredEvent
from siyu.store.db import open_store

N = 60
AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

# The handler: per event, one transaction that applies the effect only if it is not there yet
# (idempotent), after logging the delivery in a transaction of its own (so re-deliveries show).
CHILD = textwrap.dedent(
    """
    import sys, time, datetime as dt
    from sqlalchemy import text
    from siyu.events.dispatch import Handler, run_handler
    from siyu.store.db import open_store

    store = open_store(sys.argv[1])

    def handle(events):
        for e in events:
            with store.write_unit() as s:
                s.execute(text("INSERT INTO deliveries (event_id) VALUES (:i)"), {"i": e.id})
            with store.write_unit() as s:
                seen = s.execute(text("SELECT 1 FROM effects WHERE event_id = :i"), {"i": e.id}).first()
                if seen is None:
                    s.execute(text("INSERT INTO effects (event_id) VALUES (:i)"), {"i": e.id})
            time.sleep(0.005)

    run_handler(store, Handler("effects", frozenset({"OrdersLanded"}), handle),
                clock=lambda: dt.datetime.now(dt.UTC), batch=25)
    """
)


def _count(store, sql: str) -> int:  # type: ignore[no-untyped-def]
    with store.unit_of_work() as s:
        return int(s.execute(text(sql)).scalar_one())


def test_a_killed_handler_resumes_without_loss_or_double_effect(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    with store.unit_of_work() as s:
        s.execute(text("CREATE TABLE effects (event_id BIGINT)"))  # no unique key: duplicates would show
        s.execute(text("CREATE TABLE deliveries (event_id BIGINT)"))
    with store.begin(Actor.system("test"), now=AT) as uow:
        for i in range(N):
            uow.emit(OrdersLanded.of("b", f"job{i}", [f"o{i}"], 1))
            if i % 10 == 0:
                uow.emit(EventsLanded.of("b", f"ev{i}", [], 0))  # not subscribed: skipped, position moves on
    assert len(final_events(store, N + N // 10)) == N + N // 10
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    # kill it mid-batch (batches are 25 events) every 15 effects, while there is work left
    while _count(store, "SELECT count(*) FROM effects") < N - 15:
        child = subprocess.Popen([sys.executable, str(script), store_url], env=env)
        target = _count(store, "SELECT count(*) FROM effects") + 15
        deadline = time.monotonic() + 60
        while child.poll() is None and _count(store, "SELECT count(*) FROM effects") < target:
            assert time.monotonic() < deadline, "the handler made no progress"
            time.sleep(0.02)
        assert child.poll() is None, "the handler finished before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
    # then one run to the end
    assert subprocess.run([sys.executable, str(script), store_url], env=env, timeout=120).returncode == 0
    assert kills >= 3
    # every event applied exactly once, though some were delivered more than once (at least once)
    assert _count(store, "SELECT count(*) FROM effects") == N
    assert _count(store, "SELECT count(DISTINCT event_id) FROM effects") == N
    assert _count(store, "SELECT count(*) FROM deliveries") > N
    with store.unit_of_work() as s:
        row = s.get(EventConsumer, "effects")
        assert row is not None and row.leased_by is None  # the last run released its lease
    store.engine.dispose()


def test_a_live_lease_keeps_a_second_process_out(store_url: str) -> None:
    store = open_store(store_url)
    with store.begin(Actor.system("test"), now=AT) as uow:
        uow.emit(OrdersLanded.of("b", "j", ["o"], 1))
    assert len(final_events(store, 1)) == 1  # final for every reader before the handlers run
    got: list[StoredEvent] = []
    handler = Handler("h", frozenset({"OrdersLanded"}), got.extend)

    def clock() -> dt.datetime:
        return AT

    # another live process holds the lease (this test's parent pid is alive on this host)
    from siyu.events import outbox

    with store.write_unit() as s:
        outbox.lease(s, "h", f"{os.uname().nodename}:{os.getppid()}", AT, AT + dt.timedelta(minutes=10))
    assert run_handler(store, handler, clock=clock) == 0 and got == []
    # once it expired, this process takes over
    assert run_handler(store, handler, clock=lambda: AT + dt.timedelta(minutes=11)) == 1
    assert [e.event.import_id for e in got] == ["j"]  # type: ignore[attr-defined]
    store.engine.dispose()
