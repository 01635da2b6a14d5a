"""The WeCom side of `siyu serve` / `siyu worker`: per-brand settings and API clients (one token
cache per process), the callback writer, the welcome threads, and the processing loop.

Welcome first: a stored add callback with a WelcomeCode goes straight to a welcome thread, before
(and independently of) the processing loop, which wakes on each stored callback and otherwise
polls, so callbacks stored by another process or before a crash are processed too.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from siyu.bootstrap import App, with_own_engine
from siyu.core.clock import utc_now
from siyu.wecom.callbacks import Received, callback_writer
from siyu.wecom.client import TokenCache, WeComClient
from siyu.wecom.group_commit import GroupCommit
from siyu.wecom.process import process_batch
from siyu.wecom.settings import CorpSettings, load
from siyu.wecom.welcome import WelcomeJob, deliver, lookup, write_outcomes

log = logging.getLogger("siyu.wecom")
SETTINGS_TTL_S = 10.0  # `siyu wecom configure` reaches running servers within this time
POLL_S = 1.0


class WecomRuntime:
    def __init__(self, app: App, welcome_threads: int = 32) -> None:
        self.app = app
        self.tokens = TokenCache()
        self.writer = callback_writer(app.store)
        self.outcomes: GroupCommit[tuple[str, dict[str, Any]], None] = GroupCommit(
            app.store, write_outcomes, "siyu-wecom-welcome-outcomes"
        )
        self._templates: dict[tuple[str, str], tuple[tuple[dict[str, Any] | None, dict[str, str]], float]] = {}
        # Threads, not a queue: a welcome waits on WeCom's answers, and a burst of adds must not queue
        # behind each other past the 20-second window.
        self.welcomes = ThreadPoolExecutor(welcome_threads, thread_name_prefix="siyu-wecom-welcome")
        self.wake = threading.Event()
        self._corps: dict[str, tuple[CorpSettings, float]] = {}
        self._clients: dict[str, WeComClient] = {}
        self._lock = threading.Lock()

    def corp(self, brand: str) -> CorpSettings:
        found = self._corps.get(brand)
        if found is None or found[1] < time.monotonic():
            with self.app.store.unit_of_work() as session:
                settings = load(session, self.app.settings.pii_keyring, brand)
            self._corps[brand] = (settings, time.monotonic() + SETTINGS_TTL_S)
            return settings
        return found[0]

    def cached_corp(self, brand: str) -> CorpSettings | None:
        found = self._corps.get(brand)
        return found[0] if found and found[1] >= time.monotonic() else None

    def client(self, brand: str) -> WeComClient:
        corp = self.corp(brand)
        with self._lock:
            client = self._clients.get(brand)
            if client is None or (client.corp_id, client._secret) != (corp.corp_id, corp.secret):
                client = WeComClient(self.app.settings.wecom_api_base, corp.corp_id, corp.secret, tokens=self.tokens)
                self._clients[brand] = client
            return client

    def template(self, brand: str, state: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The welcome of a channel code, cached like the settings (the welcome path reads no tables)."""
        found = self._templates.get((brand, state))
        if found is None or found[1] < time.monotonic():
            with self.app.store.unit_of_work() as session:
                value = lookup(session, brand, state)
            self._templates[(brand, state)] = (value, time.monotonic() + SETTINGS_TTL_S)
            return value
        return found[0]

    def stored(self, received: Received, arrived_mono: float, new: bool) -> None:
        """A callback is durable: start its welcome now (only the delivery that stored it, which
        also claimed the WelcomeCode), and wake the processing loop."""
        f = received.fields
        if new and received.welcome_code:
            job = WelcomeJob(
                brand=received.brand, welcome_code=str(f["WelcomeCode"]), staff_id=str(f.get("UserID", "")),
                external_userid=str(f.get("ExternalUserID", "")), state=str(f.get("State") or ""),
                arrived_at=received.received_at, arrived_mono=arrived_mono,
            )  # fmt: skip
            self.welcomes.submit(self._welcome, job)
        self.wake.set()

    def _welcome(self, job: WelcomeJob) -> None:
        try:
            content, variables = self.template(job.brand, job.state)
            values = deliver(self.client(job.brand), job, content, variables, utc_now())
        except Exception as exc:  # e.g. gettoken failed: record it, never retry (the code is single-use)
            log.exception("welcome for %s failed", job.brand)
            values = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:400]}
        self.outcomes.submit((job.welcome_code, values))

    def run(self, stop: threading.Event) -> None:
        """The processing loop (until `stop`): batches while there is work, then waits to be woken."""
        app = with_own_engine(self.app)
        limit = 200
        while not stop.is_set():
            try:
                done = process_batch(app, self.client, limit)
                limit = 200
            except Exception:
                log.exception("wecom callback processing failed; retrying one at a time")
                done, limit = 0, 1  # isolates a callback that fails on its own (it is given up after 5 attempts)
                stop.wait(POLL_S)
            if not done:
                self.wake.wait(POLL_S)
                self.wake.clear()

    def drain(self) -> int:
        """Process every pending callback now (`siyu worker --once`); returns how many."""
        app, total = with_own_engine(self.app), 0
        while done := process_batch(app, self.client):
            total += done
        return total

    def close(self) -> None:
        self.welcomes.shutdown(wait=True)
        for client in self._clients.values():
            client.close()
