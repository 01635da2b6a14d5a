"""A kill -9 at any moment of an import leaves the whole file or nothing, and a re-run completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.ingest.views import latest

ROWS = 150_000


def _orders(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    f = path / "orders.csv"
    with f.open("w") as out:
        out.write("brand,source,order_id,source_customer_id,status,paid_at,amount_fen\n")
        out.writelines(f"demo,pos,o{i},c{i % 5000},completed,2024-06-01 10:00:00,{100 + i}\n" for i in range(ROWS))
    return f


def _import(home: Path, f: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SIYU_HOME": str(home)}
    env.pop("SIYU_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "siyu", "import", str(f), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_kill_9_mid_import_never_half_applies(tmp_path: Path) -> None:
    f = _orders(tmp_path / "data")
    home = tmp_path / "home"
    # Time one complete run to spread the kills over the whole import.
    started = time.monotonic()
    assert _import(tmp_path / "timing", f).wait(timeout=300) == 0
    duration = time.monotonic() - started

    outcomes = set()
    for fraction in (0.2, 0.45, 0.6, 0.75, 0.85, 0.95):
        proc = _import(home, f)
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        app = bootstrap(Settings(home=home))
        current = latest(app.engine, "orders")
        n = 0 if current is None else current.count().execute()
        assert n in (0, ROWS), f"half-applied import: {n} rows after kill at {fraction:.0%}"
        outcomes.add(n)
        app.store.engine.dispose()

    assert _import(home, f).wait(timeout=300) == 0
    app = bootstrap(Settings(home=home))
    current = latest(app.engine, "orders")
    assert current.count().execute() == ROWS
    assert current.order_id.nunique().execute() == ROWS
    assert current.amount_fen.sum().execute() == sum(100 + i for i in range(ROWS))
