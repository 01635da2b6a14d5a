"""Operations: liveness, readiness (store and lake reachable), Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from siyu.api.deps import StateDep
from siyu.api.errors import ApiError
from siyu.api.gzip import GzipRoute
from siyu.ingest import inbox

router = APIRouter(tags=["operations 运维"], route_class=GzipRoute)


@router.get("/health", summary="Liveness 存活检查")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness 就绪检查")
def ready(state: StateDep) -> dict[str, Any]:
    """Ready when the store answers and the lake folder is writable; reports the inbox backlog."""
    try:
        with state.app.store.unit_of_work() as session:
            session.execute(text("SELECT 1"))
            waiting, oldest = inbox.backlog(session)
    except Exception as exc:
        raise ApiError(503, "store_unavailable", f"store unreachable: {type(exc).__name__} (存储不可用)") from exc
    lake = state.app.settings.lake_dir
    lake.mkdir(parents=True, exist_ok=True)
    probe = lake / ".ready"
    try:
        probe.write_text("ok")
    except OSError as exc:
        raise ApiError(503, "lake_unavailable", f"lake not writable: {exc.strerror} (数据湖不可写)") from exc
    state.telemetry.pending.set(waiting)
    return {"status": "ready", "store": "ok", "lake": "ok", "inbox_pending": waiting, "inbox_oldest": oldest}


@router.get("/metrics", summary="Prometheus metrics 监控指标", response_class=Response)
def metrics(state: StateDep) -> Response:
    with state.app.store.unit_of_work() as session:
        state.telemetry.pending.set(inbox.backlog(session)[0])
    return Response(generate_latest(state.telemetry.registry), media_type=CONTENT_TYPE_LATEST)
