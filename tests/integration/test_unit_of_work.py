"""The unit of work: one transaction, effects only after commit, events and audit rows only with
the change (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from fixtures.outbox_wait import final_events
from siyu.audit.models import AuditEntry
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.events.catalogue import OrdersLanded, TierChanged
from siyu.events.outbox import OutboxEvent, after
from siyu.store.models import Brand

ME = Actor.user("alice")


def _counts(app: App) -> tuple[int, int, int]:
    with app.store.unit_of_work() as s:
        return (
            s.scalar(select(func.count()).select_from(Brand)) or 0,
            s.scalar(select(func.count()).select_from(OutboxEvent)) or 0,
            s.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def _change(uow, code: str) -> None:  # type: ignore[no-untyped-def]
    uow.session.add(Brand(code=code, timezone="Asia/Shanghai", created_at=uow.now))
    uow.emit(OrdersLanded.of(code, "job-" + code, ["o1"], 1))
    uow.audit("brand.create", "brand", code, brand=code, after={"code": code})


def test_a_rollback_leaves_no_side_effect(app: App) -> None:
    effects: list[str] = []
    with pytest.raises(RuntimeError), app.store.begin(ME) as uow:
        _change(uow, "b1")
        uow.after_commit(lambda: effects.append("sent"))
        raise RuntimeError("the service failed after deciding everything")
    # no row, no event, no audit, no effect
    assert _counts(app) == (0, 0, 0)
    assert effects == []


def test_after_commit_effects_run_once_after_the_commit(app: App) -> None:
    seen: list[tuple[int, int, int]] = []
    with app.store.begin(ME) as uow:
        _change(uow, "b1")
        # the effect observes committed state from another connection: it runs after the commit
        uow.after_commit(lambda: seen.append(_counts(app)))
        assert seen == []
    assert seen == [(1, 1, 1)]
    with app.store.begin(ME):
        pass  # a later unit of work does not replay earlier effects
    assert seen == [(1, 1, 1)]


def test_a_failing_effect_does_not_undo_the_commit_or_stop_the_others(app: App) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise ValueError("13812345678")  # a message with PII: logged by type only

    with app.store.begin(ME) as uow:
        _change(uow, "b1")
        uow.after_commit(broken)
        uow.after_commit(lambda: ran.append("second"))
    assert ran == ["second"]
    assert _counts(app) == (1, 1, 1)


def test_events_round_trip_through_the_outbox_in_order(app: App) -> None:
    with app.store.begin(ME, request_id="req-1") as uow:
        uow.emit(OrdersLanded.of("b", "job1", ["o1", "o2"], 2))
        uow.emit(TierChanged("b", "club", 7, "silver", "gold", "growth 1200 ≥ 1000"))
    stored = final_events(app.store, 2)
    assert [e.event for e in stored] == [
        OrdersLanded("b", "job1", ("o1", "o2"), True, 2),
        TierChanged("b", "club", 7, "silver", "gold", "growth 1200 ≥ 1000"),
    ]
    with app.store.unit_of_work() as s:
        assert s.scalars(select(OutboxEvent.request_id)).all() == ["req-1", "req-1"]
        # after the last one: nothing
        assert after(s, stored[-1].txid, stored[-1].id, 10) == []


def test_big_imports_carry_no_keys_but_say_so() -> None:
    event = OrdersLanded.of("b", "job", [str(i) for i in range(10_001)], 10_001)
    assert (event.keys, event.keys_complete, event.rows) == ((), False, 10_001)


def test_the_clock_port_gives_every_unit_of_work_its_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from siyu.bootstrap import bootstrap
    from siyu.config import Settings

    fixed = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
    moved = bootstrap(Settings(home=tmp_path / "h"), clock=lambda: fixed)
    with moved.store.begin(ME) as uow:
        assert uow.now == fixed
        uow.audit("brand.update", "brand", "b", brand="b", after={"timezone": "UTC"})
    with moved.store.unit_of_work() as s:
        at = s.scalar(select(AuditEntry.at))
    assert at is not None and at.replace(tzinfo=dt.UTC) == fixed
