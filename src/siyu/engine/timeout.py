"""A time limit on the compute of one request (查询时限).

The engine's running statement is interrupted from a timer thread once time is up, and again every
`REPEAT` seconds until the block ends: an interrupt reaches only a statement already running, and
the work may be between two statements (building the next one in Python) when time runs out.
Python-side loops that build expressions call `check_time()` between steps, so they stop too. Either
way the block raises `ComputeTimeoutError`, and the engine is left usable for the next request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from siyu.core.errors import SiyuError
from siyu.engine.connect import Engine

REPEAT = 0.05  # seconds between interrupts once time is up
# (monotonic deadline, the limit in seconds) of the enclosing `time_limit`, if any.
_deadline: ContextVar[tuple[float, float] | None] = ContextVar("siyu_compute_deadline", default=None)


class ComputeTimeoutError(SiyuError):
    """The request's compute ran past its time limit and was stopped (HTTP 503 with Retry-After)."""

    code = "compute_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"stopped after the {seconds:g} s time limit (SIYU_API_AUDIENCE_TIMEOUT): narrow the rule, or "
            "save parts of it as rule tags, and retry (计算超时，已中止)"
        )
        self.retry_after = max(1, math.ceil(seconds))


def check_time() -> None:
    """Raise `ComputeTimeoutError` if the enclosing `time_limit` has run out (cheap: call it often)."""
    limit = _deadline.get()
    if limit is not None and time.monotonic() > limit[0]:
        raise ComputeTimeoutError(limit[1])


@contextmanager
def time_limit(engine: Engine, seconds: float | None) -> Iterator[None]:
    """Run the block with at most `seconds` of compute on `engine` (no limit if None or 0)."""
    if not seconds:
        yield
        return
    finished = threading.Event()
    fired = threading.Event()

    def stop() -> None:
        if finished.wait(seconds):
            return
        fired.set()
        while not finished.is_set():
            engine.interrupt()
            finished.wait(REPEAT)

    token = _deadline.set((time.monotonic() + seconds, seconds))
    timer = threading.Thread(target=stop, name="siyu-time-limit", daemon=True)
    timer.start()
    try:
        yield
    except ComputeTimeoutError:
        raise
    except Exception as exc:
        if fired.is_set():  # whatever the interrupted statement raised, the cause is the time limit
            raise ComputeTimeoutError(seconds) from exc
        raise
    finally:
        finished.set()
        timer.join()
        _deadline.reset(token)
