"""kill -9 of the server or the loader at any moment loses nothing and duplicates nothing.

`siyu serve --no-loader` and `siyu worker` run as real processes on one workspace. A client posts
a known set of events (canonical rows and Segment `track` batches, after canonical customers and
Segment `identify` traits) and, like an SDK, retries every request until it gets a 2xx, and also
re-sends batches already acknowledged. Meanwhile the server is SIGKILLed at random moments spread
over the posting and restarted on the same port, and the worker is SIGKILLed at random moments,
every other time soon after a batch started (while it holds the loader lock), and restarted. At
the end `siyu worker --once` drains the inbox and the lake must hold every event exactly once.

Only the timing is random; the assertions are exact.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.conftest import bearer, free_port
from fixtures.processes import Proc, siyu_cmd, wait_healthy
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.clock import utc_now
from siyu.identity.service import MAP_TABLE
from siyu.ingest import inbox
from siyu.ingest import loader as loader_module
from siyu.ingest.loader import Loader, load_batch
from siyu.ingest.schema import ENTITIES
from siyu.ingest.views import latest
from siyu.privacy.crypto import Keyring
from siyu.privacy.lake_columns import open_rows
from siyu.store.models import InboxMessage

CUSTOMERS = 20
EVENTS = 3_000  # half canonical rows, half Segment track messages
PER_REQUEST = 100
SERVER_KILLS = 3
CRASH_PII_KEY = "crash-test-pii-key"
CRASH_RING = Keyring.single(CRASH_PII_KEY)  # opens what the servers sealed in the lake
WORKER_KILLS = 4
DEADLINE = 240.0  # seconds: a guard against hanging, far above the expected run time


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crash_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_database"))


def _holds_lock(pid: int, inode: int) -> bool:
    """Whether `pid` holds a flock on the file with `inode` (the loader lock): it is mid-batch."""
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 fd:01:6789 0 EOF" (a blocked waiter has "->" after the number)
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[4] == str(pid) and parts[5].endswith(f":{inode}"):
            return True
    return False


@dataclass
class Request:
    path: str  # /api/v1/ingest/{entity} (Bearer) or /v1/batch (Segment: the key as Basic user name)
    body: Any
    event_ids: list[str]


@dataclass
class Client:
    """Sends every request until acknowledged (a 2xx, no rejected row), retrying like an SDK."""

    url: str
    key: str
    setup: list[Request]  # customers and identify: sent first
    batches: list[Request]  # the events
    acknowledged: set[str] = field(default_factory=set)
    progress: int = 0  # batches acknowledged
    done: bool = False  # every batch acknowledged
    failures: int = 0
    duplicates_sent: int = 0
    errors: list[str] = field(default_factory=list)

    def send(self, http: httpx.Client, request: Request, deadline: float) -> None:
        segment = request.path.startswith("/v1/")
        auth = httpx.BasicAuth(self.key, "") if segment else None
        headers = {} if segment else bearer(self.key)
        while time.monotonic() < deadline:
            try:
                r = http.post(self.url + request.path, json=request.body, headers=headers, auth=auth)
            except httpx.HTTPError:
                self.failures += 1
                time.sleep(0.05)
                continue
            if r.status_code // 100 != 2:
                self.failures += 1
                time.sleep(0.05)
                continue
            if segment:
                ok = r.json() == {"success": True}
            else:
                ok = {row["outcome"] for row in r.json()["rows"]} <= {"accepted", "updated", "unchanged"}
            if not ok:
                self.errors.append(f"{request.path}: {r.text[:500]}")
            self.acknowledged.update(request.event_ids)
            return
        self.errors.append(f"{request.path}: never acknowledged before the deadline")

    def run(self, chaos_done: threading.Event, deadline: float) -> None:
        rng = random.Random()
        with httpx.Client(timeout=10) as http:
            for request in self.setup:
                self.send(http, request, deadline)
            for i, request in enumerate(self.batches):
                self.send(http, request, deadline)
                self.progress = i + 1
                if i % 3 == 2:  # an SDK that lost an answer sends the same batch again
                    self.send(http, self.batches[rng.randrange(i + 1)], deadline)
                    self.duplicates_sent += 1
            self.done = True
            while not chaos_done.is_set() and time.monotonic() < deadline:
                self.send(http, rng.choice(self.batches), deadline)
                self.duplicates_sent += 1


def _workload() -> tuple[list[Request], list[Request]]:
    """Canonical customers, Segment identify (traits merged into them), then alternating requests of
    canonical events and Segment `track` batches: EVENTS events in all, PER_REQUEST a request."""
    customers = [{"source_customer_id": f"c{i}", "phone": f"1380000{i:04d}"} for i in range(CUSTOMERS)]
    identify = [
        {"type": "identify", "messageId": f"i{i}", "userId": f"c{i}", "traits": {"name": f"Name {i}", "city": "杭州"}}
        for i in range(CUSTOMERS)
    ]
    setup = [Request("/api/v1/ingest/customers", customers, []), Request("/v1/batch", {"batch": identify}, [])]
    batches = []
    for start in range(0, EVENTS, PER_REQUEST):
        numbers = range(start, min(start + PER_REQUEST, EVENTS))
        if start // PER_REQUEST % 2 == 0:
            rows = [
                {"event_id": f"e{i:05d}", "type": "view_item", "source_customer_id": f"c{i % CUSTOMERS}",
                 "occurred_at": f"2026-06-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}+08:00",
                 "properties": {"sku": f"sku-{i % 37}", "n": i}}
                for i in numbers
            ]  # fmt: skip
            batches.append(Request("/api/v1/ingest/events", rows, [r["event_id"] for r in rows]))
        else:
            tracks = [
                {"type": "track", "messageId": f"s{i:05d}", "userId": f"c{i % CUSTOMERS}", "event": "Product Viewed",
                 "timestamp": f"2026-06-02T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                 "properties": {"product_id": f"sku-{i % 37}", "price": 19.9, "n": i}}
                for i in numbers
            ]  # fmt: skip
            batches.append(Request("/v1/batch", {"batch": tracks}, [t["messageId"] for t in tracks]))
    return setup, batches


def _wait_progress(client: Client, fraction: float, deadline: float) -> None:
    """Until the client has had `fraction` of its event batches acknowledged (or is done)."""
    while client.progress < fraction * len(client.batches) and not client.done and time.monotonic() < deadline:
        time.sleep(0.01)


def _chaos_server(client: Client, server: Proc, url: str, deadline: float, log: list[str]) -> None:
    """Kill the server at random moments spread over the posting (requests are in flight)."""
    rng = random.Random()
    for n in range(SERVER_KILLS):
        _wait_progress(client, (n + 0.5) / SERVER_KILLS, deadline)
        time.sleep(rng.uniform(0.0, 0.5))
        server.kill()
        log.append("server")
        time.sleep(rng.uniform(0.0, 0.3))
        server.start()
        wait_healthy(url, server, deadline)


LOADER_LOCK_HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND objid::text::bigint = (hashtext('siyu:loader')::bigint & 4294967295)"
)


def _loader_lock_held(store_url: str, lock: Path, pid: int) -> bool:
    """Whether the worker holds the loader lock (siyu.store.locks): on PostgreSQL an advisory lock
    (the server runs with --no-loader, so only the worker can hold one), else a flock on the file."""
    if store_url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as c:
                return bool(c.execute(text(LOADER_LOCK_HELD)).scalar_one())
        finally:
            engine.dispose()
    return lock.exists() and _holds_lock(pid, lock.stat().st_ino)


def _chaos_worker(client: Client, worker: Proc, store_url: str, lock: Path, deadline: float, log: list[str]) -> None:
    """Kill the worker at random moments, every other time soon after a batch started (lock held)."""
    rng = random.Random()
    for n in range(WORKER_KILLS):
        _wait_progress(client, (n + 0.5) / WORKER_KILLS, deadline)
        if n % 2 == 0:
            waited = time.monotonic()
            while time.monotonic() - waited < 15 and time.monotonic() < deadline:
                if _loader_lock_held(store_url, lock, worker.pid):
                    time.sleep(rng.uniform(0.0, 0.3))
                    worker.kill()
                    log.append("worker mid-batch")
                    break
                time.sleep(0.002)
        if worker.alive():
            time.sleep(rng.uniform(0.0, 1.0))
            worker.kill()
            log.append("worker")
        worker.start()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


@pytest.mark.slow
def test_kill_9_loses_and_duplicates_nothing(tmp_path: Path, crash_store_url: str, procs: list[Proc]) -> None:
    began = time.monotonic()
    deadline = began + DEADLINE
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env |= {
        "SIYU_HOME": str(home),
        "SIYU_DATABASE_URL": crash_store_url,
        "SIYU_LOADER_MAX_AGE": "0.2",
        "SIYU_LOADER_BATCH_MESSAGES": "200",
        "SIYU_LOADER_RESOLVE_EVERY": "0.5",
        "SIYU_API_RATE_LIMIT": "100000",
        "SIYU_PII_KEY": CRASH_PII_KEY,  # servers refuse the development key
    }
    created = subprocess.run(
        siyu_cmd("keys", "create", "--brand", "demo", "--scope", "ingest", "--source", "app", "--json"),
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = json.loads(created.stdout)["key"]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = siyu_cmd("serve", "--port", str(port), "--no-loader", "--log-level", "warning")
    server = Proc(serve, env, tmp_path, tmp_path / "server.log")
    worker = Proc(siyu_cmd("worker"), env, tmp_path, tmp_path / "worker.log")
    procs += [server, worker]
    server.start()
    worker.start()
    setup, batches = _workload()
    client = Client(url, key, setup, batches)
    wait_healthy(url, server, deadline)
    up = time.monotonic()

    kills: list[str] = []
    chaos_done = threading.Event()
    chaos = [
        threading.Thread(target=_chaos_server, args=(client, server, url, deadline, kills)),
        threading.Thread(
            target=_chaos_worker, args=(client, worker, crash_store_url, home / "loader.lock", deadline, kills)
        ),
    ]
    posting = threading.Thread(target=client.run, args=(chaos_done, deadline))
    for t in [posting, *chaos]:
        t.start()
    for t in chaos:
        t.join(DEADLINE)
    chaos_done.set()
    posting.join(DEADLINE)
    assert not client.errors, client.errors
    assert kills.count("server") == SERVER_KILLS
    assert sum(k.startswith("worker") for k in kills) == WORKER_KILLS
    posted = time.monotonic()

    worker.kill()  # mid-whatever, one last time
    server.kill()
    drain_env = env | {"SIYU_LOADER_BATCH_MESSAGES": "20000"}  # one batch: the drain need not be chaotic
    subprocess.run(siyu_cmd("worker", "--once", "--json"), env=drain_env, cwd=tmp_path, capture_output=True, check=True)
    drained = time.monotonic()

    app = bootstrap(Settings(home=home, database_url=crash_store_url))
    try:
        expected = {event_id for request in batches for event_id in request.event_ids}
        assert len(expected) == EVENTS
        assert client.acknowledged == expected
        raw = app.engine.table("events")
        assert raw is not None
        event_ids = app.engine.to_arrow(raw.select("event_id"))["event_id"].to_pylist()
        assert len(event_ids) == len(set(event_ids)), "an event was appended twice"
        assert set(event_ids) == expected

        raw_customers = app.engine.table("customers")
        assert raw_customers is not None
        versions = app.engine.to_arrow(raw_customers.select("source_customer_id", "_row_hash")).to_pylist()
        assert len({(v["source_customer_id"], v["_row_hash"]) for v in versions}) == len(versions)
        current = latest(app.engine, "customers")
        assert current is not None
        people = open_rows(CRASH_RING, "customers", app.engine.to_arrow(current).to_pylist())  # the servers' key
        assert sorted((p["source_customer_id"], p["phone"], p["name"], p["city"]) for p in people) == sorted(
            (f"c{i}", f"1380000{i:04d}", f"Name {i}", "杭州") for i in range(CUSTOMERS)
        )

        with app.store.unit_of_work() as s:
            pending = s.scalar(select(func.count()).select_from(InboxMessage).where(InboxMessage.loaded_at.is_(None)))
            kinds = dict(s.execute(select(InboxMessage.kind, func.count()).group_by(InboxMessage.kind)).all())
        assert pending == 0
        # Retries and re-sent batches recorded nothing twice.
        assert kinds == {"customers": CUSTOMERS, "events": EVENTS // 2, "segment": CUSTOMERS + EVENTS // 2}
        # One-ID saw every source customer, even if a kill fell between a batch and its resolve.
        identity_map = app.engine.table(MAP_TABLE)
        assert identity_map is not None
        assert app.engine.to_arrow(identity_map).num_rows == CUSTOMERS
    finally:
        app.store.engine.dispose()
    print(
        f"\n{crash_store_url.split(':')[0]}: {time.monotonic() - began:.1f} s (start {up - began:.1f}, "
        f"posting under kills {posted - up:.1f}, drain {drained - posted:.1f}), kills {kills}, "
        f"{client.failures} failed requests retried, {client.duplicates_sent} batches re-sent"
    )


def test_one_id_runs_after_a_kill_between_a_batch_and_its_resolve(app: App) -> None:
    """The batch is in the lake, the process dies before One-ID: the next loader must resolve it."""
    row = {"brand": "demo", "source": "crm", "source_customer_id": "u1", "phone": "13800000001"}
    inbox.record(app.store, "demo", "crm", "customers", [inbox.Message("m1", json.dumps(row))], utc_now())
    result = load_batch(app, 100)  # what the killed loader did: loaded, not resolved
    assert result is not None and result.messages == 1
    assert app.engine.table(MAP_TABLE) is None
    assert Loader(app).drain() == 0  # `siyu worker --once` after the restart: nothing pending…
    identity_map = app.engine.table(MAP_TABLE)
    assert identity_map is not None  # …but One-ID is brought up to date
    assert app.engine.to_arrow(identity_map).num_rows == 1


class Killed(BaseException):
    """Stands for SIGKILL at a chosen step: nothing after it runs, open transactions roll back."""


def _record_mixed(app: App) -> None:
    """A canonical customer, then Segment identify + track for them, a canonical event, a Segment newcomer."""
    now = utc_now()
    rows = [{"brand": "demo", "source": "app", "source_customer_id": "c1", "phone": "13800000001"}]
    inbox.record(app.store, "demo", "app", "customers", [inbox.Message("r1", json.dumps(rows[0]))], now)
    segment = [
        {"type": "identify", "messageId": "i1", "userId": "c1", "traits": {"name": "Alice", "city": "杭州"}},
        {"type": "track", "messageId": "s1", "userId": "c1", "anonymousId": "a1", "event": "Product Viewed",
         "timestamp": "2026-06-01T10:00:00Z", "properties": {"product_id": "p1"}},
    ]  # fmt: skip
    inbox.record(
        app.store, "demo", "app", "segment", [inbox.Message(m["messageId"], json.dumps(m)) for m in segment], now
    )
    event = {"brand": "demo", "source": "app", "event_id": "e1", "type": "visit", "source_customer_id": "c1",
             "occurred_at": "2026-06-01T09:00:00+08:00"}  # fmt: skip
    inbox.record(app.store, "demo", "app", "events", [inbox.Message("r2", json.dumps(event))], now)
    newcomer = {
        "type": "track",
        "messageId": "s2",
        "userId": "c2",
        "event": "Signed In",
        "timestamp": "2026-06-01T11:00:00Z",
    }
    inbox.record(app.store, "demo", "app", "segment", [inbox.Message("s2", json.dumps(newcomer))], now)


def _lake_state(app: App) -> dict[str, list[tuple[Any, ...]]]:
    """Per entity: the latest rows (canonical columns); asserts no version was appended twice."""
    state = {}
    for entity in ("customers", "identities", "events"):
        raw = app.engine.table(entity)
        if raw is None:
            continue
        key = list(ENTITIES[entity].key)
        versions = app.engine.to_arrow(raw.select(*key, "_row_hash")).to_pylist()
        assert len({tuple(v.values()) for v in versions}) == len(versions), f"{entity}: a version appended twice"
        current = latest(app.engine, entity)
        assert current is not None
        rows = open_rows(app.settings.pii_keyring, entity, app.engine.to_arrow(current).to_pylist())  # PII opened
        state[entity] = sorted(tuple(str(r[c]) for c in ENTITIES[entity].column_names) for r in rows)
    return state


def test_identify_merges_into_a_customer_posted_before_it_in_the_same_batch(app: App) -> None:
    _record_mixed(app)
    assert Loader(app).drain() == 5
    people = {r[2]: r for r in _lake_state(app)["customers"]}
    names = ENTITIES["customers"].column_names
    c1 = dict(zip(names, people["c1"], strict=True))
    assert (c1["phone"], c1["name"], c1["city"]) == ("13800000001", "Alice", "杭州")


@pytest.mark.slow
def test_a_kill_at_any_step_of_a_batch_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lake commit and inbox stamp of a batch is a step; kill before each in turn, restart, compare."""

    def workspace(name: str) -> App:
        return bootstrap(Settings(home=tmp_path / name, database_url=f"sqlite:///{tmp_path / name / 'siyu.db'}"))

    reference = workspace("reference")
    _record_mixed(reference)
    steps: list[str] = []
    real_import, real_mark = loader_module.import_file, inbox.mark_loaded
    kill_at: list[int] = [-1]

    def step(name: str) -> None:
        if len(steps) == kill_at[0]:
            raise Killed(name)
        steps.append(name)

    def import_file(app: App, raw: Any, brand: str | None) -> Any:
        step(f"import {raw.path}")
        return real_import(app, raw, brand)

    def mark_loaded(session: Any, ids: Any, batch: str, loaded_at: Any) -> None:
        step("stamp")
        real_mark(session, ids, batch, loaded_at)

    monkeypatch.setattr(loader_module, "import_file", import_file)
    monkeypatch.setattr(inbox, "mark_loaded", mark_loaded)
    assert load_batch(reference, 100) is not None
    expected = _lake_state(reference)
    total = len(steps)
    assert total >= 5 and steps.count("stamp") == 2

    for k in range(total):
        app = workspace(f"kill{k}")
        _record_mixed(app)
        steps.clear()
        kill_at[0] = k
        with pytest.raises(Killed):
            load_batch(app, 100)
        kill_at[0] = -1
        Loader(app).drain()  # the restarted worker
        assert _lake_state(app) == expected, f"killed before step {k}"
        with app.store.unit_of_work() as s:
            assert s.scalar(select(func.count()).select_from(InboxMessage).where(InboxMessage.loaded_at.is_(None))) == 0
