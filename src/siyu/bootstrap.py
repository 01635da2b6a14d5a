"""The one composition root: settings -> store, lake, engine, clock. The CLI, the API, workers and
tests use it; tests hand in fakes (a clock that moves, a store on another database) here rather than
patching modules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

from siyu.config import Settings
from siyu.core.clock import utc_now
from siyu.engine.connect import Engine, connect
from siyu.lake.tables import Lake
from siyu.store.db import Store, open_store


@dataclass
class App:
    settings: Settings
    store: Store
    lake: Lake
    engine: Engine
    clock: Callable[[], dt.datetime] = utc_now


def _engine(settings: Settings, lake: Lake) -> Engine:
    return connect(
        settings.engine,
        lake,
        memory_limit=settings.engine_memory_limit,
        temp_directory=str(settings.home / "tmp"),
        spark_master=settings.spark_master,
        spark_conf=settings.spark_conf,
    )


def bootstrap(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    lake: Lake | None = None,
    engine: Engine | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> App:
    """Wire the real adapters from `settings`; any port passed in is used instead."""
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    clock = clock or utc_now
    lake = lake or Lake(settings.lake_location, settings.lake_storage_options)
    store = store or open_store(settings.store_url, clock)
    return App(settings=settings, store=store, lake=lake, engine=engine or _engine(settings, lake), clock=clock)


def with_own_engine(app: App) -> App:
    """The same store and lake with a compute engine of its own: an engine connection serves one
    thread at a time, so the API's worker threads and the loader each take one."""
    return replace(app, engine=_engine(app.settings, app.lake))
