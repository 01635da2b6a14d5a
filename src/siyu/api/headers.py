"""Security headers on every answer of `siyu serve` (API, docs, console), set in one middleware so
no route can miss them. A response that sets its own Content-Security-Policy (the console, with a
per-page policy) keeps it; everything else gets the defaults below.

- JSON and other non-HTML answers: nothing may be loaded or framed (`default-src 'none'`).
- HTML (the API docs): same-origin only; inline script/style because Swagger UI and ReDoc bootstrap
  inline, and nothing is ever loaded from a CDN (connect/img from self and data: URIs).
- Answers under /api/ are `Cache-Control: no-store` unless the route chose otherwise: they can carry
  customer data, which must not sit in a shared or browser cache.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
CSP_DATA = b"default-src 'none'; frame-ancestors 'none'"
CSP_HTML = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    b"frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# The console's Alpine.js evaluates its x-data / @click expressions with `new Function`, so console
# pages need 'unsafe-eval' (still same-origin only: no script can come from anywhere else).
CSP_CONSOLE = CSP_HTML.replace(b"script-src 'self' 'unsafe-inline'", b"script-src 'self' 'unsafe-inline' 'unsafe-eval'")
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        under_api = scope.get("path", "").startswith("/api/")
        html_policy = CSP_CONSOLE if scope.get("path", "").startswith("/console") else CSP_HTML
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in ALWAYS if n not in present]
                if b"content-security-policy" not in present:
                    ctype = dict(headers).get(b"content-type", b"")
                    headers.append((b"content-security-policy", html_policy if b"text/html" in ctype else CSP_DATA))
                if under_api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                if https:  # HSTS only means something over TLS (a proxy in front sets the scheme)
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
