"""API tests run over real HTTP: uvicorn on a loopback port, httpx as the client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from fixtures.audience_brand import write_brand
from fixtures.audience_ops import define_tag
from siyu.api.app import create_app
from siyu.api.keys import do_create_key, parse_scopes
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: App, run_loader: bool = False) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields the base URL."""
    with serving(create_app(app, run_loader=run_loader)) as url:
        yield url


@contextmanager
def serving(api: FastAPI) -> Iterator[str]:
    """Serve an application built by `create_app` (to reach its state or look at its routes)."""
    config = uvicorn.Config(api, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def base_url(app: App) -> Iterator[str]:
    with running(app) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        yield c


KeyMaker = Callable[..., str]


def new_key(app: App, brand: str, scopes: str, source: str | None = None, rate_limit: int | None = None) -> str:
    with app.store.begin(Actor.system("tests")) as uow:
        secret, _ = do_create_key(uow, brand, parse_scopes([scopes]), source, None, rate_limit)
    return secret


@pytest.fixture
def make_key(app: App) -> KeyMaker:
    def make(
        brand: str = "demo", scopes: str = "ingest", source: str | None = None, rate_limit: int | None = None
    ) -> str:
        return new_key(app, brand, scopes, source, rate_limit)

    return make


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def make_key_sqlite(sqlite_app: App) -> KeyMaker:
    def make(brand: str = "demo", scopes: str = "ingest", source: str | None = None) -> str:
        return new_key(sqlite_app, brand, scopes, source)

    return make


@pytest.fixture(scope="module")
def au_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The hand-made audience brand `au` (tests/fixtures/audience_brand.py) loaded and resolved once per
    module, on SQLite, with an enum, a number and a flag tag (for tests that only read it)."""
    folder = tmp_path_factory.mktemp("au")
    app = bootstrap(Settings(home=folder / "home", database_url=f"sqlite:///{folder / 'siyu.db'}"))
    import_path(app, write_brand(folder / "au"))
    run_resolve(app)
    define_tag(app, "au", "band", kind="manual", values=["high", "low"])
    define_tag(app, "au", "score", kind="manual", value_type="number")
    define_tag(app, "au", "vip", kind="manual", value_type="flag")
    yield app
    app.store.engine.dispose()
