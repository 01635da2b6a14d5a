"""A worker's batch of enrolments in the store, set-based (SQLAlchemy Core, no ORM objects):

- `claim_due`: one SELECT of the due enrolments' state, `FOR UPDATE SKIP LOCKED` on PostgreSQL
  (two workers split the work, neither waits), under SQLite's write lock (BEGIN IMMEDIATE)
  otherwise;
- `write_back`: every claimed enrolment's new state in one executemany UPDATE by primary key;
- `write_log`: the step-log rows the batch opened (one executemany INSERT) and closed (one UPDATE).

All three run in the batch's unit of work, with the side effects (outbox, coupons, points…), so a
worker killed at any moment leaves each enrolment where it was. Loading and flushing a batch of
500 through the ORM cost 0.1–0.2 s each; as rows and executemany, milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session

from siyu.journeys.models import Enrolment, EnrolmentStep, JourneyRow
from siyu.store.upsert import update_many

ENROLMENTS = cast(Table, Enrolment.__table__)
STEPS = cast(Table, EnrolmentStep.__table__)
# what a transition may change (written back whole: every claimed enrolment moves)
STATE = ("status", "step_id", "step_seq", "due_at", "waiting_since", "wait_result", "context", "finished_at")


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; the store only holds UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@dataclass(slots=True)
class EnrolmentState:
    """One claimed enrolment, as the state machine moves it (siyu.journeys.machine)."""

    id: int
    journey: str
    version: int
    brand: str
    customer_id: str
    holdout: bool
    status: str
    step_id: str | None
    step_seq: int
    due_at: dt.datetime | None
    waiting_since: dt.datetime | None
    wait_result: str | None
    context: str
    finished_at: dt.datetime | None


FIELDS = ("id", "journey", "version", "brand", "customer_id", "holdout", *STATE)


def claim_due(session: Session, now: dt.datetime, limit: int) -> list[EnrolmentState]:
    """Up to `limit` active enrolments of active journeys due at `now`, oldest first, locked."""
    e, j = ENROLMENTS, JourneyRow.__table__
    query = (
        select(*(e.c[name] for name in FIELDS))
        .select_from(e.join(j, j.c.code == e.c.journey))
        .where(e.c.status == "active", e.c.due_at <= now, j.c.status == "active")
        .order_by(e.c.due_at, e.c.id)
        .limit(limit)
    )
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=e)
    out = []
    for row in conn.execute(query):
        state = EnrolmentState(*row)
        state.due_at, state.waiting_since = aware(state.due_at), aware(state.waiting_since)
        state.finished_at = aware(state.finished_at)
        state.context = state.context or "{}"
        out.append(state)
    return out


def write_back(session: Session, claimed: Sequence[EnrolmentState]) -> None:
    """The new state of every claimed enrolment, by primary key (siyu.store.upsert.update_many)."""
    rows = [{"id": s.id, **{name: getattr(s, name) for name in STATE}} for s in claimed]
    update_many(session.connection(), ENROLMENTS, rows, ["id"])


LOG_COLUMNS = ("enrolment_id", "seq", "journey", "step_id", "entered_at", "left_at", "outcome")


def insert_log(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append step-log rows in the connection's transaction: COPY on PostgreSQL (an executemany
    INSERT of 1,000 rows costs it ~0.3 s), one executemany INSERT elsewhere."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(STEPS), list(rows))
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {STEPS.name} ({', '.join(LOG_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row.get(c) for c in LOG_COLUMNS))


def write_log(session: Session, opened: Sequence[dict[str, Any]], closed: Sequence[dict[str, Any]]) -> None:
    """Step-log rows opened in the batch (`insert_log`) and rows of earlier runs it closed (one UPDATE)."""
    conn = session.connection()
    insert_log(conn, opened)
    update_many(conn, STEPS, [{c: r[c] for c in ("enrolment_id", "seq", "left_at", "outcome")} for r in closed],
                ["enrolment_id", "seq"])  # fmt: skip
