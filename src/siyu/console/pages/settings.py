"""设置 Settings: brands (time zone, attribution window), fields (场域), API keys (created and shown
once, revoked) and console users — each change through the same service as the CLI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from siyu.api.keys import do_create_key, do_revoke_key, list_keys, parse_scopes
from siyu.brands.settings import list_brands
from siyu.console.passwords import one_time_password
from siyu.console.permissions import ROLES
from siyu.console.users import GROUP_ROLES, do_create_user, do_disable_user, list_users
from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.actor import Actor
from siyu.core.errors import SiyuError
from siyu.store.models import ApiKey
from siyu.store.models import Field as FieldRow

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("settings.view"))]
Keys = Annotated[Ctx, Depends(page("keys.edit"))]
Users = Annotated[Ctx, Depends(page("users.edit"))]


def _render(ctx: Ctx, status: int = 200, **extra: object) -> HTMLResponse:
    app, brand = ctx.app, ctx.brand
    brands = [b for b in list_brands(app) if b.code in ctx.brands]
    with app.store.unit_of_work() as session:
        fields = list(session.scalars(select(FieldRow).where(FieldRow.brand == brand).order_by(FieldRow.code)))
    keys = list_keys(app, brand) if brand else []
    users = list_users(app, ctx.user.brand)
    # A brand admin creates users of their own brand, never group-level ones.
    roles = ROLES if ctx.user.role == "group_admin" else tuple(r for r in ROLES if r not in GROUP_ROLES)
    return ctx.render(
        "settings.html", status=status, brand_rows=brands, fields=fields, keys=keys, users=users, roles=roles, **extra
    )


@router.get("/console/settings")
def settings(ctx: View) -> HTMLResponse:
    return _render(ctx)


@router.post("/console/settings/keys")
def create_key(
    ctx: Keys,
    scopes: Annotated[list[str], Form()],
    name: Annotated[str, Form(max_length=200)] = "",
    store: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse:
    """A key shown once; with a store it sees only that store's customers (siyu.api.scope)."""
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    try:
        with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
            secret, _ = do_create_key(
                uow, ctx.brand, parse_scopes(scopes), None, name or None, store=store.strip() or None
            )
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return _render(ctx, 400)
    return _render(ctx, new_secret=secret)


@router.post("/console/settings/keys/{key_id}/revoke")
def revoke_key(ctx: Keys, key_id: str) -> HTMLResponse:
    with ctx.app.store.unit_of_work() as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.brand not in ctx.brands:
            raise ConsoleDeniedError(404, "error.not_found")
    with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
        do_revoke_key(uow, key_id)
    return _render(ctx)


@router.post("/console/settings/users")
def create_user(
    ctx: Users,
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=32)],
    store: Annotated[str, Form(max_length=64)] = "",
    staff_id: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse:
    if ctx.user.role != "group_admin" and role in GROUP_ROLES:
        raise ConsoleDeniedError(403, "error.forbidden")
    password = one_time_password()
    brand = None if role in GROUP_ROLES else ctx.brand
    try:
        with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
            user = do_create_user(
                uow, email, role, password, brand=brand, store=store or None, staff_id=staff_id or None
            )
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return _render(ctx, 400)
    ctx.flash.append(("ok", ctx.t("settings.user_created", email=user["email"], password=password)))
    return _render(ctx)


@router.post("/console/settings/users/disable")
def disable_user(ctx: Users, email: Annotated[str, Form(max_length=320)]) -> HTMLResponse:
    target = next((u for u in list_users(ctx.app, ctx.user.brand) if u["email"] == email.strip().lower()), None)
    if target is None or (ctx.user.role != "group_admin" and target["role"] in GROUP_ROLES):
        raise ConsoleDeniedError(404, "error.not_found")
    with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
        do_disable_user(uow, email)
    return _render(ctx)
