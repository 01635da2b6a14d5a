"""Put the console on the API application: its pages, its static files (installed from the npm
registry by scripts/install.sh, see docs/console.md) and its error pages."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from siyu.console import auth, web
from siyu.console.cache import PageCache
from siyu.console.pages import ROUTERS

STATIC = web.HERE / "static"


def mount(api: FastAPI) -> None:
    api.state.console_cache = PageCache()
    api.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    api.include_router(auth.router)
    for router in ROUTERS:
        api.include_router(router)
    web.install(api)
