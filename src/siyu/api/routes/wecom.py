"""WeCom callbacks (企业微信回调): `GET /wecom/callback/{brand}` verifies the URL (echostr),
`POST /wecom/callback/{brand}` receives events. Authenticated by WeCom's signature, not an API key:
a bad signature is 403 and logged without the request's content."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from starlette.routing import Route

from siyu.api.errors import ApiError
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError
from siyu.wecom.callbacks import open_callback, verify_url
from siyu.wecom.crypto import CallbackCryptoError
from siyu.wecom.runtime import WecomRuntime
from siyu.wecom.settings import CorpSettings

router = APIRouter()
log = logging.getLogger("siyu.wecom.callback")


def _runtime(request: Request) -> WecomRuntime:
    runtime: WecomRuntime = request.app.state.wecom
    return runtime


async def _corp(runtime: WecomRuntime, brand: str) -> CorpSettings:
    corp = runtime.cached_corp(brand)
    if corp is None:
        try:
            corp = await run_in_threadpool(runtime.corp, brand)
        except NotFoundError as error:
            raise ApiError(404, "not_found", error.message) from None
    return corp


def _rejected(brand: str, request: Request, error: CallbackCryptoError) -> ApiError:
    # Who and why, never the body or the query (a forged request's content is not ours to keep).
    client = request.client.host if request.client else "?"
    log.warning("wecom callback rejected: brand=%s from=%s reason=%s", brand, client, error.message)
    return ApiError(403, "bad_signature", "WeCom callback signature or encryption invalid (签名校验失败)")


async def verify(request: Request) -> PlainTextResponse:
    """URL verification (验证 URL 有效性): answer the decrypted echostr."""
    brand = request.path_params["brand"]
    corp = await _corp(_runtime(request), brand)
    try:
        echo = verify_url(corp.crypto(), dict(request.query_params))
    except CallbackCryptoError as error:
        raise _rejected(brand, request, error) from None
    return PlainTextResponse(echo)


async def receive(request: Request) -> PlainTextResponse:
    """A callback: verified, decrypted and durably stored before the answer; its welcome starts at once."""
    arrived = time.monotonic()
    brand = request.path_params["brand"]
    runtime = _runtime(request)
    corp = await _corp(runtime, brand)
    body = await request.body()
    try:
        received = open_callback(corp.crypto(), brand, dict(request.query_params), body, utc_now())
    except CallbackCryptoError as error:
        raise _rejected(brand, request, error) from None
    new = await asyncio.wrap_future(runtime.writer.submit(received))  # durable before WeCom hears "success"
    runtime.stored(received, arrived, new)
    return PlainTextResponse("success")


# Plain Starlette routes, not FastAPI operations: FastAPI's parameter solving cost about as much as
# the signature check and decryption on this hot path, and WeCom is their only client (not in the
# OpenAPI document; docs/wecom.md describes them).
router.routes.append(Route("/wecom/callback/{brand}", verify, methods=["GET"]))
router.routes.append(Route("/wecom/callback/{brand}", receive, methods=["POST"]))
