"""Named exclusive locks for jobs that must run one at a time per workspace (the inbox loader and
One-ID write the same lake tables).

On PostgreSQL the lock is a session-level advisory lock held on a connection of its own: it works
across machines (several `siyu serve` / `siyu worker` hosts on one store), and the server releases it
when the holder's connection dies, so a killed process never leaves it taken. On SQLite — one
machine by nature — it is an exclusive file lock in the workspace, which the OS releases the same way.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine


@contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def _advisory_lock(engine: Engine, name: str) -> Iterator[bool]:
    with engine.connect() as conn:
        key = f"siyu:{name}"
        taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": key}).scalar_one())
        conn.commit()  # the lock is the session's, not the transaction's: end the read transaction
        try:
            yield taken
        finally:
            if taken:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
                conn.commit()


@contextmanager
def exclusive(engine: Engine, home: Path, name: str) -> Iterator[bool]:
    """Yields True when this process holds the lock `name`, False when another one does (no wait)."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name) as taken:
            yield taken
    else:
        with _file_lock(home / f"{name}.lock") as taken:
            yield taken
