"""A worker's batch is set-based: claiming, moving and writing back N enrolments issues the same
few statements whether N is 10 or 60, and loads no ORM object per enrolment (a regression guard:
a query per customer makes the count grow with N; loading and flushing 500 enrolments through the
ORM cost 0.1–0.2 s a batch each). Counted with SQLAlchemy `before_cursor_execute` (an executemany
is one statement) and the mapper's `load` event, on SQLite and PostgreSQL.
Enrolments are inserted straight into the store, as the triggers leave them (no lake data)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.journeys.apply import do_apply_journey
from siyu.journeys.models import Enrolment, EnrolmentStep
from siyu.journeys.runner import advance_batch
from siyu.messaging.models import OutboundMessage

T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
JOURNEY = """
brand: kb
code: batchy
version: 1
name: {zh: 批量, en: Batchy}
category: transactional
timezone: Asia/Shanghai
trigger: {event: {type: never_happens}}
templates:
  a: {sms: {template_code: SMS_A}}
steps:
  - {id: first, send: {channel: sms, template: a}}
  - {id: pause, wait: {days: 1}}
  - {id: done, exit: }
"""
N = 70


def _statements(app: App, now: dt.datetime, limit: int) -> tuple[int, int]:
    """(enrolments claimed, statements issued) of one `advance_batch`; no Enrolment object loaded."""
    seen: list[str] = []
    loaded: list[object] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    def load(target: object, context: Any) -> None:
        loaded.append(target)

    event.listen(app.store.engine, "before_cursor_execute", count)
    event.listen(Enrolment, "load", load)
    try:
        claimed, _ = advance_batch(app, now, limit)
    finally:
        event.remove(app.store.engine, "before_cursor_execute", count)
        event.remove(Enrolment, "load", load)
    assert loaded == []
    return claimed, len(seen)


def test_a_batch_issues_a_bounded_number_of_statements(app: App, tmp_path: Path) -> None:
    path = tmp_path / "batchy.yaml"
    path.write_text(JOURNEY, encoding="utf-8")
    do_apply_journey(app, path, actor=Actor.user("test"), at=T0)
    with app.store.begin(Actor.user("test"), now=T0) as uow:
        ids = uow.session.execute(
            insert(Enrolment).returning(Enrolment.id),
            [
                {"journey": "batchy", "version": 1, "brand": "kb", "customer_id": f"k{i:05d}", "entry_key": "x",
                 "status": "active", "holdout": False, "step_id": "first", "step_seq": 1, "due_at": T0,
                 "context": "{}", "entered_at": T0}
                for i in range(N)
            ],
        ).scalars().all()  # fmt: skip
        uow.session.execute(
            insert(EnrolmentStep),
            [{"enrolment_id": i, "seq": 1, "journey": "batchy", "step_id": "first", "entered_at": T0} for i in ids],
        )
    # day 0: send, then start the wait (closes the trigger's step row, opens the wait's)
    small = _statements(app, T0, 10)
    large = _statements(app, T0, 60)
    assert (small[0], large[0]) == (10, 60)
    assert small[1] == large[1] <= 16, (small, large)
    assert advance_batch(app, T0, 60) == (0, 0)  # everyone waits now
    with app.store.unit_of_work() as s:
        waiting = s.execute(select(Enrolment.step_id, Enrolment.due_at, Enrolment.step_seq)).all()
        assert {(w.step_id, w.step_seq) for w in waiting} == {("pause", 2)}
        assert {w.due_at.replace(tzinfo=dt.UTC) if w.due_at.tzinfo is None else w.due_at for w in waiting} == {
            T0 + dt.timedelta(days=1)
        }
        assert s.scalar(select(func.count(func.distinct(OutboundMessage.idempotency_key)))) == N
        firsts = s.execute(select(EnrolmentStep.outcome).where(EnrolmentStep.step_id == "first")).scalars().all()
        assert len(firsts) == N and all(o is not None and o.startswith("sms:") for o in firsts)
    # day 1: the wait ends and everyone exits, again in a few statements per batch
    later = T0 + dt.timedelta(days=1, minutes=1)
    small = _statements(app, later, 10)
    large = _statements(app, later, 60)
    assert (small[0], large[0]) == (10, 60)
    assert small[1] == large[1] <= 16, (small, large)
    with app.store.unit_of_work() as s:
        assert set(s.execute(select(Enrolment.status, Enrolment.step_id)).all()) == {("exited", "done")}
        per = s.execute(
            select(EnrolmentStep.step_id, func.count(), func.count(EnrolmentStep.left_at)).group_by(
                EnrolmentStep.step_id
            )
        ).all()
    assert sorted(per) == [("done", N, N), ("first", N, N), ("pause", N, N)]
