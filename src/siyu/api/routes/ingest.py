"""Canonical ingest: `POST /api/v1/ingest/{entity}` with a JSON array of canonical rows (DESIGN §5)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel

from siyu.api.deps import ComputeDep, IngestKey, StateDep
from siyu.api.errors import ApiError
from siyu.api.gzip import GzipRoute
from siyu.ingest.rows import accept_rows
from siyu.ingest.schema import IMPORT_ORDER

router = APIRouter(tags=["ingest 数据接入"], route_class=GzipRoute)
MAX_ROWS = 10_000


class EntityName(StrEnum):
    fields = "fields"
    relation_types = "relation_types"
    customers = "customers"
    identities = "identities"
    memberships = "memberships"
    orders = "orders"
    order_items = "order_items"
    relations = "relations"
    events = "events"
    stores = "stores"
    staff = "staff"
    messages = "messages"


assert set(EntityName) == set(IMPORT_ORDER)


class RowError(BaseModel):
    field: str
    reason: str


class RowOutcome(BaseModel):
    index: int
    outcome: str  # accepted | updated | unchanged | rejected
    errors: list[RowError] | None = None


class IngestCounts(BaseModel):
    accepted: int
    updated: int
    unchanged: int
    rejected: int


class IngestResult(BaseModel):
    entity: str
    counts: IngestCounts
    rows: list[RowOutcome]
    warnings: list[str]


@router.post(
    "/api/v1/ingest/{entity}",
    response_model=IngestResult,
    response_model_exclude_none=True,
    summary="Ingest canonical rows 写入标准数据",
    responses={413: {"description": f"more than {MAX_ROWS} rows"}},
)
def ingest_rows(
    entity: EntityName,
    rows: Annotated[list[dict[str, Any]], Body(description="Canonical rows, as in the import files (DESIGN §5)")],
    key: IngestKey,
    state: StateDep,
    app: ComputeDep,
) -> dict[str, Any]:
    """Validated like a file import, and money / counts (`*_fen`, `qty`, `points_used`, …) must be
    JSON integers (`true` or `"7"` are rejected). Every row gets an outcome: `accepted` (new key),
    `updated` (known key, new content), `unchanged`, or `rejected` with the offending field and
    reason. The answer comes after the rows are durable in the inbox; the loader moves them into
    the lake (declarations — `fields`, `relation_types` — into the store). Rows without `brand` /
    `source` take the key's brand and source."""
    if len(rows) > MAX_ROWS:
        raise ApiError(
            413, "payload_too_large", f"{len(rows)} rows: at most {MAX_ROWS} per request (单次最多 {MAX_ROWS} 行)"
        )
    report = accept_rows(app, str(entity.value), rows, key.brand, key.source)
    result = report.as_json()
    for outcome in ("accepted", "updated"):
        state.telemetry.accepted.labels(str(entity.value)).inc(result["counts"][outcome])
    return result
