"""Operations: liveness, readiness (store and lake reachable, inbox flowing), Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from siyu.api.deps import ApiState, StateDep
from siyu.api.errors import ApiError
from siyu.api.gzip import GzipRoute
from siyu.core.clock import utc_now
from siyu.ingest import inbox

router = APIRouter(tags=["operations 运维"], route_class=GzipRoute)


@dataclass(frozen=True)
class InboxHealth:
    pending: int
    oldest: datetime | None
    oldest_seconds: float  # 0 when nothing waits
    dead_letters: int


def _inbox_health(state: ApiState) -> InboxHealth:
    """The inbox figures, also set on the Prometheus gauges."""
    with state.app.store.unit_of_work() as session:
        session.execute(text("SELECT 1"))
        waiting, oldest = inbox.backlog(session)
        dead = inbox.dead_letter_count(session)
    age = 0.0 if oldest is None else max(0.0, (utc_now() - oldest).total_seconds())
    state.telemetry.observe_inbox(waiting, dead, age)
    return InboxHealth(waiting, oldest, age, dead)


@router.get("/health", summary="Liveness 存活检查")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness 就绪检查")
def ready(state: StateDep) -> dict[str, Any]:
    """Ready when the store answers, the lake folder is writable and the inbox flows: 503 when the
    oldest pending message waited over `SIYU_READY_MAX_PENDING_AGE` seconds (the loader is down or
    stuck). Dead letters do not hold the queue up, so they are reported, not a reason for 503."""
    try:
        figures = _inbox_health(state)
    except Exception as exc:
        raise ApiError(503, "store_unavailable", f"store unreachable: {type(exc).__name__} (存储不可用)") from exc
    lake = state.app.lake.local  # a lake on object storage is not probed here (its writes need credentials)
    if lake is not None:
        lake.mkdir(parents=True, exist_ok=True)
        try:
            (lake / ".ready").write_text("ok")
        except OSError as exc:
            raise ApiError(503, "lake_unavailable", f"lake not writable: {exc.strerror} (数据湖不可写)") from exc
    limit = state.app.settings.ready_max_pending_age
    if limit and figures.oldest_seconds > limit:
        raise ApiError(
            503,
            "inbox_stalled",
            f"the oldest of {figures.pending} pending inbox messages has waited {figures.oldest_seconds:.0f} s "
            f"(limit SIYU_READY_MAX_PENDING_AGE = {limit:g} s): is the loader running? See its log and "
            "`siyu inbox dead-letters` (入湖积压)",
        )
    return {
        "status": "ready",
        "store": "ok",
        "lake": "ok",
        "inbox_pending": figures.pending,
        "inbox_oldest": figures.oldest,
        "inbox_oldest_seconds": round(figures.oldest_seconds, 3),
        "inbox_dead_letters": figures.dead_letters,
    }


@router.get("/metrics", summary="Prometheus metrics 监控指标", response_class=Response)
def metrics(state: StateDep) -> Response:
    _inbox_health(state)
    return Response(generate_latest(state.telemetry.registry), media_type=CONTENT_TYPE_LATEST)
