"""A fresh PostgreSQL database on the test server, dropped afterwards (fixtures of any scope)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("SIYU_TEST_POSTGRES_URL")


@contextmanager
def postgres_database() -> Iterator[str]:
    if not PG_URL:
        # Not a skip: a PostgreSQL test that did not run must not look like a pass.
        pytest.fail(
            "SIYU_TEST_POSTGRES_URL is not set: run `bash scripts/test.sh` (starts PostgreSQL), "
            "or deselect these tests with -m 'not postgres'"
        )
    name = f"siyu_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
