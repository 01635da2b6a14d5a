"""Read-only pages: 标签 Tags (definitions and their values) and 审计日志 the audit log (auditors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from siyu.audiences.tags import list_tags
from siyu.audit.trail import AuditFilter, entries
from siyu.console.web import ConsoleDeniedError, Ctx, page

router = APIRouter(include_in_schema=False)
Tags = Annotated[Ctx, Depends(page("tags.view"))]
Audit = Annotated[Ctx, Depends(page("audit.view"))]


@router.get("/console/tags")
def tags(ctx: Tags) -> HTMLResponse:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    return ctx.render("tags.html", rows=list_tags(ctx.app, ctx.brand))


@router.get("/console/audit")
def audit(
    ctx: Audit,
    action: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """The newest 200 audit rows (their values masked by the trail), filterable by action and subject type."""
    with ctx.app.store.unit_of_work() as session:
        rows = entries(session, AuditFilter(action=action or None, subject=subject or None, limit=200,
                                            brand=ctx.user.brand))  # fmt: skip
    return ctx.render("audit.html", rows=rows, action=action or "", subject=subject or "")
