"""The FastAPI application: routers, problem+json errors, telemetry, and the in-process loader.

Stateless over the store and lake: several `siyu serve` processes may run side by side; the
loader's workspace lock lets only one of them (or a `siyu worker`) load at a time.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema

import siyu
from siyu.api import errors
from siyu.api.deps import ApiState, EnginePool
from siyu.api.gzip import BodyLimitMiddleware
from siyu.api.headers import SecurityHeadersMiddleware
from siyu.api.keys import KeyVerifier
from siyu.api.ratelimit import RateLimiter
from siyu.api.routes import audiences, guides, ingest, journeys, loyalty, messaging, ops, privacy, read, segment, wecom
from siyu.api.telemetry import Telemetry, TelemetryMiddleware
from siyu.bootstrap import App, bootstrap, with_own_engine
from siyu.console.mount import mount as mount_console
from siyu.ingest.inbox import GroupCommitter
from siyu.ingest.loader import Loader
from siyu.wecom.runtime import WecomRuntime

DESCRIPTION = """\
siyu 私域 HTTP API.

* **Segment-compatible ingest** (`/v1/*`): point any Segment SDK at this server with a siyu write key.
* **Canonical ingest** (`/api/v1/ingest/{entity}`): the rows of the import files, row-by-row outcomes.
* **Read** (`/api/v1/customers`, `/api/v1/metrics/*`): customer 360 and FAST+, the same JSON as the CLI.
* **Loyalty** (`/api/v1/loyalty/*`): balances, points redemption, coupons and the points mall 会员中台.

Keys: `siyu keys create --brand B --scope ingest|read|loyalty|admin [--source S]`. Send `Authorization: Bearer <key>`
(or, Segment style, the key as the HTTP Basic user name). Errors are RFC 9457 `application/problem+json`.
"""


DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def create_app(app: App, *, run_loader: bool = True) -> FastAPI:
    settings = app.settings
    telemetry = Telemetry()
    state = ApiState(
        app=app,
        keys=KeyVerifier(app),
        limiter=RateLimiter(app.store.engine, settings.api_rate_limit),
        telemetry=telemetry,
        compute=EnginePool(app, settings.api_compute_engines, settings.api_engine_wait),
        audiences=EnginePool(app, settings.api_audience_engines, settings.api_engine_wait),
        inbox=GroupCommitter(app.store, settings.pii_sealing_ring),
    )
    wecom_runtime = WecomRuntime(app)  # callbacks, welcome messages (siyu.wecom)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if run_loader:
            loader = Loader(
                with_own_engine(app),
                batch_messages=settings.loader_batch_messages,
                max_age=settings.loader_max_age,
                resolve_every=settings.loader_resolve_every,
                on_batch=telemetry.observe_batch,
            )
            thread = threading.Thread(target=loader.run, args=(stop,), name="siyu-loader", daemon=True)
            thread.start()
            threading.Thread(target=wecom_runtime.run, args=(stop,), name="siyu-wecom", daemon=True).start()
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=60)
        wecom_runtime.close()

    api = FastAPI(
        title="siyu 私域 API",
        version=siyu.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from local files: the default loads Swagger UI from a CDN
        redoc_url=None,
    )
    # Swagger UI 5 and ReDoc 2 as installed by the fastapi-offline package: they read the OpenAPI 3.1
    # FastAPI writes (the older Swagger UI of swagger-ui-bundle 1.1 does not), and nothing loads from a CDN.
    api.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="siyu 私域 API — docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @api.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="siyu 私域 API — reference",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )

    api.state.siyu = state
    api.state.wecom = wecom_runtime
    errors.install(api)
    api.add_middleware(BodyLimitMiddleware)
    api.add_middleware(SecurityHeadersMiddleware)
    api.add_middleware(TelemetryMiddleware, telemetry=telemetry)  # the outermost: it logs every answer
    # wecom first: routes are matched in order, and WeCom callbacks are a hot path
    for module in (wecom, ops, segment, ingest, read, audiences, loyalty, journeys, messaging, guides, privacy):
        api.include_router(module.router)
    mount_console(api)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
        _, defs = models_json_schema(
            [(m, "validation") for m in segment.OPENAPI_MODELS.values()], ref_template="#/components/schemas/{model}"
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def from_environment() -> FastAPI:
    """The uvicorn factory of `siyu serve`: settings from the environment (`SIYU_*`)."""
    app = bootstrap()
    app.settings.require_own_pii_key()  # also when uvicorn is started by hand, not by `siyu serve`
    return create_app(app, run_loader=app.settings.api_loader)
