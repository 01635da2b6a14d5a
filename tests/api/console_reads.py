"""Reads never write, for the console too (called from test_reads_never_write.py, on its seeded
workspace, SQLite and PostgreSQL): every GET route of the console's routers (pages, fragments, the
PNG and CSV downloads), called by a signed-in group admin (the workbench by a guide), leaves every
lake table's version and every store table's row count as it was. The console's routes are left out
of the API schema, so they are listed from siyu.console's routers: a new page is covered as soon as
it exists.

Session and sign-in bookkeeping is the one write allowed, and it happens before the first
snapshot: signing in adds a `console_sessions` row and a `user.login` row to `audit_log` (and
updates the user's row); a later GET only reads the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute

from api.conftest import serving
from console.conftest import PASSWORD, login
from fixtures import wecom_wire as wire
from siyu.bootstrap import App
from siyu.console import auth
from siyu.console.pages import ROUTERS
from siyu.console.users import do_create_user
from siyu.core.actor import Actor
from siyu.fakes.wecom import FakeWeCom, create_fake_app
from siyu.guides.tasks import TaskRequest, do_create_task
from siyu.wecom.client import WeComClient
from siyu.wecom.qrcodes import QrCodeRequest, do_create_qrcode

GUIDE_ONLY = {"/console/workbench"}  # a group admin is not a guide: the workbench is the guide's page
REDIRECTS = {"/console": 303}  # the console's root sends the user to their home page
QUERY = {  # routes with required query parameters
    "/console/audiences/{code}/diff": {"a": "phones", "b": "phones"},
    "/console/loyalty/coupons": {"program": "fx_club"},
}


def console_get_routes() -> list[str]:
    routes = [r for router in (auth.router, *ROUTERS) for r in router.routes if isinstance(r, APIRoute)]
    return sorted({r.path for r in routes if "GET" in r.methods})


def _seed_console(s: Any) -> dict[str, str]:
    """A guide task, a channel code (created through the fake WeCom) and two console users."""
    fake = FakeWeCom(corp_id=wire.CORP_ID, secret=wire.SECRET)
    with serving(create_fake_app(fake)) as url:
        client = WeComClient(url, wire.CORP_ID, wire.SECRET)
        with s.app.store.begin(Actor.system("tests")) as uow:
            do_create_qrcode(uow, client, QrCodeRequest("fx", "fx_counter", ("g1",)), s.app.settings.home / "qr")
        client.close()
    with s.app.store.begin(Actor.system("tests")) as uow:
        do_create_task(uow, TaskRequest("fx", None, "manual", "回访", "console-read", assignee_staff_id="g1"))
        do_create_user(uow, "admin@example.com", "group_admin", PASSWORD)
        do_create_user(uow, "guide@example.com", "guide", PASSWORD, brand="fx", staff_id="g1")
    return {"customer_id": s.paths["/api/v1/customers/{customer_id}"].rsplit("/", 1)[1], "code": "phones",
            "state": "fx_counter"}  # fmt: skip


def call_console_gets(seeded: Any, state: Callable[[App], object]) -> None:
    """Every console GET once; one snapshot before and after the walk (a snapshot reads every lake
    table's log and counts every store table: per route it would cost more than the pages). On a
    difference the walk is repeated route by route to name the one that wrote."""
    ids = _seed_console(seeded)
    routes = console_get_routes()
    assert {"/console/journeys/{code}", "/console/guides", "/console/workbench", "/console/overview/data"} <= set(
        routes
    )
    admin, guide = login(seeded.url, "admin@example.com"), login(seeded.url, "guide@example.com")

    def get(route: str) -> None:
        path = route.format(**ids)
        answer = (guide if route in GUIDE_ONLY else admin).get(path, params={"brand": "fx", **QUERY.get(route, {})})
        assert answer.status_code == REDIRECTS.get(route, 200), f"GET {path}: {answer.status_code}"

    try:
        before = state(seeded.app)
        for route in routes:
            get(route)
        if state(seeded.app) != before:
            for route in routes:
                before = state(seeded.app)
                get(route)
                assert state(seeded.app) == before, f"GET {route} wrote"
            raise AssertionError("a console GET wrote, but not when repeated: look for a first-call write")
    finally:
        admin.close()
        guide.close()
