"""Errors as RFC 9457 problem details (`application/problem+json`), mapped in this one place.

Every problem has `type`, `title`, `status`, `detail`, plus siyu's stable `code` and, for bad
input, `errors: [{"field", "reason"}]` naming the offending field.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from siyu.core.errors import SiyuError

MEDIA_TYPE = "application/problem+json"
REQUEST_ID = "siyu.request_id"  # the ASGI scope key siyu.api.telemetry sets for every request
TYPE_BASE = "https://siyu.dev/problems/"

# Domain error code → HTTP status; anything else a user did wrong is 400.
STATUS = {
    "not_found": 404,
    "nothing_to_resolve": 404,
    "unknown_brand": 404,
    "ambiguous_customer": 409,
    "unauthorized": 401,
    "forbidden": 403,
    "payload_too_large": 413,
    "rate_limited": 429,
    "invalid_request": 422,
    "erasure_reason_required": 422,
    "invalid_rule": 422,
    "invalid_tag": 422,
    "invalid_audience": 422,
    "missing_data": 409,
    "pii_not_allowed": 403,
    "purpose_required": 422,
    "compute_timeout": 503,  # with Retry-After (the error's `retry_after`)
    # Loyalty (docs/api.md "Loyalty 会员中台"): 404 for what the key cannot see, 409 when the member's
    # or the program's current state refuses the request, 422 for a request that can never succeed.
    "unknown_program": 404,
    "unknown_journey": 404,  # journeys: another brand's journey is not found either
    "journey_state": 409,
    "not_a_member": 404,
    "unknown_customer": 404,
    "unknown_reward": 404,
    "insufficient_points": 409,
    "idempotency_conflict": 409,
    "reversal_not_allowed": 409,
    "coupon_not_usable": 409,
    "out_of_stock": 409,
    "limit_reached": 409,
    "invalid_program": 422,
    "loyalty_error": 422,
}
TITLES = {
    400: "Bad request 请求错误",
    401: "Unauthorized 未认证",
    403: "Forbidden 无权限",
    404: "Not found 未找到",
    405: "Method not allowed 方法不允许",
    409: "Conflict 冲突",
    413: "Payload too large 请求过大",
    415: "Unsupported media type 不支持的类型",
    422: "Invalid request 请求无效",
    429: "Too many requests 请求过多",
    500: "Internal server error 服务器错误",
    503: "Service unavailable 服务不可用",
}


class ApiError(SiyuError):
    """An error raised by the HTTP layer itself (auth, limits), with its own status and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.errors, self.headers = status, code, errors or [], headers or {}


def problem(
    status: int,
    code: str,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": TITLES.get(status, "Error 错误"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id  # = the X-Request-Id header: what to quote to whoever reads the log
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """`("body", 0, "amount_fen")` → `0.amount_fen`; the location prefix says nothing to a client."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "")


def internal_error(instance: str, request_id: str) -> JSONResponse:
    """The answer to an unexpected error (logged by siyu.api.telemetry, by type and request id)."""
    detail = f"internal error; quote request id {request_id} to the operator (服务器内部错误, 请求编号 {request_id})"
    return problem(500, "internal_error", detail, instance, request_id=request_id)


def _id(request: Request) -> str | None:
    return request.scope.get(REQUEST_ID)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.message, request.url.path, exc.errors, exc.headers, _id(request))

    @app.exception_handler(SiyuError)
    async def _domain(request: Request, exc: SiyuError) -> JSONResponse:
        wait = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(wait)} if wait is not None else None
        status = STATUS.get(exc.code, 400)
        return problem(status, exc.code, exc.message, request.url.path, headers=headers, request_id=_id(request))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e.get("loc", ()))), "reason": str(e.get("msg", ""))} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        return problem(
            422, "invalid_request", detail or "invalid request", request.url.path, errors, None, _id(request)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = getattr(exc, "headers", None)
        return problem(exc.status_code, code, str(exc.detail), request.url.path, None, headers, _id(request))
