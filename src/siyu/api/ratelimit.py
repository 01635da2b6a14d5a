"""Per-key rate limits shared by every server process through the store.

One token bucket per API key lives in the store (`rate_buckets`): capacity `rate × burst_seconds`,
refilled at `rate` tokens a second. A process does not ask the store on every request: it takes a
*block* of tokens at once (1/20 of a second's worth, at least one) and spends them locally, for at
most one second. So N processes together never admit more than the bucket allows; a block left
unspent when its second ends is lost (the error is on the safe side, at most one block a process).

Taking a block is one conditional UPDATE (the refill and the spend in one statement), run in a
worker thread so a busy store never stalls the event loop. The time is each process's wall clock
(`time.time()`), so the servers' clocks must agree (NTP), which they must anyway for the inbox.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import Float, String, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

BLOCKS_PER_SECOND = 20
LOCAL_LIFETIME = 1.0  # seconds a taken block may be spent locally


class RateBucket(Base):
    __tablename__ = "rate_buckets"
    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)  # tokens left at `at` (not money: a float is fine)
    at: Mapped[float] = mapped_column(Float)  # epoch seconds of the last refill


# refill, cap and spend in one statement; the row changes only when the block fits
_REFILLED = "CASE WHEN tokens + (:now - at) * :rate > :cap THEN :cap ELSE tokens + (:now - at) * :rate END"
_TAKE = text(f"UPDATE rate_buckets SET tokens = {_REFILLED} - :n, at = :now WHERE key_id = :key AND {_REFILLED} >= :n")
_CREATE = text(
    "INSERT INTO rate_buckets (key_id, tokens, at) VALUES (:key, :cap, :now) ON CONFLICT (key_id) DO NOTHING"
)
_READ = text(f"SELECT {_REFILLED} FROM rate_buckets WHERE key_id = :key")


class RateLimiter:
    def __init__(
        self, store: Engine, default_per_second: int, burst_seconds: float = 2.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.clock = clock
        self.default = default_per_second
        self.burst_seconds = burst_seconds
        self._local: dict[str, tuple[int, float]] = {}  # key id → (tokens in hand, monotonic time taken)
        self._lock = threading.Lock()

    def take_local(self, key_id: str) -> bool:
        """Spend a token already in hand (no I/O); False when the store must be asked."""
        now = time.monotonic()
        with self._lock:
            held, taken = self._local.get(key_id, (0, 0.0))
            if held > 0 and now - taken < LOCAL_LIFETIME:
                self._local[key_id] = (held - 1, taken)
                return True
        return False

    def take(self, key_id: str, per_second: int | None) -> float:
        """Spend one token; returns 0 if allowed, else the seconds to wait (for Retry-After).
        Blocking: asks the store when no token is in hand."""
        if self.take_local(key_id):
            return 0.0
        rate = float(per_second or self.default)
        cap = max(1.0, rate * self.burst_seconds)
        block = max(1, math.floor(rate / BLOCKS_PER_SECOND))
        params = {"key": key_id, "rate": rate, "cap": cap, "now": self.clock()}
        with self.store.begin() as conn:
            conn.execute(_CREATE, params)
            for n in (block, 1) if block > 1 else (1,):
                if conn.execute(_TAKE, {**params, "n": n}).rowcount:
                    with self._lock:
                        self._local[key_id] = (n - 1, time.monotonic())
                    return 0.0
            left = conn.execute(_READ, params).scalar_one()
        return max(0.001, (1.0 - float(left)) / rate)


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))
