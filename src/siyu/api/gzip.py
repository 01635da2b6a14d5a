"""Request bodies: one size cap for every route (a middleware, so no router can miss it), and
bodies sent with `Content-Encoding: gzip` (Segment SDKs compress batches) inflated under the same
cap, so a small compressed bomb cannot exhaust memory either."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 8 * 1024 * 1024  # bytes, as sent and after decompression


# HTTPException, not a domain error: FastAPI turns any other error raised while reading a body into 400.
def _too_large() -> HTTPException:
    return HTTPException(413, f"request body over {MAX_BODY // (1024 * 1024)} MiB (请求体过大)")


class BodyLimitMiddleware:
    """Refuses (413) a body over MAX_BODY on any route: at once when Content-Length says so, else
    as soon as the bytes received pass it. The error surfaces where the route reads its body, so it
    becomes a problem+json answer like any other."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        received = MAX_BODY + 1 if declared.isdigit() and int(declared) > MAX_BODY else 0

        async def counting() -> Message:
            nonlocal received
            if received > MAX_BODY:
                raise _too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise _too_large()
            return message

        await self.app(scope, counting, send)


class GzipRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            body = await super().body()  # at most MAX_BODY: BodyLimitMiddleware
            if "gzip" in self.headers.get("content-encoding", "").lower():
                inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                try:
                    body = inflater.decompress(body, MAX_BODY + 1)
                except zlib.error as exc:
                    raise HTTPException(400, f"body is not valid gzip: {exc} (gzip 解压失败)") from exc
                if len(body) > MAX_BODY or inflater.unconsumed_tail:
                    raise _too_large()
            self._body = body
        return self._body


class GzipRoute(APIRoute):
    """The route class of every siyu router: handlers see the inflated body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def inflating(request: Request) -> Response:
            return await handler(GzipRequest(request.scope, request.receive))

        return inflating
