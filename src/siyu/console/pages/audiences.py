"""人群 Audiences: the list, a visual rule builder that writes the rule language (docs/audiences.md)
with a live count as conditions change, preview (masked), export (permission-checked, audited) and
snapshots — all through siyu.audiences.service / snapshots."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from siyu.api.deps import AudienceDep
from siyu.audiences import service, snapshots
from siyu.audiences.tags import list_tags
from siyu.bootstrap import App
from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.actor import Actor
from siyu.core.errors import NotFoundError, SiyuError

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("audiences.view"))]
Edit = Annotated[Ctx, Depends(page("audiences.edit"))]
Export = Annotated[Ctx, Depends(page("audiences.export"))]
Rule = Annotated[str, Form(max_length=20_000)]


def _brand(ctx: Ctx) -> str:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    return ctx.brand


@router.get("/console/audiences")
def audiences(ctx: View) -> HTMLResponse:
    return ctx.render("audiences.html", rows=service.list_audiences(ctx.app, _brand(ctx)))


@router.get("/console/audiences/new")
def builder(ctx: Edit) -> HTMLResponse:
    tags = list_tags(ctx.app, _brand(ctx))
    return ctx.render("audience_builder.html", tags=tags)


@router.post("/console/audiences/count")
def live_count(ctx: Edit, app: AudienceDep, rule: Rule) -> HTMLResponse:
    """The builder's live count (htmx): the size of the rule as it stands, or what is wrong with it."""
    try:
        n = service.count_audience(app, _brand(ctx), rule=rule)
    except SiyuError as error:
        return ctx.render("fragment_error.html", message=ctx.t("audiences.rule_error", message=error.message))
    return ctx.render("audience_count.html", n=n)


@router.post("/console/audiences")
def create(
    ctx: Edit,
    app: AudienceDep,
    code: Annotated[str, Form(max_length=64)],
    rule: Rule,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    brand = _brand(ctx)
    try:
        checked = service.check_rule(app, brand, rule)
        with app.store.begin(Actor.user(ctx.user.email)) as uow:
            service.do_create_audience(uow, code, checked, name=name or None)
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return ctx.render("audience_builder.html", tags=list_tags(app, brand), status=400)
    return RedirectResponse(f"/console/audiences/{code}?brand={brand}", status_code=303)


def _audience(ctx: Ctx, code: str) -> dict[str, object]:
    try:
        return service.get_audience(ctx.app, _brand(ctx), code)
    except NotFoundError:
        raise ConsoleDeniedError(404, "error.not_found") from None


def _detail(ctx: Ctx, app: App, code: str, *, preview: bool = True, **extra: Any) -> HTMLResponse:
    audience = _audience(ctx, code)
    brand = _brand(ctx)
    shown = None
    if preview:
        try:
            shown = service.preview_audience(app, brand, code, limit=20)
        except SiyuError as error:
            ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
    frozen = snapshots.list_snapshots(app, brand, code)
    # What a diff may compare: this audience live, each of its snapshots, every other audience live.
    refs = [code, *(f"{code}@{s['snapshot_id']}" for s in frozen)]
    refs += [a["code"] for a in service.list_audiences(app, brand) if a["code"] != code]
    return ctx.render("audience.html", a=audience, preview=shown, snapshots=frozen, refs=refs, **extra)


@router.get("/console/audiences/{code}")
def detail(ctx: View, app: AudienceDep, code: str) -> HTMLResponse:
    return _detail(ctx, app, code)


DiffRef = Annotated[str, Query(max_length=100, pattern=r"^[A-Za-z0-9_\-]+(@[0-9]+)?$")]


@router.get("/console/audiences/{code}/diff")
def diff(ctx: View, app: AudienceDep, code: str, a: DiffRef, b: DiffRef) -> HTMLResponse:
    """Overlap of two sides (an audience live, or `code@snapshot` frozen): sizes, both, only in each,
    Jaccard (siyu.audiences.snapshots.diff_audiences, the CLI's `audience diff`)."""
    brand = _brand(ctx)
    _audience(ctx, code)
    try:
        result = snapshots.diff_audiences(app, brand, a, b)
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return _detail(ctx, app, code, preview=False)
    return _detail(ctx, app, code, preview=False, diff=result)


@router.post("/console/audiences/{code}/snapshot")
def snapshot(ctx: Edit, app: AudienceDep, code: str) -> Response:
    brand = _brand(ctx)
    _audience(ctx, code)
    members = snapshots.freeze_audience(app, brand, code)
    with app.store.begin(Actor.user(ctx.user.email)) as uow:
        snapshots.do_snapshot_audience(uow, app.lake, members)
    return RedirectResponse(f"/console/audiences/{code}?brand={brand}", status_code=303)


@router.post("/console/audiences/{code}/export")
def export(ctx: Export, app: AudienceDep, code: str, cleanup: BackgroundTasks) -> FileResponse:
    """A masked CSV of the audience (the console never exports unmasked PII); audited `audience.export`."""
    brand = _brand(ctx)
    _audience(ctx, code)
    folder = Path(tempfile.mkdtemp(prefix="siyu-console-export-"))
    path = folder / f"{code}.csv"
    try:
        with (
            service.export_audience(app, brand, path, code) as exported,
            app.store.begin(Actor.user(ctx.user.email)) as uow,
        ):
            service.do_record_export(uow, exported)
    except BaseException:
        shutil.rmtree(folder, True)
        raise
    cleanup.add_task(shutil.rmtree, folder, True)
    return FileResponse(path, media_type="text/csv", filename=path.name)
