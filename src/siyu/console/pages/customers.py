"""客户 Customers: find by phone / member number / id (a POST: no PII in URLs), and the 360 view —
masked unless the role may see PII and asks (each reveal audited), tags with a reason, within the
user's data scope (a guide sees only their customers: siyu.console.scope)."""

from __future__ import annotations

from typing import Annotated, Any

import ibis
import pyarrow as pa
from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from siyu.api.deps import ComputeDep
from siyu.audiences.customer import customer_lights
from siyu.audiences.tag_manual import do_remove_tag, do_set_tag, known_customer
from siyu.audiences.tags import list_tags
from siyu.bootstrap import App
from siyu.console.scope import SCOPED_ROLES, in_scope, scoped_customers
from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.actor import Actor
from siyu.core.errors import NotFoundError, SiyuError
from siyu.customers.profile import customer_profile
from siyu.customers.view import customer_view, find_customer_ids

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("customers.view"))]
Reveal = Annotated[Ctx, Depends(page("customers.pii"))]
Tag = Annotated[Ctx, Depends(page("customers.tag"))]


def _brand(ctx: Ctx) -> str:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    return ctx.brand


@router.get("/console/customers")
def customers(ctx: View, app: ComputeDep) -> HTMLResponse:
    brand = _brand(ctx)
    mine = scoped_customers(app, ctx.user, brand) if ctx.user.role in SCOPED_ROLES else None
    return ctx.render("customers.html", mine=mine)


@router.post("/console/customers/search")
def search(ctx: View, app: ComputeDep, q: Annotated[str, Form(max_length=200)]) -> Response:
    brand = _brand(ctx)
    found = [c for c in find_customer_ids(app, q, brand) if in_scope(app, ctx.user, brand, c)]
    if len(found) == 1:
        return RedirectResponse(f"/console/customers/{found[0]}?brand={brand}", status_code=303)
    ctx.flash.append(("error", ctx.t("customers.none_found")))
    mine = scoped_customers(app, ctx.user, brand) if ctx.user.role in SCOPED_ROLES else None
    return ctx.render("customers.html", mine=mine, status=404)


def _checked(ctx: Ctx, app: App, customer_id: str) -> str:
    """The brand, once the customer is in it and in the user's scope (404 either way: a guide
    learns nothing about customers who are not theirs)."""
    brand = _brand(ctx)
    try:
        known_customer(app.engine, brand, customer_id)
    except NotFoundError:
        raise ConsoleDeniedError(404, "error.not_found") from None
    if not in_scope(app, ctx.user, brand, customer_id):
        raise ConsoleDeniedError(404, "error.not_found")
    return brand


def _view(app: App, brand: str, customer_id: str, mask: bool) -> dict[str, Any]:
    view = customer_view(app, customer_id, brand, mask=mask, lights=False)  # lights: the /reach fragment
    records = ibis.memtable(pa.Table.from_pylist([{"brand": view["brand"], **s} for s in view["sources"]]))
    try:
        view.update(customer_profile(app, view["brand"], customer_id, records))
    finally:
        app.engine.release(records)
    return view


def _render(ctx: Ctx, app: App, brand: str, customer_id: str, *, revealed: bool) -> HTMLResponse:
    view = _view(app, brand, customer_id, mask=not revealed)
    manual = [t for t in list_tags(app, brand) if t["kind"] == "manual"]
    return ctx.render("customer.html", c=view, revealed=revealed, manual_tags=manual)


@router.get("/console/customers/{customer_id}")
def customer(ctx: View, app: ComputeDep, customer_id: str) -> HTMLResponse:
    brand = _checked(ctx, app, customer_id)
    return _render(ctx, app, brand, customer_id, revealed=False)


@router.get("/console/customers/{customer_id}/reach")
def reach(ctx: View, app: ComputeDep, customer_id: str) -> HTMLResponse:
    """Reachability lights (亮灯), fetched by the 360 page after it shows: the slowest part of the view."""
    brand = _checked(ctx, app, customer_id)
    return ctx.render("customer_reach.html", lights=customer_lights(app, customer_id, brand))


@router.post("/console/customers/{customer_id}/reveal")
def reveal(ctx: Reveal, app: ComputeDep, customer_id: str) -> HTMLResponse:
    """Unmasked identifiers for one look; the reveal is an audit row (who saw whose PII, when)."""
    brand = _checked(ctx, app, customer_id)
    with app.store.begin(Actor.user(ctx.user.email)) as uow:
        uow.audit("customer.reveal_pii", "customer", customer_id, brand=brand)
    ctx.flash.append(("ok", ctx.t("customers.revealed")))
    return _render(ctx, app, brand, customer_id, revealed=True)


@router.post("/console/customers/{customer_id}/tags")
def add_tag(
    ctx: Tag,
    app: ComputeDep,
    customer_id: str,
    code: Annotated[str, Form(max_length=64)],
    reason: Annotated[str, Form(min_length=1, max_length=400)],
    value: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    brand = _checked(ctx, app, customer_id)
    try:
        known = known_customer(app.engine, brand, customer_id)
        with app.store.begin(Actor.user(ctx.user.email)) as uow:
            do_set_tag(uow, known, code, value or None, reason=reason)
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return _render(ctx, app, brand, customer_id, revealed=False)
    return RedirectResponse(f"/console/customers/{customer_id}?brand={brand}", status_code=303)


@router.post("/console/customers/{customer_id}/tags/remove")
def remove_tag(
    ctx: Tag,
    app: ComputeDep,
    customer_id: str,
    code: Annotated[str, Form(max_length=64)],
    reason: Annotated[str, Form(min_length=1, max_length=400)],
) -> Response:
    brand = _checked(ctx, app, customer_id)
    try:
        with app.store.begin(Actor.user(ctx.user.email)) as uow:
            do_remove_tag(uow, brand, code, customer_id, reason=reason)
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return _render(ctx, app, brand, customer_id, revealed=False)
    return RedirectResponse(f"/console/customers/{customer_id}?brand={brand}", status_code=303)
