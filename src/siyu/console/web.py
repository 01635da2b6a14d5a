"""The console's request plumbing: templates, the language, the signed-in user, the one permission
check every route declares (`page("customers.view")`), CSRF and the HTML error pages."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from siyu.api.deps import ApiState
from siyu.bootstrap import App
from siyu.brands.settings import list_brands
from siyu.console.i18n import LANGS, translate
from siyu.console.permissions import NAV, allows
from siyu.console.users import User, session_of
from siyu.core.clock import utc_now

HERE = Path(__file__).parent
SESSION_COOKIE = "siyu_session"
LANG_COOKIE = "siyu_lang"
LOGIN_CSRF_COOKIE = "siyu_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

templates = Jinja2Templates(directory=HERE / "templates")


class ConsoleRedirectError(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


class ConsoleDeniedError(Exception):
    """403 (role or scope) or 404, shown as a page in the user's language."""

    def __init__(self, status: int, message_id: str) -> None:
        self.status, self.message_id = status, message_id


def lang_of(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "zh"
    return wanted if wanted in LANGS else "zh"


def secure_cookies(request: Request, app: App) -> bool:
    """Cookies are `Secure` unless configured off, or (auto) on plain HTTP to a loopback address."""
    configured = app.settings.console_secure_cookie
    if configured is not None:
        return configured
    return not (request.url.scheme == "http" and request.url.hostname in ("127.0.0.1", "localhost", "::1"))


@dataclass
class Ctx:
    """What a console page knows about the request: who, in which language and brand."""

    request: Request
    state: ApiState
    user: User
    csrf: str
    lang: str
    brands: list[str]
    brand: str | None
    flash: list[tuple[str, str]] = field(default_factory=list)

    @property
    def app(self) -> App:
        return self.state.app

    def t(self, key: str, **values: Any) -> str:
        return translate(self.lang, key, **values)

    def can(self, permission: str) -> bool:
        return allows(self.user.role, permission)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        nav = [(path, self.t(label), path == self.request.url.path) for perm, path, label in NAV if self.can(perm)]
        response = templates.TemplateResponse(
            self.request,
            template,
            {"ctx": self, "t": self.t, "nav": nav, **values},
            status_code=status,
        )
        if self.request.query_params.get("lang") in LANGS:
            response.set_cookie(LANG_COOKIE, self.lang, max_age=365 * 86400, samesite="lax", httponly=True)
        return response


def _brands_of(app: App, user: User) -> list[str]:
    if user.brand:
        return [user.brand]
    return [b.code for b in list_brands(app)]


async def _csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # Starlette keeps the parsed form for the route
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and secrets.compare_digest(sent, expected)


def page(permission: str | None) -> Callable[[Request], Awaitable[Ctx]]:
    """The dependency of every console route: signed in, allowed by the permission table, and —
    for POST — carrying the session's CSRF token. The brand is one of the user's own brands."""

    async def check(request: Request) -> Ctx:
        state: ApiState = request.app.state.siyu
        token = request.cookies.get(SESSION_COOKIE)
        found = await run_in_threadpool(session_of, state.app, token, utc_now()) if token else None
        if found is None:
            raise ConsoleRedirectError("/console/login")
        user, csrf = found
        lang = lang_of(request)
        if request.method == "POST" and not await _csrf_ok(request, csrf):
            raise ConsoleDeniedError(403, "error.csrf")
        if permission is not None and not allows(user.role, permission):
            raise ConsoleDeniedError(403, "error.forbidden")
        brands = await run_in_threadpool(_brands_of, state.app, user)
        wanted = request.query_params.get("brand")
        if wanted is not None and wanted not in brands:
            raise ConsoleDeniedError(403, "error.brand")
        return Ctx(request, state, user, csrf, lang, brands, wanted or (brands[0] if brands else None))

    return check


async def _redirect(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRedirectError)
    return RedirectResponse(exc.to, status_code=303)


async def _denied(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleDeniedError)
    lang = lang_of(request)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"t": lambda k, **v: translate(lang, k, **v), "lang": lang, "message": translate(lang, exc.message_id),
         "status": exc.status},
        status_code=exc.status,
    )  # fmt: skip


def install(api: FastAPI) -> None:
    """Error pages for the console's own exceptions (the API keeps problem+json)."""
    api.add_exception_handler(ConsoleRedirectError, _redirect)
    api.add_exception_handler(ConsoleDeniedError, _denied)
