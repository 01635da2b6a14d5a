"""The inbox loader (入湖): pending inbox messages → canonical rows → lake, then One-ID.

Exactly once, across crashes: a batch is imported with the file importer, whose classification
makes a re-import of rows already in the lake `unchanged` (nothing appended); only then are the
messages stamped loaded. A kill between the lake commit and the stamp re-runs the batch harmlessly.
One loader runs at a time per workspace (siyu.store.locks: an advisory lock on PostgreSQL, a file
lock on SQLite, released when the holder dies), so any number of `siyu serve` and `siyu worker`
processes — on one host or several sharing the store — can all run the loop safely.

One bad message must not stop the loader for everyone: when a part of a batch fails with a data
error, the single messages that fail are found by bisection — cheap probes first (mapping only,
`siyu.ingest.isolation`), else by loading halves — dead-lettered with their reason
(`siyu.ingest.dead_letters`), and the rest load in the same cycle. Retrying a half is safe for the
same reason a crash is: rows it already committed re-import as `unchanged`, and halves load in
arrival order, so later messages still win. Infrastructure errors (store, disk, lake) are not
bisected: the batch stays pending and is retried whole.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ibis
import pyarrow as pa
from sqlalchemy import func, or_, select

from siyu.audit.chain import seal
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import SiyuError
from siyu.engine.base import Engine
from siyu.events import subscriptions
from siyu.events.dispatch import Handler, run_handlers
from siyu.identity.service import NothingToResolveError, run_incremental, run_resolve
from siyu.ingest import inbox
from siyu.ingest.counts import Counts
from siyu.ingest.dead_letters import LoadStepError
from siyu.ingest.importer import import_file
from siyu.ingest.isolation import canonical_probe, canonical_table, culprits, messages_table, segment_probe, stage
from siyu.ingest.segment import segment_to_canonical, to_raw_files
from siyu.ingest.segment_plan import SegmentPlan
from siyu.ingest.views import latest
from siyu.store.locks import exclusive
from siyu.store.models import IdentityRun, ImportJob

log = logging.getLogger("siyu.loader")
_plans: weakref.WeakKeyDictionary[Engine, SegmentPlan] = weakref.WeakKeyDictionary()
IDENTITY_ENTITIES = ("customers", "identities", "memberships")
SEAL_EVERY_SECONDS = 10.0  # the audit chain trails the writes by at most this much


class LoaderBusyError(SiyuError):
    code = "loader_busy"
    exit_code = 4


@dataclass
class LoadResult:
    batch: str
    messages: int = 0  # loaded into the lake
    taken: int = 0  # taken from the queue: loaded or dead-lettered
    dead: list[int] = field(default_factory=list)  # inbox ids dead-lettered
    counts: dict[str, Counts] = field(default_factory=dict)
    received: list[datetime] = field(default_factory=list)  # of the loaded messages
    loaded_at: datetime | None = None
    resolved: bool = False


def _exclusive(app: App) -> AbstractContextManager[bool]:
    return exclusive(app.store.engine, app.settings.home, "loader")


def segment_plan(app: App) -> SegmentPlan:
    """The loader engine's compiled Segment mapping (built on first use, kept for the process)."""
    plan = _plans.get(app.engine)
    if plan is None:
        plan = _plans[app.engine] = SegmentPlan(app.engine, app.settings.time_bounds)
    return plan


def _segment_tables(app: App, rows: list[inbox.Pending]) -> dict[str, pa.Table]:
    if app.engine.capabilities.prepared_queries:  # compiled once per process (siyu.ingest.segment_plan)
        return segment_plan(app).run(messages_table(rows))
    messages = ibis.memtable(messages_table(rows))
    try:
        mapped = segment_to_canonical(
            messages,
            lambda entity: latest(app.engine, entity),
            # Parse the JSON payloads once for all five output tables, not once per table.
            materialise=lambda table: app.engine.materialise(table, "segment_parsed"),
            bounds=app.settings.time_bounds,
        )
        return {entity: app.engine.to_arrow(expr) for entity, expr in mapped.items()}
    finally:
        app.engine.release(messages)


def _tables(app: App, rows: list[inbox.Pending]) -> dict[str, pa.Table]:
    """One part's messages as canonical tables: Segment ones mapped, canonical rows parsed."""
    if rows[0].kind == "segment":
        with stage("segment mapping"):
            return _segment_tables(app, rows)
    tables = {}
    for entity in sorted({r.kind for r in rows}):
        with stage(f"read {entity} rows"):
            tables[entity] = canonical_table(entity, [r for r in rows if r.kind == entity])
    return tables


def _load(app: App, rows: list[inbox.Pending], part: str, result: LoadResult) -> None:
    """Import `rows` (all Segment or all canonical) into the lake, then stamp them loaded.
    Counts are added as each entity commits, so a later failure still reports what went in."""
    for raw in to_raw_files(_tables(app, rows), Path(f"inbox/{result.batch}/{part}")):
        with stage(f"import {raw.entity}"):
            report = import_file(app, raw, None)
        result.counts.setdefault(raw.entity, Counts()).add(report.counts)
    loaded_at = utc_now()
    with app.store.unit_of_work() as session:  # a failure here is the store's, never a message's
        inbox.mark_loaded(session, [r.id for r in rows], result.batch, loaded_at)
    result.loaded_at = loaded_at
    result.messages += len(rows)
    result.received += [r.received_at for r in rows]


def _dead_letter(app: App, row: inbox.Pending, failure: LoadStepError, result: LoadResult) -> None:
    with app.store.unit_of_work() as session:
        inbox.mark_dead(session, row.id, failure.reason, utc_now())
    result.dead.append(row.id)
    log.warning("inbox message %d (%s/%s) dead-lettered: %s", row.id, row.brand, row.kind, failure.reason)


def _load_isolating(app: App, rows: list[inbox.Pending], part: str, result: LoadResult, probe: bool = True) -> None:
    """Load `rows`; on a data error, find the single messages that fail and dead-letter them, then
    load the rest (see the module docstring). The culprits are found with cheap probes; a failure
    the probes do not reproduce (one at commit time, or one that needs the lake) is bisected by
    loading the halves. An infrastructure error is raised: nothing is dead-lettered."""
    try:
        _load(app, rows, part, result)
        return
    except LoadStepError as failure:
        if failure.transient:
            raise failure.cause from None
        if len(rows) == 1:
            _dead_letter(app, rows[0], failure, result)
            return
    found = []
    if probe and part == "segment":
        with segment_probe(app.engine) as segment:
            found = culprits(segment, rows)
    elif probe:
        found = culprits(canonical_probe, rows)
    for row, why in found:
        _dead_letter(app, row, why, result)
    if found:
        bad = {row.id for row, _ in found}
        rest = [r for r in rows if r.id not in bad]
        if rest:
            _load_isolating(app, rest, part, result)
        return
    middle = len(rows) // 2  # probes pass for every message, so they would for any half too
    _load_isolating(app, rows[:middle], part, result, probe=False)
    _load_isolating(app, rows[middle:], part, result, probe=False)


def load_batch(app: App, max_messages: int) -> LoadResult | None:
    """Load up to `max_messages` pending messages; None if another loader holds the workspace.

    Canonical rows go first, then Segment messages, mapped over a lake that already holds those
    rows (an identify merges into the customer row posted before it). Each part is stamped loaded
    as soon as it is in the lake: re-running a part after a later one superseded its rows would
    append them again as a newer version (the importer compares with the latest version only)."""
    with _exclusive(app) as mine:
        if not mine:
            return None
        with app.store.unit_of_work() as session:
            rows = inbox.pending(session, max_messages, app.settings.pii_keyring)
        result = LoadResult(batch=str(uuid.uuid4()), taken=len(rows))
        canonical = [r for r in rows if r.kind != "segment"]
        if canonical:
            _load_isolating(app, canonical, "rows", result)
        segment = [r for r in rows if r.kind == "segment"]
        if segment:
            _load_isolating(app, segment, "segment", result)
        return result


def resolve_if_free(app: App, *, full: bool = False) -> bool:
    """Run One-ID under the loader lock (two loaders must not write the identity map at once):
    incremental (only what new imports touched, siyu.identity.incremental), or the full run."""
    with _exclusive(app) as mine:
        if mine:  # writes IdentityResolved: the loyalty posting handler takes it from there
            run_resolve(app) if full else run_incremental(app)
        return mine


@contextmanager
def holding_loader_lock(app: App, *, wait_seconds: float, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold the loader lock, waiting up to `wait_seconds` for a running loader (a `siyu resolve` from
    the CLI must not write the identity map while a worker's loader does). `on_wait` runs once,
    when the lock is busy, so the caller can say why it waits."""
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        with _exclusive(app) as mine:
            if mine:
                yield
                return
        if time.monotonic() >= deadline:
            raise LoaderBusyError(
                f"another loader has held the loader lock for {wait_seconds:.0f} s; try again later "
                "(另一个加载进程正在运行，请稍后重试)"
            )
        if not told:
            on_wait()
            told = True
        time.sleep(0.2)


def resolve_due(now: float, last: float, last_seconds: float, every: float) -> bool:
    """Run One-ID at most every `every` seconds and so that it takes at most a fifth of the loader's
    time — loading waits while it holds the lock (an incremental run costs what the new records
    touch; a full one 85 s for 1.8M source records on 2 cores)."""
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
    stable across runs. Every cycle ends with the domain event handlers (siyu.events.subscriptions):
    an order that landed in this cycle reaches the loyalty ledger in the same cycle."""

    def __init__(
        self,
        app: App,
        batch_messages: int = 20_000,
        max_age: float = 1.0,
        resolve_every: float = 5.0,
        on_batch: Callable[[LoadResult], None] | None = None,
        handlers: list[Handler] | None = None,
        full_resolve_every: float | None = None,
    ) -> None:
        self.app = app
        self.handlers = subscriptions.handlers(app) if handlers is None else handlers
        self.batch_messages = batch_messages
        self.max_age = max_age
        self.resolve_every = resolve_every
        self.on_batch = on_batch
        self._identity_dirty = identity_stale(app)  # not just this process's batches: a killed one's too
        self._last_resolve = 0.0
        self._resolve_seconds = 0.0
        self._last_seal = 0.0
        # The full One-ID run (compacts the identifier index; picks up a changed blocklist): every
        # `full_resolve_every` seconds, first one interval after start (`siyu worker`: nightly).
        self.full_resolve_every = full_resolve_every
        self._last_full = time.monotonic()

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
        self.resolve_full_if_due()
        self.handle_events()
        self.seal_audit()
        if result and result.taken and self.on_batch:
            self.on_batch(result)
        return result

    def handle_events(self) -> dict[str, int]:
        """Run every handler over the events written since its position (at least once each)."""
        return run_handlers(self.app.store, self.handlers, clock=self.app.clock)

    def seal_audit(self, every: float = SEAL_EVERY_SECONDS) -> int:
        """Chain the audit rows written since the last seal (siyu.audit.chain), every `every` s."""
        if time.monotonic() - self._last_seal < every:
            return 0
        self._last_seal = time.monotonic()
        with self.app.store.begin(Actor.system("audit-seal")) as uow:
            return seal(uow.session)

    def resolve_full_if_due(self) -> bool:
        if self.full_resolve_every is None or time.monotonic() - self._last_full < self.full_resolve_every:
            return False
        try:
            if not resolve_if_free(self.app, full=True):
                return False
        except NothingToResolveError:
            pass  # no customers yet: nothing to compact either
        self._last_full = time.monotonic()
        return True

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
            if not result.taken:
                break
        while self._identity_dirty and not resolve_if_free(self.app):
            time.sleep(0.1)  # another loader holds the lock
        self._identity_dirty = False
        self.handle_events()
        return total

    def run(self, stop: threading.Event, poll: float = 0.2) -> None:
        while not stop.is_set():
            try:
                result = self.tick()
            except Exception as error:  # keep serving: the batch stays pending and is retried
                # by type only: an engine's message can quote the row it failed on (personal data)
                log.error("loader batch failed (%s); retrying", type(error).__name__)
                stop.wait(5.0)
                continue
            if not result or result.taken < self.batch_messages:
                stop.wait(poll)
