"""Shared fixtures: a fresh workspace per test, with the store on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings

PG_URL = os.environ.get("SIYU_TEST_POSTGRES_URL")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def app(home: Path, store_url: str) -> Iterator[App]:
    application = bootstrap(Settings(home=home, database_url=store_url))
    yield application
    application.store.engine.dispose()


@pytest.fixture
def sqlite_app(home: Path) -> App:
    """For tests about the lake and compute only: one store backend is enough."""
    return bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}"))
