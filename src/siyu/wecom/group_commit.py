"""Group commit: items submitted while a commit is in flight are written together in the next
transaction, so one fsync serves many callers (the callback path's hot spot). Each caller's future
resolves with its item's result only after the transaction holding it committed, or fails with it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlalchemy import Connection

from siyu.store.db import Store

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, store: Store, write: Callable[[Connection, list[T]], list[R]], name: str) -> None:
        self.store = store
        self.write = write
        self.name = name
        self._queue: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, item: T) -> Future[R]:
        done: Future[R] = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._queue.put((item, done))
        return done

    def _run(self) -> None:
        while True:
            waiting = [self._queue.get()]
            while True:
                try:
                    waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.store.engine.begin() as connection:
                    results = self.write(connection, [item for item, _ in waiting])
            except Exception as exc:  # nothing committed: every caller of the group fails
                for _, done in waiting:
                    done.set_exception(exc)
            else:
                for (_, done), result in zip(waiting, results, strict=True):
                    done.set_result(result)
