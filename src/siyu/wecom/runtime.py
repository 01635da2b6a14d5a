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

from siyu.bootstrap import App, with_own_engine
from siyu.core.clock import utc_now
from siyu.wecom.callbacks import CallbackWriter, Received
from siyu.wecom.client import TokenCache, WeComClient
from siyu.wecom.process import process_batch
from siyu.wecom.settings import CorpSettings, load
from siyu.wecom.welcome import WelcomeJob, send_welcome

log = logging.getLogger("siyu.wecom")
SETTINGS_TTL_S = 10.0  # `siyu wecom configure` reaches running servers within this time
POLL_S = 1.0


class WecomRuntime:
    def __init__(self, app: App, welcome_threads: int = 8) -> None:
        self.app = app
        self.tokens = TokenCache()
        self.writer = CallbackWriter(app.store)
        self.welcomes = ThreadPoolExecutor(welcome_threads, thread_name_prefix="siyu-wecom-welcome")
        self.wake = threading.Event()
        self._corps: dict[str, tuple[CorpSettings, float]] = {}
        self._clients: dict[str, WeComClient] = {}
        self._lock = threading.Lock()

    def corp(self, brand: str) -> CorpSettings:
        found = self._corps.get(brand)
        if found is None or found[1] < time.monotonic():
            with self.app.store.unit_of_work() as session:
                settings = load(session, self.app.settings.pii_key, brand)
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

    def stored(self, received: Received, arrived_mono: float) -> None:
        """A callback is durable: start its welcome now, and wake the processing loop."""
        f = received.fields
        if f.get("WelcomeCode") and f.get("ChangeType") in ("add_external_contact", "add_half_external_contact"):
            job = WelcomeJob(
                brand=received.brand, welcome_code=str(f["WelcomeCode"]), staff_id=str(f.get("UserID", "")),
                external_userid=str(f.get("ExternalUserID", "")), state=str(f.get("State") or ""),
                arrived_at=received.received_at, arrived_mono=arrived_mono,
            )  # fmt: skip
            self.welcomes.submit(self._welcome, job)
        self.wake.set()

    def _welcome(self, job: WelcomeJob) -> None:
        try:
            send_welcome(self.app.store, self.client(job.brand), job, utc_now())
        except Exception:
            log.exception("welcome for %s failed", job.brand)

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
