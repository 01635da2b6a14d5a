"""Sign in and out. The login form is protected by a double-submit CSRF token (a cookie and a
hidden field that must match); every later form by the session's own token (siyu.console.web)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from siyu.api.deps import ApiState
from siyu.console.i18n import translate
from siyu.console.permissions import home_of
from siyu.console.users import SESSION_FOR, LoginError, User, do_login, do_logout, session_of
from siyu.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleDeniedError,
    Ctx,
    lang_of,
    page,
    secure_cookies,
    templates,
)
from siyu.core.actor import Actor
from siyu.core.clock import utc_now

router = APIRouter(include_in_schema=False)


def _login_page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    state: ApiState = request.app.state.siyu
    lang = lang_of(request)
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"t": lambda k, **v: translate(lang, k, **v), "lang": lang, "csrf": token, "error": error},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=secure_cookies(request, state.app),
        path="/console/login",
    )  # fmt: skip
    return response


@router.get("/console/login")
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.post("/console/login")
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    state: ApiState = request.app.state.siyu
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, csrf):
        raise ConsoleDeniedError(403, "error.csrf")
    with state.app.store.begin(Actor.user(email.strip().lower()[:320])) as uow:
        outcome = do_login(uow, email, password)
    lang = lang_of(request)
    if isinstance(outcome, LoginError):
        key = "login.locked" if "locked" in outcome.message else "login.failed"
        return _login_page(request, translate(lang, key), status=401)
    token, user = outcome
    response = RedirectResponse(home_of(user.role), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(SESSION_FOR.total_seconds()), httponly=True, samesite="lax",
        secure=secure_cookies(request, state.app), path="/console",
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


def _signed_in(request: Request) -> User | None:
    state: ApiState = request.app.state.siyu
    token = request.cookies.get(SESSION_COOKIE)
    found = session_of(state.app, token, utc_now()) if token else None
    return found[0] if found else None


@router.get("/console")
async def root(request: Request) -> Response:
    user = await run_in_threadpool(_signed_in, request)
    return RedirectResponse(home_of(user.role) if user else "/console/login", status_code=303)


@router.post("/console/logout")
def logout(request: Request, ctx: Annotated[Ctx, Depends(page(None))]) -> Response:
    with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
        do_logout(uow, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response
