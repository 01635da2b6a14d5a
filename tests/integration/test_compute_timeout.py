"""The per-request time limit on a real DuckDB engine (siyu.engine.timeout): a running statement is
interrupted, so is one that starts after time ran out, Python-side steps stop at `check_time`, and
the engine serves the next request normally."""

from __future__ import annotations

import time

import pytest

from siyu.bootstrap import App
from siyu.engine.timeout import ComputeTimeoutError, check_time, time_limit

ENDLESS = "SELECT count(*) FROM range(1000000000000) a WHERE a.range % 7 = 3"  # hours of work


def test_a_running_statement_is_interrupted(sqlite_app: App) -> None:
    engine = sqlite_app.engine
    started = time.monotonic()
    with pytest.raises(ComputeTimeoutError) as info, time_limit(engine, 0.3):
        engine.con.con.sql(ENDLESS).fetchall()
    assert time.monotonic() - started < 5
    assert info.value.code == "compute_timeout" and info.value.retry_after == 1
    assert "SIYU_API_AUDIENCE_TIMEOUT" in info.value.message
    assert engine.con.con.sql("SELECT 42").fetchall() == [(42,)]  # the engine is usable again


def test_a_statement_started_after_the_deadline_is_interrupted(sqlite_app: App) -> None:
    # Time runs out while Python builds the query (an interrupt then finds nothing to stop): the
    # interrupts repeat until the block ends, so the statement that follows is stopped too.
    engine = sqlite_app.engine
    with pytest.raises(ComputeTimeoutError), time_limit(engine, 0.1):
        time.sleep(0.3)
        engine.con.con.sql(ENDLESS).fetchall()
    assert engine.con.con.sql("SELECT 1").fetchall() == [(1,)]


def test_check_time_stops_python_work_after_the_deadline(sqlite_app: App) -> None:
    check_time()  # outside a limit: nothing to check
    with pytest.raises(ComputeTimeoutError), time_limit(sqlite_app.engine, 0.05):
        check_time()  # in time
        time.sleep(0.1)
        check_time()
    check_time()  # the limit ended with its block


def test_work_in_time_is_untouched_and_leaves_no_interrupt_behind(sqlite_app: App) -> None:
    engine = sqlite_app.engine
    for _ in range(3):
        with time_limit(engine, 0.5):
            assert engine.con.con.sql("SELECT sum(range) FROM range(1000)").fetchall() == [(499500,)]
        time.sleep(0.6)  # past the limit of the block that ended: nothing may fire now
        assert engine.con.con.sql("SELECT count(*) FROM range(3000000)").fetchall() == [(3000000,)]
    with time_limit(engine, 0), time_limit(engine, None):  # no limit
        assert engine.con.con.sql("SELECT 1").fetchall() == [(1,)]
