"""Shared fixtures: a fresh workspace per test, with the store on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgdb import postgres_database
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings

pytest_plugins = ["fixtures.log_guard"]  # no personal data or secrets in any log of the run


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    with postgres_database() as url:
        yield url


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
