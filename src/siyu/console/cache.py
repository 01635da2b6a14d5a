"""A small in-process cache of computed page data (the overview's FAST+ report of a brand and
period): a page answers from it while the stored results it was built from are unchanged."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class PageCache:
    def __init__(self, size: int = 64, ttl: float = 300.0) -> None:
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.size, self.ttl = size, ttl

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self._items.move_to_end(key)
                return hit[1]
        value = compute()  # outside the lock: two first requests may both compute, neither blocks reads
        with self._lock:
            self._items[key] = (now, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value
