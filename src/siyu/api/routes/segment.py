"""Segment-compatible ingest (Segment HTTP Tracking API): `/v1/identify|track|page|screen|group|alias|batch`.

Authenticated like Segment: the write key is the HTTP Basic user name (password empty). A write
key is an `ingest` key bound to a brand and a source. Messages are validated for shape, recorded in
the inbox (durable) and only then answered `200 {"success": true}`; see docs/segment-mapping.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from siyu.api.deps import IngestKey, StateDep
from siyu.api.errors import ApiError
from siyu.api.gzip import GzipRoute
from siyu.api.schemas import segment
from siyu.api.schemas.segment_values import MessageValueError
from siyu.core.clock import utc_now
from siyu.ingest import inbox

router = APIRouter(tags=["Segment 兼容接入"], route_class=GzipRoute)
DEFAULT_SOURCE = "segment"
OK = {"success": True}


def _invalid(exc: ValidationError) -> ApiError:
    errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]} for e in exc.errors()[:20]]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
    return ApiError(400, "invalid_request", detail or "invalid Segment message", errors)


async def _accept(request: Request, key: IngestKey, state: StateDep, kind: str | None) -> dict[str, Any]:
    body = await request.body()
    bounds = state.app.settings.time_bounds
    try:
        rows = segment.parse_batch(body, bounds) if kind is None else segment.parse_message(kind, body, bounds)
    except ValidationError as exc:
        raise _invalid(exc) from None
    except MessageValueError as exc:  # values the door refuses: too deep, too big, out of range, not money
        raise ApiError(400, "invalid_request", str(exc), exc.errors[:20]) from None
    except ValueError as exc:  # JSON that is not even JSON
        raise ApiError(400, "invalid_json", f"body is not JSON: {exc} (请求体不是 JSON)") from None
    messages = [inbox.Message(r.message_id, r.payload) for r in rows]
    # Durable before the answer: awaits the group commit that holds these rows.
    await asyncio.wrap_future(
        state.inbox.submit(key.brand, key.source or DEFAULT_SOURCE, "segment", messages, utc_now())
    )
    state.telemetry.accepted.labels("segment").inc(len(messages))
    return OK


def _schema(name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


@router.post("/v1/batch", summary="Segment batch 批量", openapi_extra=_schema("Batch"))
async def batch(request: Request, key: IngestKey, state: StateDep) -> dict[str, Any]:
    """Many messages of any type: `{"batch": [...], "context"?, "sentAt"?}`."""
    return await _accept(request, key, state, None)


def _single(kind: str, model: str) -> None:
    async def endpoint(request: Request, key: IngestKey, state: StateDep) -> dict[str, Any]:
        return await _accept(request, key, state, kind)

    endpoint.__doc__ = f"One `{kind}` message (`type` may be omitted)."
    router.add_api_route(
        f"/v1/{kind}",
        endpoint,
        methods=["POST"],
        summary=f"Segment {kind}",
        name=f"segment_{kind}",
        openapi_extra=_schema(model),
    )


for _kind, _model in (
    ("identify", "Identify"),
    ("track", "Track"),
    ("page", "Page"),
    ("screen", "Screen"),
    ("group", "Group"),
    ("alias", "Alias"),
):
    _single(_kind, _model)

# Models whose JSON schemas the OpenAPI document must carry (referenced above).
OPENAPI_MODELS: dict[str, type[BaseModel]] = {
    "Batch": segment.Batch,
    **{m.__name__: m for m in segment.SINGLE_MODELS.values()},
}
