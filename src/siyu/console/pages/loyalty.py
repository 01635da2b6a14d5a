"""会员中台 Loyalty: programs (versions; upload a YAML to validate and apply, errors with their
line), member lookup (a POST: member numbers stay out of URLs), points adjust with a reason, coupon
templates with their stock, and the members / points totals — through siyu.loyalty's services."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import SiyuError
from siyu.identity.normalise import mask_value
from siyu.loyalty.accounts import account_by_member_no
from siyu.loyalty.members import member_summary
from siyu.loyalty.models import CouponTemplate, LoyaltyAccount, LoyaltyProgramVersion
from siyu.loyalty.points import do_adjust
from siyu.loyalty.programs import do_apply_program, load_program, programs_of_brand

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("loyalty.view"))]
Edit = Annotated[Ctx, Depends(page("loyalty.edit"))]
MAX_PROGRAM_BYTES = 256 * 1024


def _programs(ctx: Ctx) -> list[dict[str, Any]]:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    with ctx.app.store.unit_of_work() as session:
        out = []
        for code in programs_of_brand(session, ctx.brand):
            versions = session.scalars(
                select(LoyaltyProgramVersion)
                .where(LoyaltyProgramVersion.program == code)
                .order_by(LoyaltyProgramVersion.version.desc())
            ).all()
            members, points = session.execute(
                select(func.count(), func.coalesce(func.sum(LoyaltyAccount.balance), 0)).where(
                    LoyaltyAccount.program == code
                )
            ).one()
            coupons = session.scalars(select(CouponTemplate).where(CouponTemplate.program == code)).all()
            out.append(
                {
                    "code": code,
                    "versions": [(v.version, v.applied_at, v.applied_by) for v in versions],
                    "members": int(members),
                    "points": int(points),
                    "coupons": [(c.code, c.kind, c.stock, c.issued) for c in coupons],
                }
            )
        return out


def _render(ctx: Ctx, status: int = 200, **extra: Any) -> HTMLResponse:
    return ctx.render("loyalty.html", status=status, programs=_programs(ctx), **extra)


@router.get("/console/loyalty")
def loyalty(ctx: View) -> HTMLResponse:
    return _render(ctx)


@router.post("/console/loyalty/programs")
async def apply_program(ctx: Edit, file: UploadFile) -> HTMLResponse:
    """Validate and apply an uploaded program file; a bad one shows every problem with its line."""
    data = await file.read(MAX_PROGRAM_BYTES + 1)
    name = Path(file.filename or "program.yaml").name
    if len(data) > MAX_PROGRAM_BYTES:
        ctx.flash.append(("error", ctx.t("error.generic", message="file larger than 256 KiB")))
        return _render(ctx, 400)
    with tempfile.TemporaryDirectory(prefix="siyu-program-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            applied = do_apply_program(ctx.app.store, path, actor=str(Actor.user(ctx.user.email)), at=utc_now())
        except SiyuError as error:
            return _render(ctx, 400, program_error=error.message)
    ctx.flash.append(
        ("ok", ctx.t("loyalty.applied", program=applied.program, version=applied.version, status=applied.status))
    )
    return _render(ctx)


def _member(ctx: Ctx, program: str, member_no: str) -> LoyaltyAccount:
    with ctx.app.store.unit_of_work() as session:
        account = account_by_member_no(session, program, member_no.strip())
        if account is None or account.brand not in ctx.brands:
            raise ConsoleDeniedError(404, "error.not_found")
        return account


@router.post("/console/loyalty/members")
def lookup(
    ctx: View, program: Annotated[str, Form(max_length=64)], member_no: Annotated[str, Form(max_length=64)]
) -> HTMLResponse:
    account = _member(ctx, program, member_no)
    with ctx.app.store.unit_of_work() as session:
        summary = member_summary(session, session.get(LoyaltyAccount, account.id) or account)
    if not ctx.can("customers.pii"):
        summary["member_no"] = mask_value("member_no", summary["member_no"])
    return _render(
        ctx, member=summary, member_input=member_no, member_program=program, adjust_key=secrets.token_urlsafe(12)
    )


@router.post("/console/loyalty/adjust")
def adjust(
    ctx: Edit,
    program: Annotated[str, Form(max_length=64)],
    member_no: Annotated[str, Form(max_length=64)],
    points: Annotated[int, Form()],
    reason: Annotated[str, Form(min_length=1, max_length=400)],
    key: Annotated[str, Form(max_length=100)],
) -> HTMLResponse:
    """Points adjust 积分调整 with a reason; `key` (made when the form was shown) makes a resubmitted
    form a replay, not a second adjustment."""
    account = _member(ctx, program, member_no)
    try:
        with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
            posted = do_adjust(
                uow.session, load_program(uow.session, program), account.id, points,
                key=f"console-adjust:{key}", at=uow.now, actor=str(uow.actor), reason=reason,
            )  # fmt: skip
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return _render(ctx, 400)
    ctx.flash.append(("ok", ctx.t("loyalty.adjusted", points=f"{posted.points:+,}", balance=f"{posted.balance:,}")))
    return _render(ctx)
