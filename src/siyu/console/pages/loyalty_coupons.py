"""会员中台 · 券与报表 Loyalty coupons and reports, per program: coupon templates with stock, issued
and redeemed; issuing a template to an audience (the bulk issue service, idempotent per program,
template and audience); the points mall (rewards, stock, redemptions); the coupon cost report by
bearer and the inter-brand settlement — all through siyu.loyalty's services (read from the store)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from siyu.api.deps import AudienceDep
from siyu.audiences import service as audiences
from siyu.bootstrap import App
from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import SiyuError
from siyu.loyalty import coupons
from siyu.loyalty.cost import cost_report, totals_by_bearer
from siyu.loyalty.mall import rewards
from siyu.loyalty.models import Coupon, CouponTemplate, MallRedemption
from siyu.loyalty.programs import load_program, programs_of_brand
from siyu.loyalty.settlement import settlement

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("loyalty.view"))]
Edit = Annotated[Ctx, Depends(page("loyalty.edit"))]
Program = Annotated[str, Query(max_length=64)]


def _program(ctx: Ctx, program: str) -> str:
    """The program, once it is one of the brand's (404 otherwise: nothing about other brands' programs)."""
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    with ctx.app.store.unit_of_work() as session:
        if program not in programs_of_brand(session, ctx.brand):
            raise ConsoleDeniedError(404, "error.not_found")
    return program


def _templates(session: Any, program: str) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(
            select(Coupon.template, func.count()).where(Coupon.program == program, Coupon.status == "redeemed")
            .group_by(Coupon.template)
        ).all()
    )  # fmt: skip
    return [
        {
            "code": t.code,
            "kind": t.kind,
            "stock": t.stock,  # in all (None = unlimited); what is left is stock − issued
            "left": None if t.stock is None else max(t.stock - t.issued, 0),
            "issued": t.issued,
            "redeemed": int(counts.get(t.code, 0)),
        }
        for t in session.scalars(
            select(CouponTemplate).where(CouponTemplate.program == program).order_by(CouponTemplate.code)
        )
    ]


def _mall(session: Any, program: str) -> list[dict[str, Any]]:
    taken = dict(
        session.execute(
            select(MallRedemption.reward, func.coalesce(func.sum(MallRedemption.quantity), 0))
            .where(MallRedemption.program == program, MallRedemption.status != "cancelled")
            .group_by(MallRedemption.reward)
        ).all()
    )  # fmt: skip
    return [
        {
            "code": r.code,
            "kind": r.kind,
            "name_zh": r.name_zh,
            "name_en": r.name_en,
            "points": r.points,
            "cash_fen": r.cash_fen,
            "stock": r.stock,
            "redeemed": int(taken.get(r.code, 0)),
        }
        for r in rewards(session, program)
    ]


def _render(ctx: Ctx, program: str, status: int = 200) -> HTMLResponse:
    assert ctx.brand is not None
    with ctx.app.store.unit_of_work() as session:
        spec = load_program(session, program)
        costs = cost_report(session, spec)
        data = {
            "templates": _templates(session, program),
            "mall": _mall(session, program),
            "costs": [c.as_dict() for c in costs],
            "cost_totals": totals_by_bearer(costs),
            "settlement": settlement(session, program),
        }
    return ctx.render(
        "loyalty_coupons.html", status=status, program=program, audiences=audiences.list_audiences(ctx.app, ctx.brand),
        **data,
    )  # fmt: skip


@router.get("/console/loyalty/coupons")
def coupons_page(ctx: View, program: Program) -> HTMLResponse:
    return _render(ctx, _program(ctx, program))


def issue_to_audience(app: App, brand: str, program: str, template: str, audience: str, actor: str) -> dict[str, Any]:
    """Issue `template` to the members among the audience's customers now (the CLI's `coupons issue
    --audience`): the key is per program, template and audience, so issuing again replays."""
    with audiences.compiled_audience(app, brand, audience, None, None) as (_, expr):
        ids = [str(c) for c in app.engine.to_arrow(expr.select("customer_id"))["customer_id"].to_pylist()]
    with app.store.unit_of_work() as session:
        load_program(session, program)
        members = coupons.accounts_of_customers(session, program, brand, ids)
    bulk = coupons.do_issue_bulk(
        app.store, program, template, list(members.values()), key=f"console:{template}:audience:{brand}:{audience}",
        at=utc_now(), actor=actor, via="bulk",
    )  # fmt: skip
    skipped = dict(bulk.skipped)
    if outside := len(set(ids)) - len(members):
        skipped["not_a_member"] = skipped.get("not_a_member", 0) + outside
    return {"issued": bulk.issued, "replayed": bulk.replayed, "skipped": skipped}


@router.post("/console/loyalty/coupons/issue")
def issue(
    ctx: Edit,
    app: AudienceDep,
    program: Annotated[str, Form(max_length=64)],
    template: Annotated[str, Form(max_length=64)],
    audience: Annotated[str, Form(max_length=64)],
) -> HTMLResponse:
    program = _program(ctx, program)
    assert ctx.brand is not None
    try:
        done = issue_to_audience(app, ctx.brand, program, template, audience, str(Actor.user(ctx.user.email)))
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return _render(ctx, program, 400)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(done["skipped"].items())) or "0"
    ctx.flash.append(("ok", ctx.t("coupons.issued", issued=done["issued"], replayed=done["replayed"], skipped=skipped)))
    return _render(ctx, program)
