"""Running handlers over the outbox: at least once, one position and one lease per handler.

A handler gets the events of the types it subscribed to, in outbox order, a batch at a time; the
position moves past a batch only after the handler returned. A process killed mid-batch leaves the
position where it was, so the batch runs again: handlers must be idempotent (the loyalty posting is,
by its order-keyed postings). The lease keeps two processes from running one handler at once; a
lease whose owner died on this host is taken over at once, elsewhere when it expires.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from siyu.events import outbox
from siyu.events.outbox import EventConsumer, StoredEvent
from siyu.store.db import Store

log = logging.getLogger("siyu.events")

LEASE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Handler:
    """`handle` receives the stored events of `types`; it must be idempotent (see module docstring)."""

    name: str
    types: frozenset[str]
    handle: Callable[[list[StoredEvent]], None]


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(owner: str | None) -> bool:
    """Whether the lease holder is a process of this host that no longer runs."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _take_lease(store: Store, name: str, owner: str, now: dt.datetime) -> bool:
    with store.write_unit() as session:
        row = session.get(EventConsumer, name)
        if row is not None and row.leased_by != owner and _dead_here(row.leased_by):
            row.leased_until = None
            session.flush()
        return outbox.lease(session, name, owner, now, now + LEASE)


def run_handler(
    store: Store,
    handler: Handler,
    *,
    clock: Callable[[], dt.datetime],
    batch: int = 500,
    owner: str | None = None,
    max_batches: int | None = None,
) -> int:
    """Feed `handler` everything after its position; returns the number of events it was given.
    Returns 0 at once when another live process holds its lease."""
    owner = owner or this_process()
    with store.unit_of_work() as session:  # a read first: an idle loop must not take write locks
        if not outbox.after(session, *outbox.position(session, handler.name), 1):
            return 0
    if not _take_lease(store, handler.name, owner, clock()):
        return 0
    given = 0
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            with store.unit_of_work() as session:
                txid, event_id = outbox.position(session, handler.name)
                events = outbox.after(session, txid, event_id, batch)
            if not events:
                break
            wanted = [e for e in events if e.event.type in handler.types]
            if wanted:
                handler.handle(wanted)
            last = events[-1]
            with store.write_unit() as session:
                outbox.advance(session, handler.name, last.txid, last.id, len(wanted), clock())
                outbox.lease(session, handler.name, owner, clock(), clock() + LEASE)
            given += len(wanted)
            batches += 1
    finally:
        with store.write_unit() as session:
            outbox.release(session, handler.name, owner)
    return given


def run_handlers(store: Store, handlers: list[Handler], *, clock: Callable[[], dt.datetime]) -> dict[str, int]:
    """One pass of every handler (the worker and the serve loader call this in their loops). A
    failing handler is logged by type and retried on the next pass; the others still run."""
    given: dict[str, int] = {}
    for handler in handlers:
        try:
            given[handler.name] = run_handler(store, handler, clock=clock)
        except Exception as error:  # retried next pass from the same position
            log.error("event handler %s failed: %s", handler.name, type(error).__name__)
            given[handler.name] = 0
    return given
