"""Per-key rate limits: a token bucket per API key in each server process.

With N server processes a key may reach N× its limit; the limit protects a process, and a shared
limiter (e.g. in PostgreSQL or Redis) is not worth a network round-trip on every ingest request.
"""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, default_per_second: int, burst_seconds: float = 2.0) -> None:
        self.default = default_per_second
        self.burst_seconds = burst_seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # key id → (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key_id: str, per_second: int | None) -> float:
        """Spend one token; returns 0 if allowed, else the seconds to wait (for Retry-After)."""
        rate = float(per_second or self.default)
        capacity = max(1.0, rate * self.burst_seconds)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))
