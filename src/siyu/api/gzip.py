"""Request bodies sent with `Content-Encoding: gzip` (Segment SDKs compress batches), inflated
with a size cap so a small compressed bomb cannot exhaust memory."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

MAX_BODY = 8 * 1024 * 1024  # bytes, after decompression


# HTTPException, not a domain error: FastAPI turns any other error raised while reading a body into 400.
def _too_large() -> HTTPException:
    return HTTPException(413, f"request body over {MAX_BODY // (1024 * 1024)} MiB (请求体过大)")


class GzipRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise _too_large()
                chunks.append(chunk)
            body = b"".join(chunks)
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
