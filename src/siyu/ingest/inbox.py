"""The ingest inbox (收件箱): messages the API accepted, durable in the store before the 2xx.

A message is one raw Segment message (`kind = "segment"`) or one canonical row (`kind` = entity).
`(brand, source, kind, message_id)` is unique, so a client retry is a no-op; the loader
(`siyu.ingest.loader`) moves pending messages into the lake and stamps them loaded, or — a message
that fails even on its own — dead-letters it (`siyu.ingest.dead_letters`): out of the queue, so it
holds up nobody, until an operator retries or drops it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.privacy.crypto import Keyring, decrypt, encrypt, is_sealed
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


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; ours are written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_COLUMNS = ("brand", "source", "kind", "message_id", "payload", "received_at")
_INSERT = {
    # The driver's own executemany: SQLAlchemy's per-row parameter processing cost more than the
    # insert and the fsync together on this hot path. Same text as the ORM would store.
    "sqlite": f"INSERT OR IGNORE INTO inbox ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
    "postgresql": f"INSERT INTO inbox ({', '.join(_COLUMNS)}) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (brand, source, kind, message_id) DO NOTHING",
}


PURPOSE, CONTEXT = "store", "inbox.payload"  # payloads hold PII until (and after) they are loaded


def _rows(
    brand: str, source: str, kind: str, messages: Sequence[Message], received_at: datetime, ring: Keyring | None
) -> list[tuple[object, ...]]:
    def sealed(payload: str) -> str:
        return payload if ring is None else encrypt(ring, PURPOSE, payload, CONTEXT)

    return [(brand, source, kind, m.message_id, sealed(m.payload), received_at) for m in messages]


def open_payload(ring: Keyring | None, stored: str) -> str:
    """A payload as the client sent it; ones stored before encryption are clear JSON."""
    if not is_sealed(stored):
        return stored
    if ring is None:
        raise ValueError("a sealed inbox payload needs the PII keyring to be read")
    return decrypt(ring, PURPOSE, stored, CONTEXT)


def _insert(store: Store, rows: list[tuple[object, ...]]) -> None:
    dialect = store.engine.dialect.name
    if dialect == "sqlite":
        # SQLAlchemy's SQLite DateTime storage format: naive UTC text with microseconds.
        texts: dict[object, str] = {}  # one receive time per request: format each once
        for r in rows:
            if r[5] not in texts:
                texts[r[5]] = r[5].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # type: ignore[attr-defined]
        rows = [(*r[:5], texts[r[5]]) for r in rows]
    with store.engine.begin() as connection:
        connection.exec_driver_sql(_INSERT[dialect], rows)


def record(
    store: Store,
    brand: str,
    source: str,
    kind: str,
    messages: Sequence[Message],
    received_at: datetime,
    ring: Keyring | None = None,
) -> None:
    """Insert messages in one transaction; ones already in the inbox are skipped. Committed on return.
    With `ring` (the settings' `pii_sealing_ring`) payloads are stored sealed."""
    if messages:
        _insert(store, _rows(brand, source, kind, messages, received_at, ring))


class GroupCommitter:
    """Group commit for the API's hot path: requests that arrive while a commit is in flight are
    written together in the next transaction, so one fsync serves many requests. Each caller's
    future resolves only after the transaction holding its rows committed (or fails with it)."""

    def __init__(self, store: Store, ring: Keyring | None = None) -> None:
        self.store = store
        self.ring = ring
        self._queue: queue.SimpleQueue[tuple[list[tuple[object, ...]], Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(
        self, brand: str, source: str, kind: str, messages: Sequence[Message], received_at: datetime
    ) -> Future[None]:
        done: Future[None] = Future()
        if not messages:
            done.set_result(None)
            return done
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="siyu-inbox-writer", daemon=True)
                self._thread.start()
        self._queue.put((_rows(brand, source, kind, messages, received_at, self.ring), done))
        return done

    def _run(self) -> None:
        while True:
            waiting = [self._queue.get()]
            while True:  # everything queued meanwhile goes into the same transaction
                try:
                    waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                _insert(self.store, [row for rows, _ in waiting for row in rows])
            except Exception as exc:  # every request of the group fails (5xx): nothing was committed
                for _, done in waiting:
                    done.set_exception(exc)
            else:
                for _, done in waiting:
                    done.set_result(None)


# Waiting for the loader: neither loaded nor set aside as a dead letter.
_PENDING = (InboxMessage.loaded_at.is_(None), InboxMessage.dead_at.is_(None))
# Dead letters an operator has not dropped yet (what `siyu inbox dead-letters` lists).
OPEN_DEAD = (InboxMessage.dead_at.is_not(None), InboxMessage.dropped_at.is_(None))


def pending(session: Session, limit: int, ring: Keyring | None = None) -> list[Pending]:
    """The oldest pending messages, in arrival order, payloads opened."""
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
        .where(*_PENDING)
        .order_by(InboxMessage.id)
        .limit(limit)
    )
    return [Pending(*row[:5], open_payload(ring, row[5]), as_utc(row[6])) for row in session.execute(query)]


def backlog(session: Session) -> tuple[int, datetime | None]:
    """How many messages wait, and when the oldest arrived."""
    count, oldest = session.execute(select(func.count(), func.min(InboxMessage.received_at)).where(*_PENDING)).one()
    return int(count), None if oldest is None else as_utc(oldest)


def dead_letter_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(InboxMessage).where(*OPEN_DEAD)) or 0)


def mark_loaded(session: Session, ids: Sequence[int], batch: str, loaded_at: datetime) -> None:
    # By explicit id, never by range: on PostgreSQL a lower id may commit after a higher one.
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        session.execute(update(InboxMessage).where(InboxMessage.id.in_(chunk)).values(loaded_at=loaded_at, batch=batch))


def mark_dead(session: Session, message_id: int, reason: str, dead_at: datetime) -> None:
    """Set a message aside: the loader no longer takes it; `attempts` counts its failures alone."""
    session.execute(
        update(InboxMessage)
        .where(InboxMessage.id == message_id)
        .values(dead_at=dead_at, dead_reason=reason, attempts=InboxMessage.attempts + 1)
    )
