"""The interactive API docs render in a real browser (headless Chromium): Swagger UI at /docs and
ReDoc at /redoc read the OpenAPI 3.1 document FastAPI writes and list the routes, from local files."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from api.conftest import running
from browser import browser
from siyu.bootstrap import App

ROUTES = ["/api/v1/customers", "/api/v1/loyalty/{program}/members", "/v1/batch", "/api/v1/ingest/{entity}"]


def test_swagger_ui_lists_the_routes(sqlite_app: App, tmp_path: Path) -> None:
    with running(sqlite_app) as url:
        page = httpx.get(f"{url}/docs").text
        assert not re.search(r"(src|href)=\"https?://", page), "the docs page loads something from the network"
        dom = browser(["--dump-dom", f"{url}/docs"], tmp_path).stdout
    assert "Unable to render this definition" not in dom
    assert "swagger-ui" in dom and "siyu 私域 API" in dom
    paths = set(re.findall(r'data-path="([^"]+)"', dom))  # one per operation Swagger UI drew
    assert set(ROUTES) <= paths, sorted(paths)
    assert len(paths) >= 30


def test_redoc_lists_the_routes(sqlite_app: App, tmp_path: Path) -> None:
    with running(sqlite_app) as url:
        page = httpx.get(f"{url}/redoc").text
        assert not re.search(r"(src|href)=\"https?://", page)
        dom = browser(["--dump-dom", f"{url}/redoc"], tmp_path).stdout
    assert "siyu 私域 API" in dom
    for route in ROUTES:
        assert route in dom, route
