"""Data-subject rights over HTTP (个人信息主体权利): export a person's data, erase it.

Both need a key with `admin` and `pii` (pii is never implied by admin), act within the key's brand
only, and are audited like the CLI. The person's key (phone, e-mail…) travels in the body, never in
the URL, so it does not end up in access logs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from siyu.api.deps import ComputeDep, caller
from siyu.api.errors import ApiError
from siyu.api.keys import KeyInfo
from siyu.core.actor import Actor

router = APIRouter(tags=["privacy 个人信息"])


async def _subject_key(key: Annotated[KeyInfo, Depends(caller)]) -> KeyInfo:
    missing = [s for s in ("admin", "pii") if not key.allows(s)]
    if missing:
        raise ApiError(403, "forbidden", f"this API key lacks the `{'`, `'.join(missing)}` scope (密钥无此权限)")
    return key


SubjectKey = Annotated[KeyInfo, Depends(_subject_key)]


class SubjectExport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=200, description="Customer id, phone, e-mail or member no")


class SubjectErase(SubjectExport):
    reason: str = Field(min_length=1, max_length=500, description="Why (the request, its date): audited")


@router.post(
    "/api/v1/subjects/export",
    summary="Export a person's data 导出个人信息",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
def export(body: SubjectExport, key: SubjectKey, app: ComputeDep) -> Response:
    """A zip of JSON + one CSV per table: everything the brand holds about the person."""
    from siyu.privacy.subject_export import export_bytes

    subject, _, data = export_bytes(app, body.key, actor=Actor.api_key(key.id), brand=key.brand)
    name = f"subject-{subject.customer_ids[0]}.zip"
    return Response(
        data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post("/api/v1/subjects/erase", summary="Erase a person 删除个人信息")
def erase(body: SubjectErase, key: SubjectKey, app: ComputeDep) -> dict[str, Any]:
    """Erase the person in the key's brand (store and lake, history purged); returns what was done."""
    from siyu.privacy.erasure import erase_subject

    report = erase_subject(app, body.key, reason=body.reason, actor=Actor.api_key(key.id), brand=key.brand)
    return report.as_json()
