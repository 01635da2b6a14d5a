"""The one composition root: settings -> store, lake, engine. The CLI, the API and tests use it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from siyu.config import Settings
from siyu.engine.connect import Engine, connect
from siyu.lake.tables import Lake
from siyu.store.db import Store, open_store


@dataclass
class App:
    settings: Settings
    store: Store
    lake: Lake
    engine: Engine


def _engine(settings: Settings, lake: Lake) -> Engine:
    return connect(
        settings.engine, lake, memory_limit=settings.engine_memory_limit, temp_directory=str(settings.home / "tmp")
    )


def bootstrap(settings: Settings | None = None) -> App:
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    lake = Lake(settings.lake_dir)
    return App(settings=settings, store=open_store(settings.store_url), lake=lake, engine=_engine(settings, lake))


def with_own_engine(app: App) -> App:
    """The same store and lake with a compute engine of its own: an engine connection serves one
    thread at a time, so the API's worker threads and the loader each take one."""
    return replace(app, engine=_engine(app.settings, app.lake))
