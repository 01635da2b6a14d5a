"""The inbox loader (入湖): pending inbox messages → canonical rows → lake, then One-ID.

Exactly once, across crashes: a batch is imported with the file importer, whose classification
makes a re-import of rows already in the lake `unchanged` (nothing appended); only then are the
messages stamped loaded. A kill between the lake commit and the stamp re-runs the batch harmlessly.
One loader runs at a time per workspace (an exclusive file lock, released by the OS when the
process dies), so `siyu serve` processes and `siyu worker` can all run the loop safely.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.json as pajson
from sqlalchemy import func, or_, select

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.identity.service import run_resolve
from siyu.ingest import inbox
from siyu.ingest.importer import Counts, import_file
from siyu.ingest.schema import ENTITIES
from siyu.ingest.segment import segment_to_canonical, to_raw_files
from siyu.lake.views import latest
from siyu.store.models import IdentityRun, ImportJob

log = logging.getLogger("siyu.loader")
IDENTITY_ENTITIES = ("customers", "identities", "memberships")


@dataclass
class LoadResult:
    batch: str
    messages: int
    counts: dict[str, Counts] = field(default_factory=dict)
    received: list[datetime] = field(default_factory=list)
    loaded_at: datetime | None = None
    resolved: bool = False


@contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def _canonical_table(entity: str, rows: list[inbox.Pending]) -> pa.Table:
    """Canonical rows (JSON objects of text values) → an Arrow table of string columns, one parse."""
    names = ENTITIES[entity].column_names
    schema = pa.schema([(n, pa.string()) for n in names])
    data = "\n".join(r.payload for r in rows).encode()
    table = pajson.read_json(
        pa.BufferReader(data),
        parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    return table.append_column("_line", pa.array([r.id for r in rows], pa.int64()))


def _segment_tables(app: App, rows: list[inbox.Pending]) -> dict[str, pa.Table]:
    messages = ibis.memtable(
        pa.table(
            {
                "inbox_id": pa.array([r.id for r in rows], pa.int64()),
                "brand": [r.brand for r in rows],
                "source": [r.source for r in rows],
                "message_id": [r.message_id for r in rows],
                "payload": [r.payload for r in rows],
                "received_at": pa.array([r.received_at for r in rows], pa.timestamp("us", tz="UTC")),
            }
        )
    )
    mapped = segment_to_canonical(
        messages,
        lambda entity: latest(app.engine, entity),
        # Parse the JSON payloads once for all five output tables, not once per table.
        materialise=lambda table: app.engine.materialise(table, "segment_parsed"),
    )
    tables = {entity: app.engine.to_arrow(expr) for entity, expr in mapped.items()}
    app.engine.release(messages)
    return tables


def _import(app: App, path: str, tables: dict[str, pa.Table], result: LoadResult) -> None:
    for raw in to_raw_files(tables, Path(path)):
        report = import_file(app, raw, None)
        result.counts.setdefault(raw.entity, Counts()).add(report.counts)


def _stamp(app: App, rows: list[inbox.Pending], result: LoadResult) -> None:
    result.loaded_at = utc_now()
    with app.store.unit_of_work() as session:
        inbox.mark_loaded(session, [r.id for r in rows], result.batch, result.loaded_at)


def load_batch(app: App, max_messages: int) -> LoadResult | None:
    """Load up to `max_messages` pending messages; None if another loader holds the workspace.

    Canonical rows go first, then Segment messages, mapped over a lake that already holds those
    rows (an identify merges into the customer row posted before it). Each part is stamped loaded
    as soon as it is in the lake: re-running a part after a later one superseded its rows would
    append them again as a newer version (the importer compares with the latest version only)."""
    with _exclusive(app.settings.home / "loader.lock") as mine:
        if not mine:
            return None
        with app.store.unit_of_work() as session:
            rows = inbox.pending(session, max_messages)
        batch = str(uuid.uuid4())
        result = LoadResult(batch=batch, messages=len(rows), received=[r.received_at for r in rows])
        canonical = [r for r in rows if r.kind != "segment"]
        if canonical:
            kinds = {r.kind for r in canonical}
            tables = {e: _canonical_table(e, [r for r in canonical if r.kind == e]) for e in kinds}
            _import(app, f"inbox/{batch}/rows", tables, result)
            _stamp(app, canonical, result)
        segment = [r for r in rows if r.kind == "segment"]
        if segment:
            _import(app, f"inbox/{batch}/segment", _segment_tables(app, segment), result)
            _stamp(app, segment, result)
        return result


def resolve_if_free(app: App) -> bool:
    """Run One-ID under the loader lock (two loaders must not overwrite the identity map at once)."""
    with _exclusive(app.settings.home / "loader.lock") as mine:
        if mine:
            run_resolve(app)
            # New customers now have ids: their orders can reach the loyalty ledger (exactly once).
            from siyu.loyalty.sync import sync_all

            sync_all(app, actor="loader")
        return mine


def resolve_due(now: float, last: float, last_seconds: float, every: float) -> bool:
    """One-ID is a full, id-stable re-clustering (85 s for 1.8M source records on 2 cores): run it at
    most every `every` seconds and, for big brands, so that it takes at most a fifth of the loader's
    time — loading waits while it holds the lock."""
    return now - last >= max(every, 4 * last_seconds)


def changed_identity(result: LoadResult) -> bool:
    return any(result.counts[e].accepted + result.counts[e].updated for e in IDENTITY_ENTITIES if e in result.counts)


def identity_stale(app: App) -> bool:
    """Whether people were imported after One-ID last ran: a loader killed between a batch and its
    resolve leaves no other trace. Jobs still `running` count (killed after their lake commit)."""
    last_run = select(func.max(IdentityRun.ran_at)).scalar_subquery()
    query = select(ImportJob.id).where(
        ImportJob.entity.in_(IDENTITY_ENTITIES),
        ImportJob.status != "failed",
        ImportJob.accepted + ImportJob.updated > 0,
        or_(last_run.is_(None), ImportJob.started_at > last_run),
    )
    with app.store.unit_of_work() as session:
        return session.execute(query.limit(1)).first() is not None


class Loader:
    """Micro-batches by size and age: load when `batch_messages` wait or the oldest waited `max_age`
    seconds. One-ID is re-run after batches that brought new or changed people, at most every
    `resolve_every` seconds and never more than a fifth of the time (see `resolve_due`); ids stay
    stable across runs."""

    def __init__(
        self,
        app: App,
        batch_messages: int = 20_000,
        max_age: float = 1.0,
        resolve_every: float = 5.0,
        on_batch: Callable[[LoadResult], None] | None = None,
    ) -> None:
        self.app = app
        self.batch_messages = batch_messages
        self.max_age = max_age
        self.resolve_every = resolve_every
        self.on_batch = on_batch
        self._identity_dirty = identity_stale(app)  # not just this process's batches: a killed one's too
        self._last_resolve = 0.0
        self._resolve_seconds = 0.0

    def tick(self) -> LoadResult | None:
        """One step of the loop: load a batch if one is due, re-run One-ID if due."""
        with self.app.store.unit_of_work() as session:
            waiting, oldest = inbox.backlog(session)
        result = None
        due = waiting >= self.batch_messages or (
            waiting and oldest is not None and (utc_now() - oldest).total_seconds() >= self.max_age
        )
        if due:
            result = load_batch(self.app, self.batch_messages)
            if result and changed_identity(result):
                self._identity_dirty = True
        if (
            self._identity_dirty
            and resolve_due(time.monotonic(), self._last_resolve, self._resolve_seconds, self.resolve_every)
            and self._resolve()
        ):
            self._identity_dirty = False
            if result:
                result.resolved = True
        if result and result.messages and self.on_batch:
            self.on_batch(result)
        return result

    def _resolve(self) -> bool:
        started = time.monotonic()
        if not resolve_if_free(self.app):
            return False
        self._last_resolve = time.monotonic()
        self._resolve_seconds = self._last_resolve - started
        return True

    def drain(self) -> int:
        """Load everything pending now and resolve One-ID; returns messages loaded (for tests, `worker --once`)."""
        total = 0
        while True:
            result = load_batch(self.app, self.batch_messages)
            if result is None:
                time.sleep(0.1)  # another loader is working
                continue
            if result.messages and changed_identity(result):
                self._identity_dirty = True
            total += result.messages
            if not result.messages:
                break
        while self._identity_dirty and not resolve_if_free(self.app):
            time.sleep(0.1)  # another loader holds the lock
        self._identity_dirty = False
        return total

    def run(self, stop: threading.Event, poll: float = 0.2) -> None:
        while not stop.is_set():
            try:
                result = self.tick()
            except Exception:  # keep serving: the batch stays pending and is retried
                log.exception("loader batch failed; retrying")
                stop.wait(5.0)
                continue
            if not result or result.messages < self.batch_messages:
                stop.wait(poll)
