"""导购与门店 Guides and stores: guide performance with the store roll-up (siyu.guides.performance,
cached per brand and period like the overview), guide tasks (list, mark done), channel QR codes
(渠道活码: list, create, the PNG) and a guide's mobile workbench (their bound customers and their
tasks; a store manager: their store's). A store manager sees only their store on every page; a task
or code outside the user's scope answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from siyu.brands.settings import brand_settings
from siyu.console.cache import PageCache
from siyu.console.pages.overview import default_period
from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.actor import Actor
from siyu.core.errors import SiyuError
from siyu.guides.bindings import SOURCES
from siyu.guides.models import CurrentBinding, GuideTask
from siyu.guides.performance import performance
from siyu.guides.tasks import STATUSES, do_mark_done, list_tasks
from siyu.metrics.periods import parse_period
from siyu.wecom.models import WecomQrCode
from siyu.wecom.qrcodes import QrCodeRequest, do_create_qrcode, poster_png, public

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("guides.view"))]
Done = Annotated[Ctx, Depends(page("tasks.done"))]
CreateCode = Annotated[Ctx, Depends(page("qrcodes.edit"))]
Workbench = Annotated[Ctx, Depends(page("workbench.view"))]
Period = Annotated[str | None, Query(max_length=16, pattern=r"^\d{4}-\d{2}$")]
Status = Annotated[str | None, Query(pattern="^(open|done|cancelled)$")]
State = Annotated[str, Path(max_length=30, pattern=r"^[A-Za-z0-9_.-]+$")]
Short = Annotated[str, Form(max_length=64)]
PERFORMANCE = PageCache(size=32, ttl=300.0)
LIMIT = 200
KINDS = ("journey", "churn_alert", "sop", "manual", "sensitive_word")  # labelled; another kind shows as is


def _brand(ctx: Ctx) -> str:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    return ctx.brand


def _store(ctx: Ctx) -> str | None:
    """The one store a store manager sees (None: the whole brand)."""
    return ctx.user.store if ctx.user.role == "store_manager" else None


@router.get("/console/guides")
def guides(ctx: View, period: Period = None) -> HTMLResponse:
    brand = _brand(ctx)
    chosen = period or default_period(ctx.app, brand)
    tz = brand_settings(ctx.app, brand).timezone
    try:
        result = PERFORMANCE.get(
            (ctx.app.settings.home, brand, chosen),
            lambda: performance(ctx.app, brand, parse_period(chosen, "month", tz)),
        )
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        result = {"guides": [], "stores": []}
    store = _store(ctx)
    rows = [g for g in result["guides"] if store is None or g.get("store_code") == store]
    stores = [s for s in result["stores"] if store is None or s.get("store_code") == store]
    return ctx.render("guides.html", period=chosen, guides=rows, stores=stores)


def _visible_task(ctx: Ctx, task: GuideTask | None) -> GuideTask:
    """The task if the user may see it: their brand; a guide's own; a store manager's store's."""
    if task is None or task.brand != ctx.brand:
        raise ConsoleDeniedError(404, "error.not_found")
    if ctx.user.role == "guide" and task.assignee_staff_id != ctx.user.staff_id:
        raise ConsoleDeniedError(404, "error.not_found")
    if ctx.user.role == "store_manager" and task.store_code != ctx.user.store:
        raise ConsoleDeniedError(404, "error.not_found")
    return task


@router.get("/console/guides/tasks")
def tasks(ctx: View, status: Status = "open") -> HTMLResponse:
    brand = _brand(ctx)
    with ctx.app.store.unit_of_work() as session:
        found = list_tasks(session, brand, status=status, store_code=_store(ctx), limit=LIMIT)
    return ctx.render("guide_tasks.html", tasks=found, shown_status=status, statuses=STATUSES, limit=LIMIT, kinds=KINDS)


@router.post("/console/guides/tasks/{task_id}/done")
def task_done(
    ctx: Done,
    task_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    result: Annotated[str, Form(max_length=400)] = "",
    back: Annotated[str, Form(pattern="^(workbench|tasks)$")] = "tasks",
) -> Response:
    """Mark a task done (audited by the service), then back to the page it was done from."""
    _brand(ctx)
    with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
        _visible_task(ctx, uow.session.get(GuideTask, task_id))
        do_mark_done(uow, task_id, result.strip() or None)
    target = "/console/workbench" if back == "workbench" else "/console/guides/tasks"
    return RedirectResponse(f"{target}?brand={ctx.brand}", status_code=303)


def _codes(ctx: Ctx) -> list[dict[str, Any]]:
    store = _store(ctx)
    with ctx.app.store.unit_of_work() as session:
        q = select(WecomQrCode).where(WecomQrCode.brand == _brand(ctx)).order_by(WecomQrCode.state)
        if store is not None:
            q = q.where(WecomQrCode.store_code == store)
        return [{**public(r), "created_at": r.created_at} for r in session.scalars(q)]


@router.get("/console/guides/qrcodes")
def qrcodes(ctx: View) -> HTMLResponse:
    return ctx.render("qrcodes.html", codes=_codes(ctx))


@router.get("/console/guides/qrcodes/{state}.png")
def qrcode_png(ctx: View, state: State) -> Response:
    """The code's poster, rendered from its WeCom URL (the same PNG `siyu qrcodes create` writes)."""
    code = next((c for c in _codes(ctx) if c["state"] == state), None)
    if code is None:
        raise ConsoleDeniedError(404, "error.not_found")
    return Response(poster_png(code["qr_code"]), media_type="image/png", headers={"Cache-Control": "private"})


@router.post("/console/guides/qrcodes")
def create_qrcode(
    ctx: CreateCode,
    state: Annotated[str, Form(min_length=1, max_length=30, pattern=r"^[A-Za-z0-9_.-]+$")],
    staff: Annotated[str, Form(min_length=1, max_length=2000)],
    store_code: Short = "",
    channel: Short = "",
    campaign: Short = "",
    exclusive: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """Create a channel code at WeCom (through the server's WeCom client) and keep it (audited)."""
    brand = _brand(ctx)
    request = QrCodeRequest(
        brand, state, tuple(s.strip() for s in staff.split(",") if s.strip()),
        store_code=store_code.strip() or None, channel=channel.strip() or None,
        campaign=campaign.strip() or None, exclusive=exclusive,
    )  # fmt: skip
    try:
        client = ctx.request.app.state.wecom.client(brand)
        with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
            do_create_qrcode(uow, client, request, ctx.app.settings.home / "qrcodes")
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return ctx.render("qrcodes.html", status=400, codes=_codes(ctx))
    ctx.flash.append(("ok", ctx.t("qrcodes.created", state=state)))
    return ctx.render("qrcodes.html", codes=_codes(ctx), created=state)


@router.get("/console/workbench")
def workbench(ctx: Workbench) -> HTMLResponse:
    """A guide's customers (bound to them now) and open tasks; a store manager's: their store's."""
    brand = _brand(ctx)
    guide = ctx.user.staff_id if ctx.user.role == "guide" else None
    store = _store(ctx)
    with ctx.app.store.unit_of_work() as session:
        q = select(CurrentBinding).where(CurrentBinding.brand == brand)
        q = (
            q.where(CurrentBinding.staff_id == guide)
            if guide is not None
            else q.where(CurrentBinding.store_code == store)
        )
        customers = session.scalars(q.order_by(CurrentBinding.since.desc(), CurrentBinding.customer_id).limit(LIMIT))
        bound = [
            {"customer_id": b.customer_id, "staff_id": b.staff_id, "source": b.source, "since": b.since}
            for b in customers
        ]
        open_tasks = (
            list_tasks(session, brand, guide, "open", limit=LIMIT)
            if guide is not None
            else list_tasks(session, brand, status="open", store_code=store, limit=LIMIT)
        )
    return ctx.render("workbench.html", customers=bound, tasks=open_tasks, limit=LIMIT, kinds=KINDS, sources=SOURCES)
