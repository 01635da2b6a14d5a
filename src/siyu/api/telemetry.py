"""Prometheus metrics (`GET /metrics`), request ids and the access log — which never carries PII:
paths with phones, e-mails and member numbers masked (a customer 360 may be asked for by phone), no
query strings, no bodies, no keys, and for an unexpected error its type, never its message (messages
quote input)."""

from __future__ import annotations

import logging
import re
import secrets
import time
import traceback
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siyu.api.errors import REQUEST_ID, internal_error
from siyu.identity.normalise import mask_value
from siyu.ingest.loader import LoadResult

access_log = logging.getLogger("siyu.api.access")
error_log = logging.getLogger("siyu.api")

PHONE = re.compile(r"\+?[\d\s().\-]{7,}")  # a phone in any format: 7+ digits after dropping separators
MEMBER_NO = re.compile(r"[A-Za-z]{1,4}[\-_]?\d{5,}[A-Za-z\d\-_]*")  # M013632841, VIP-20240088 (not txn ids)
ONE_ID = re.compile(r"c[0-9a-f]{15}")  # a One-ID customer id: pseudonymous, kept for tracing
IDENTIFYING = {"customer_id", "code"}  # path parameters that may hold a phone, member number or coupon code
# Bearer tokens in paths (the unsubscribe link `/u/{token}`: anyone holding it can withdraw the
# person's consent, and it names them): never logged, whether the route matched or not.
SECRET_PREFIXES = ("/u/",)
HIDDEN = "***"


def _masked(segment: str, identifying: bool) -> str:
    text = unquote(segment)
    if ONE_ID.fullmatch(text):
        return segment
    if "@" in text:
        return mask_value("email", text)
    if PHONE.fullmatch(text) and sum(c.isdigit() for c in text) >= 7:
        return mask_value("phone", re.sub(r"[^\d+]", "", text))
    if MEMBER_NO.fullmatch(text) or (identifying and text):
        return mask_value("member_no", text)
    return segment


def loggable_path(scope: Scope) -> str:
    """The request path with every segment that looks personal masked by the customer 360's rule
    (`mask_value`), and so are the values of path parameters that may identify a person; a path
    carrying a bearer token (SECRET_PREFIXES) keeps its prefix only."""
    path = str(scope["path"])
    for prefix in SECRET_PREFIXES:
        if path.startswith(prefix):
            return prefix + HIDDEN
    params = scope.get("path_params") or {}
    identifying = {str(v) for k, v in params.items() if k in IDENTIFYING}
    return "/".join(_masked(s, unquote(s) in identifying) for s in path.split("/"))


class Telemetry:
    """One registry per API instance, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "siyu_http_requests", "HTTP requests by route and status", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "siyu_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.accepted = Counter(
            "siyu_ingest_messages", "Messages accepted into the inbox", ["kind"], registry=self.registry
        )
        self.loaded = Counter("siyu_loader_messages", "Inbox messages loaded into the lake", registry=self.registry)
        self.batches = Counter("siyu_loader_batches", "Loader batches committed", registry=self.registry)
        self.visibility = Histogram(
            "siyu_loader_visibility_seconds", "Seconds from acceptance to the lake commit", registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
        )  # fmt: skip
        self.dead_lettered = Counter(
            "siyu_loader_dead_letters", "Inbox messages the loader dead-lettered", registry=self.registry
        )
        self.pending = Gauge("siyu_inbox_pending", "Messages waiting in the inbox", registry=self.registry)
        self.dead_letters = Gauge(
            "siyu_inbox_dead_letters", "Dead letters not yet retried or dropped", registry=self.registry
        )
        self.oldest_pending = Gauge(
            "siyu_inbox_oldest_pending_seconds", "Age of the oldest pending inbox message", registry=self.registry
        )

    def observe_inbox(self, pending: int, dead_letters: int, oldest_seconds: float) -> None:
        self.pending.set(pending)
        self.dead_letters.set(dead_letters)
        self.oldest_pending.set(oldest_seconds)

    def observe_batch(self, result: LoadResult) -> None:
        self.batches.inc()
        self.loaded.inc(result.messages)
        self.dead_lettered.inc(len(result.dead))
        if result.loaded_at is not None:
            for received in result.received:
                self.visibility.observe((result.loaded_at - received).total_seconds())


class TelemetryMiddleware:
    """Gives every request an id (`X-Request-Id`), counts, times and logs it, and answers an
    unexpected error with a 500 problem — logged here by type and request id and not re-raised,
    since the server would log it again with its message. A plain ASGI middleware, because
    Starlette's BaseHTTPMiddleware costs ~0.3 ms a request on the ingest path."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = scope[REQUEST_ID] = secrets.token_hex(8)
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            trace = "".join(traceback.format_tb(exc.__traceback__))  # frames only: no message, no values
            error_log.error(
                "unhandled %s (request %s) on %s %s\n%s",
                type(exc).__name__, request_id, scope["method"], loggable_path(scope), trace,
            )  # fmt: skip
            if not status:  # nothing sent yet: answer; otherwise the server closes the connection
                await internal_error(str(scope["path"]), request_id)(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            self.telemetry.requests.labels(scope["method"], route, str(status or 500)).inc()
            self.telemetry.latency.labels(route).observe(elapsed)
            access_log.info(
                "%s %s %d %.1fms request %s",
                scope["method"], loggable_path(scope), status or 500, elapsed * 1000, request_id,
            )  # fmt: skip
