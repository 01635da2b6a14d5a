"""Guide tasks: created exactly once per idempotency key in the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from siyu.guides.models import GuideTask
from siyu.store.uow import UnitOfWork


@dataclass(frozen=True)
class TaskRequest:
    brand: str
    customer_id: str | None
    kind: str  # journey | churn_alert | sop | manual
    title: str
    idempotency_key: str
    assignee_staff_id: str | None = None  # None: the customer's bound guide, else their store
    store_code: str | None = None
    body: str | None = None
    source: str | None = None
    due_at: dt.datetime | None = None


def do_create_task(uow: UnitOfWork, request: TaskRequest) -> tuple[int, bool]:
    """(task id, created). A replay of the same key returns the first task and creates nothing."""
    s = uow.session
    existing = s.scalar(select(GuideTask.id).where(GuideTask.idempotency_key == request.idempotency_key))
    if existing is not None:
        return existing, False
    task = GuideTask(
        idempotency_key=request.idempotency_key,
        brand=request.brand,
        customer_id=request.customer_id,
        assignee_staff_id=request.assignee_staff_id,
        store_code=request.store_code,
        kind=request.kind,
        title=request.title,
        body=request.body,
        source=request.source,
        due_at=request.due_at,
        status="open",
        created_at=uow.now,
    )
    s.add(task)
    s.flush()
    uow.audit("task.create", "guide_task", str(task.id), brand=request.brand, after={"kind": request.kind})
    return task.id, True
