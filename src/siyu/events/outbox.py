"""The store outbox: one row per domain event, written in the transaction that caused it, and one
position per handler.

Order that never skips a late commit: "every id above my position" would miss a row whose
transaction took its id earlier and committed later, so rows are read in (txid, id) order below the
visible horizon (siyu.store.txid).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    CursorResult,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from siyu.events.catalogue import DomainEvent, decode
from siyu.store.models import Base
from siyu.store.txid import current_txid, visible_horizon

Id = BigInteger().with_variant(Integer, "sqlite")


class OutboxEvent(Base):
    """A domain event (see siyu.events.catalogue), durable from the commit of its cause."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_order", "txid", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    txid: Mapped[int] = mapped_column(BigInteger, default=0)
    type: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(String(64))


class EventConsumer(Base):
    """A handler's position in the outbox, and the lease of the process running it."""

    __tablename__ = "event_consumers"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger, default=0)
    event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    leased_by: Mapped[str | None] = mapped_column(String(120))
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    handled: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class StoredEvent:
    id: int
    txid: int
    at: dt.datetime
    event: DomainEvent


def append(session: Session, event: DomainEvent, *, at: dt.datetime, request_id: str | None) -> None:
    payload = json.dumps(event.payload(), ensure_ascii=False, sort_keys=True, default=str)
    session.execute(
        insert(OutboxEvent).values(
            txid=current_txid(session), type=event.type, brand=event.brand, payload=payload, at=at,
            request_id=request_id,
        )
    )  # fmt: skip


def after(session: Session, txid: int, event_id: int, limit: int) -> list[StoredEvent]:
    """The next `limit` final events after position (txid, event_id), in outbox order."""
    t = OutboxEvent
    query = select(t.id, t.txid, t.at, t.type, t.payload).where(
        or_(t.txid > txid, and_(t.txid == txid, t.id > event_id))
    )
    horizon = visible_horizon(session)
    if horizon is not None:
        query = query.where(t.txid < horizon)
    rows = session.execute(query.order_by(t.txid, t.id).limit(limit)).all()
    return [StoredEvent(r.id, r.txid, r.at, decode(r.type, json.loads(r.payload))) for r in rows]


def position(session: Session, name: str) -> tuple[int, int]:
    row = session.get(EventConsumer, name)
    return (0, 0) if row is None else (row.txid, row.event_id)


def advance(session: Session, name: str, txid: int, event_id: int, handled: int, at: dt.datetime) -> None:
    session.execute(
        update(EventConsumer)
        .where(EventConsumer.name == name)
        .values(txid=txid, event_id=event_id, handled=EventConsumer.handled + handled, updated_at=at)
        .execution_options(synchronize_session=False)
    )


def lease(session: Session, name: str, owner: str, at: dt.datetime, until: dt.datetime) -> bool:
    """Take the handler's lease if it is free or expired (one process runs a handler at a time)."""
    if session.get(EventConsumer, name) is None:
        session.add(EventConsumer(name=name, txid=0, event_id=0, handled=0))
        session.flush()
    taken: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(EventConsumer)
        .where(
            EventConsumer.name == name,
            or_(
                EventConsumer.leased_until.is_(None), EventConsumer.leased_until < at, EventConsumer.leased_by == owner
            ),
        )
        .values(leased_by=owner, leased_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount)


def release(session: Session, name: str, owner: str) -> None:
    session.execute(
        update(EventConsumer)
        .where(EventConsumer.name == name, EventConsumer.leased_by == owner)
        .values(leased_by=None, leased_until=None)
        .execution_options(synchronize_session=False)
    )


def backlog(session: Session) -> dict[str, int]:
    """Events each known handler has not passed yet (for `siyu events status` and /metrics)."""
    out: dict[str, int] = {}
    for consumer in session.scalars(select(EventConsumer)):
        t = OutboxEvent
        count = session.scalar(
            select(func.count()).where(
                or_(t.txid > consumer.txid, and_(t.txid == consumer.txid, t.id > consumer.event_id))
            )
        )
        out[consumer.name] = int(count or 0)
    return out
