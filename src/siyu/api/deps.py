"""Request dependencies: the siyu App, the calling API key (Basic or Bearer), scopes, rate limits."""

from __future__ import annotations

import queue
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from siyu.api.errors import ApiError
from siyu.api.keys import KeyInfo, KeyVerifier
from siyu.api.ratelimit import RateLimiter, retry_after
from siyu.api.telemetry import Telemetry
from siyu.bootstrap import App, with_own_engine
from siyu.ingest.inbox import GroupCommitter

basic = HTTPBasic(auto_error=False, description="Segment style: the write key as the user name, no password")
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")


class EnginePool:
    """A few Apps with their own compute engines, one per request at a time (see `with_own_engine`).

    A request that finds every engine busy waits at most `wait` seconds, then gets 503 with
    Retry-After: waiting longer would hold one of the server's worker threads for nothing."""

    def __init__(self, app: App, size: int, wait: float) -> None:
        self._free: queue.Queue[App] = queue.Queue()
        self.wait = wait
        for _ in range(size):
            self._free.put(with_own_engine(app))

    def borrow(self) -> Iterator[App]:
        try:
            app = self._free.get(timeout=self.wait)
        except queue.Empty:
            raise ApiError(
                503,
                "engine_busy",
                f"every compute engine stayed busy for {self.wait:g} s; retry later (计算资源繁忙，请稍后重试)",
                headers={"Retry-After": retry_after(self.wait)},
            ) from None
        try:
            yield app
        finally:
            self._free.put(app)


@dataclass
class ApiState:
    app: App
    keys: KeyVerifier
    limiter: RateLimiter
    telemetry: Telemetry
    compute: EnginePool  # customer and metric reads
    audiences: EnginePool  # audience counts, previews, exports: long work that must not starve reads
    inbox: GroupCommitter


# The dependencies on the ingest path are `async def`: a plain `def` dependency hops to a worker
# thread on every request, which costs more than the work itself.
async def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.siyu
    return state


StateDep = Annotated[ApiState, Depends(api_state)]


def compute_app(state: StateDep) -> Iterator[App]:
    yield from state.compute.borrow()


ComputeDep = Annotated[App, Depends(compute_app)]


def audience_app(state: StateDep) -> Iterator[App]:
    yield from state.audiences.borrow()


AudienceDep = Annotated[App, Depends(audience_app)]


async def caller(
    state: StateDep,
    basic_auth: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    bearer_auth: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> KeyInfo:
    secret = basic_auth.username if basic_auth else bearer_auth.credentials if bearer_auth else None
    if not secret:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send `Authorization: Bearer <key>` or the key as the Basic user name (缺少密钥)",
            headers={"WWW-Authenticate": 'Bearer, Basic realm="siyu"'},
        )
    key = state.keys.verify(secret)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key (密钥无效或已吊销)",
            headers={"WWW-Authenticate": 'Bearer, Basic realm="siyu"'},
        )
    # a token in hand costs nothing; asking the shared bucket in the store runs off the event loop
    wait = (
        0.0
        if state.limiter.take_local(key.id)
        else await to_thread.run_sync(state.limiter.take, key.id, key.rate_limit)
    )
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            "rate limit exceeded; retry later (请求过于频繁)",
            headers={"Retry-After": retry_after(wait)},
        )
    return key


def require(scope: str) -> Callable[[KeyInfo], Awaitable[KeyInfo]]:
    async def check(key: Annotated[KeyInfo, Depends(caller)]) -> KeyInfo:
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"this API key lacks the `{scope}` scope (密钥无此权限: {scope})")
        return key

    return check


def customer_scope(request: Request, key: Annotated[KeyInfo, Depends(caller)], state: StateDep) -> None:
    """A key bound to a store or a guide sees only their customers: a route with a `{customer_id}`
    answers 404 for any other (siyu.api.scope). Routers of customer routes declare it once for all."""
    customer_id = request.path_params.get("customer_id")
    if (key.store is None and key.staff_id is None) or customer_id is None:
        return
    from siyu.api.scope import check_customer

    with contextmanager(state.compute.borrow)() as app:
        check_customer(app, key, str(customer_id))


def check_customers(state: ApiState, key: KeyInfo, customer_ids: list[str]) -> None:
    """The same check for customer ids a route reads from a body or finds through another object
    (a points transaction, a redemption): 404 unless a store- or guide-bound key may see them all."""
    from siyu.api.scope import check_customer, narrowed

    if not narrowed(key):
        return
    with contextmanager(state.compute.borrow)() as app:
        for customer_id in customer_ids:
            check_customer(app, key, customer_id)


def visible_customers(state: ApiState, key: KeyInfo, customer_ids: list[str]) -> list[str]:
    """The ids among `customer_ids` a store- or guide-bound key may see (all, for other keys)."""
    from siyu.api.scope import narrowed, visible

    if not narrowed(key):
        return customer_ids
    with contextmanager(state.compute.borrow)() as app:
        return visible(app, key, customer_ids)


CustomerScope = Depends(customer_scope)
IngestKey = Annotated[KeyInfo, Depends(require("ingest"))]
ReadKey = Annotated[KeyInfo, Depends(require("read"))]
