"""Named exclusive locks (siyu.store.locks): one holder at a time, across processes, and a killed
holder's lock is free again (PostgreSQL advisory lock / SQLite-side file lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from siyu.store.db import open_store
from siyu.store.locks import exclusive

HOLDER = """
import sys, time
from pathlib import Path
from siyu.store.db import open_store
from siyu.store.locks import exclusive
store = open_store(sys.argv[1])
with exclusive(store.engine, Path(sys.argv[2]), "loader") as mine:
    assert mine
    print("held", flush=True)
    time.sleep(600)
"""


def test_one_holder_at_a_time_and_a_killed_holder_frees_it(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    with exclusive(store.engine, tmp_path, "loader") as first:
        with exclusive(store.engine, tmp_path, "loader") as second:
            assert (first, second) == (True, False)
        with exclusive(store.engine, tmp_path, "other") as unrelated:
            assert unrelated  # locks are per name
    with exclusive(store.engine, tmp_path, "loader") as again:
        assert again  # released on exit

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", HOLDER, store_url, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with exclusive(store.engine, tmp_path, "loader") as while_held:
            assert not while_held  # another process holds it
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 30
    while True:  # the server notices the dead connection (PostgreSQL) / the OS closes the file (SQLite)
        with exclusive(store.engine, tmp_path, "loader") as after_kill:
            if after_kill:
                break
        assert time.monotonic() < deadline, "a killed holder's lock was never released"
        time.sleep(0.1)
    store.engine.dispose()
