"""Audiences (人群) and tags (标签) over HTTP: the same services as `siyu audience …` / `siyu tags …`.

Reads (count, preview, reach, diff, export, tags of a customer) need `read`; creating audiences and
setting tags need `admin`. Exports are masked unless the key has `pii` (and `unmasked=true`).

Whatever compiles a rule runs on the audience engines (`AudienceDep`), not on those of customer
reads, and within `SIYU_API_AUDIENCE_TIMEOUT` (503 with Retry-After past it); rules are refused
over the size limits before anything compiles (docs/api.md "Limits").
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Query
from fastapi.responses import FileResponse
from pydantic import Field

from siyu.api.deps import AudienceDep, ComputeDep, CustomerScope, ReadKey, require
from siyu.api.gzip import GzipRoute
from siyu.api.keys import KeyInfo
from siyu.api.schemas.request import RequestBody
from siyu.audiences import service, snapshots, tag_manual, tags
from siyu.audiences.ranges import check_day
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.dates import parse_date
from siyu.engine.timeout import time_limit

router = APIRouter(tags=["audiences 人群与标签"], route_class=GzipRoute, dependencies=[CustomerScope])
AdminKey = Annotated[KeyInfo, Depends(require("admin"))]
Columns = Annotated[str | None, Query(max_length=200, description="comma-separated: customer_id,name,phone,…")]
AsOf = Annotated[str | None, Query(max_length=10, description="Evaluate as of this brand-local date, YYYY-MM-DD")]
Rule = dict[str, Any] | str


class AudienceCreate(RequestBody):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    rule: Rule = Field(description="Rule as JSON (all/any/not …) or the text form, see docs/audiences.md")
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    refresh_minutes: int | None = Field(None, ge=1, le=525_600)
    replace: bool = False


class RuleBody(RequestBody):
    rule: Rule


class TagSet(RequestBody):
    value: str | float | None = None
    reason: str | None = Field(None, max_length=500)


def _as_of(text: str | None) -> date | None:
    return check_day(parse_date(text, "as_of"), "as_of") if text else None


@contextmanager
def _bounded(app: App) -> Iterator[None]:
    with time_limit(app.engine, app.settings.api_audience_timeout):
        yield


def _actor(key: KeyInfo) -> Actor:
    return Actor.api_key(key.id)


@router.post("/api/v1/audiences", summary="Create an audience 创建人群")
def create(body: AudienceCreate, key: AdminKey, app: AudienceDep) -> dict[str, Any]:
    with _bounded(app):
        rule = service.check_rule(app, key.brand, body.rule)
    with app.store.begin(_actor(key)) as uow:
        return service.do_create_audience(
            uow, body.code, rule, name=body.name, description=body.description,
            refresh_minutes=body.refresh_minutes, replace=body.replace,
        )  # fmt: skip


@router.get("/api/v1/audiences", summary="List audiences 人群列表")
def list_all(key: ReadKey, app: ComputeDep) -> list[dict[str, Any]]:
    return service.list_audiences(app, key.brand)


@router.post("/api/v1/audiences/count", summary="Count an ad-hoc rule 临时圈选计数")
def count_rule(body: RuleBody, key: ReadKey, app: AudienceDep, as_of: AsOf = None) -> dict[str, Any]:
    with _bounded(app):
        return service.count_audience(app, key.brand, rule=body.rule, as_of=_as_of(as_of))


@router.get("/api/v1/audiences/diff", summary="Compare two audiences 人群对比")
def diff(
    key: ReadKey,
    app: AudienceDep,
    a: Annotated[str, Query(max_length=100, description="audience code, or code@snapshot_id")],
    b: Annotated[str, Query(max_length=100)],
    as_of: AsOf = None,
) -> dict[str, Any]:
    with _bounded(app):
        return snapshots.diff_audiences(app, key.brand, a, b, _as_of(as_of))


@router.get("/api/v1/audiences/{code}/count", summary="Count 人数")
def count(code: str, key: ReadKey, app: AudienceDep, as_of: AsOf = None) -> dict[str, Any]:
    with _bounded(app):
        return service.count_audience(app, key.brand, code, as_of=_as_of(as_of))


@router.get("/api/v1/audiences/{code}/preview", summary="Preview a sample (PII masked) 预览")
def preview(
    code: str,
    key: ReadKey,
    app: AudienceDep,
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    columns: Columns = None,
) -> dict[str, Any]:
    with _bounded(app):
        return service.preview_audience(app, key.brand, code, as_of=_as_of(as_of), limit=limit, columns=columns)


@router.get("/api/v1/audiences/{code}/reach", summary="Reachability per channel 亮灯统计")
def reach(code: str, key: ReadKey, app: AudienceDep, as_of: AsOf = None) -> dict[str, Any]:
    with _bounded(app):
        return service.reach_counts(app, key.brand, code, as_of=_as_of(as_of))


@router.get("/api/v1/audiences/{code}/export", summary="Export CSV / Parquet 导出", response_class=FileResponse)
def export(
    code: str,
    key: ReadKey,
    app: AudienceDep,
    cleanup: BackgroundTasks,
    file_format: Annotated[str, Query(alias="format", pattern="^(csv|parquet)$")] = "csv",
    unmasked: bool = False,
    as_of: AsOf = None,
    columns: Columns = None,
    purpose: Annotated[str | None, Query(max_length=500)] = None,
    consent_purpose: Annotated[str | None, Query(max_length=100)] = None,
) -> FileResponse:
    """Only `columns` (comma-separated; default all six). Unmasked phone / e-mail / name only with
    `unmasked=true`, a key holding the `pii` scope and a `purpose` (audited); `consent_purpose`
    (marketing_sms …) leaves out the customers who withdrew it."""
    folder = Path(tempfile.mkdtemp(prefix="siyu-export-"))
    path = folder / f"{code}.{file_format}"
    try:
        with _bounded(app), service.export_audience(
            app, key.brand, path, code, file_format=file_format, unmasked=unmasked,
            allow_unmasked=key.allows("pii"), as_of=_as_of(as_of), columns=columns, purpose=purpose,
            consent_purpose=consent_purpose,
        ) as exported, app.store.begin(_actor(key)) as uow:  # fmt: skip
            service.do_record_export(uow, exported)
    except BaseException:
        shutil.rmtree(folder, True)  # a refused or stopped export leaves no partial file behind
        raise
    cleanup.add_task(shutil.rmtree, folder, True)  # after the response is sent
    media = "text/csv" if file_format == "csv" else "application/vnd.apache.parquet"
    return FileResponse(path, media_type=media, filename=path.name)


@router.get("/api/v1/tags", summary="Tag definitions 标签定义")
def tag_list(key: ReadKey, app: ComputeDep) -> list[dict[str, Any]]:
    return tags.list_tags(app, key.brand)


@router.get("/api/v1/customers/{customer_id}/tags", summary="A customer's tags 客户标签")
def customer_tags(customer_id: str, key: ReadKey, app: ComputeDep) -> list[dict[str, Any]]:
    tag_manual.known_customer(app.engine, key.brand, customer_id)  # another brand's customer is not found, not tagless
    return tags.customer_tags(app, customer_id, key.brand)


@router.put("/api/v1/customers/{customer_id}/tags/{tag}", summary="Set a manual tag 打标签")
def set_tag(
    customer_id: str, tag: str, key: AdminKey, app: ComputeDep, body: Annotated[TagSet, Body()]
) -> dict[str, Any]:
    customer = tag_manual.known_customer(app.engine, key.brand, customer_id)
    with app.store.begin(_actor(key)) as uow:
        return tag_manual.do_set_tag(uow, customer, tag, body.value, reason=body.reason)


@router.delete("/api/v1/customers/{customer_id}/tags/{tag}", summary="Remove a manual tag 去标签")
def remove_tag(
    customer_id: str,
    tag: str,
    key: AdminKey,
    app: ComputeDep,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    with app.store.begin(_actor(key)) as uow:
        return tag_manual.do_remove_tag(uow, key.brand, tag, customer_id, reason=reason)
