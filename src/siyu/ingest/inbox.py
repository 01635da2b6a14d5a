"""The ingest inbox (收件箱): messages the API accepted, durable in the store before the 2xx.

A message is one raw Segment message (`kind = "segment"`) or one canonical row (`kind` = entity).
`(brand, source, kind, message_id)` is unique, so a client retry is a no-op; the loader
(`siyu.ingest.loader`) moves pending messages into the lake and stamps them loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.store.db import Store
from siyu.store.models import InboxMessage


@dataclass(frozen=True)
class Message:
    message_id: str
    payload: str  # JSON text


@dataclass(frozen=True)
class Pending:
    id: int
    brand: str
    source: str
    kind: str
    message_id: str
    payload: str
    received_at: datetime


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; ours are written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def record(
    store: Store, brand: str, source: str, kind: str, messages: Sequence[Message], received_at: datetime
) -> None:
    """Insert messages in one transaction; ones already in the inbox are skipped. Committed on return."""
    if not messages:
        return
    rows = [
        {
            "brand": brand,
            "source": source,
            "kind": kind,
            "message_id": m.message_id,
            "payload": m.payload,
            "received_at": received_at,
        }
        for m in messages
    ]
    dialect = store.engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(InboxMessage).on_conflict_do_nothing(index_elements=["brand", "source", "kind", "message_id"])
    # Core, not an ORM session: the ORM's bulk path costs more than the insert itself (API hot path).
    with store.engine.begin() as connection:
        connection.execute(statement, rows)


def pending(session: Session, limit: int) -> list[Pending]:
    """The oldest pending messages, in arrival order."""
    query = (
        select(
            InboxMessage.id,
            InboxMessage.brand,
            InboxMessage.source,
            InboxMessage.kind,
            InboxMessage.message_id,
            InboxMessage.payload,
            InboxMessage.received_at,
        )
        .where(InboxMessage.loaded_at.is_(None))
        .order_by(InboxMessage.id)
        .limit(limit)
    )
    return [Pending(*row[:-1], _utc(row[-1])) for row in session.execute(query)]


def backlog(session: Session) -> tuple[int, datetime | None]:
    """How many messages wait, and when the oldest arrived."""
    count, oldest = session.execute(
        select(func.count(), func.min(InboxMessage.received_at)).where(InboxMessage.loaded_at.is_(None))
    ).one()
    return int(count), None if oldest is None else _utc(oldest)


def mark_loaded(session: Session, ids: Sequence[int], batch: str, loaded_at: datetime) -> None:
    # By explicit id, never by range: on PostgreSQL a lower id may commit after a higher one.
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        session.execute(update(InboxMessage).where(InboxMessage.id.in_(chunk)).values(loaded_at=loaded_at, batch=batch))
