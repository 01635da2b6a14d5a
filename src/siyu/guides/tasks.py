"""Guide tasks: created exactly once per idempotency key in the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.core.errors import NotFoundError
from siyu.guides.bindings import current_guide
from siyu.guides.models import CustomerStore, GuideTask
from siyu.store.uow import UnitOfWork

STATUSES = ("open", "done", "cancelled")


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
    assignee, store = assignee_of(s, request)
    task = GuideTask(
        idempotency_key=request.idempotency_key,
        brand=request.brand,
        customer_id=request.customer_id,
        assignee_staff_id=assignee,
        store_code=store,
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


def assignee_of(session: Session, request: TaskRequest) -> tuple[str | None, str | None]:
    """(staff, store) a task goes to: the named assignee; else the customer's bound guide (of the
    request's store, if it names one) and their store; else nobody, at the request's store or the
    customer's home store (a store-level task: the store's managers see it)."""
    if request.assignee_staff_id is not None or request.customer_id is None:
        return request.assignee_staff_id, request.store_code
    guide = current_guide(session, request.brand, request.customer_id, request.store_code)
    if guide is not None:
        return guide.staff_id, request.store_code or guide.store_code
    if request.store_code is not None:
        return None, request.store_code
    home = session.get(CustomerStore, (request.brand, request.customer_id))
    return None, home.store_code if home else None


def list_tasks(
    session: Session,
    brand: str | None = None,
    staff_id: str | None = None,
    status: str | None = None,
    store_code: str | None = None,
    limit: int = 1000,
) -> list[dict[str, object]]:
    """Tasks, newest due first; `staff_id` and `store_code` together: the staff member's own tasks
    and the unassigned tasks of their store (what a manager's workbench shows)."""
    q = select(GuideTask)
    if brand:
        q = q.where(GuideTask.brand == brand)
    if staff_id and store_code:
        q = q.where(
            (GuideTask.assignee_staff_id == staff_id)
            | (GuideTask.assignee_staff_id.is_(None) & (GuideTask.store_code == store_code))
        )
    elif staff_id:
        q = q.where(GuideTask.assignee_staff_id == staff_id)
    elif store_code:
        q = q.where(GuideTask.store_code == store_code)
    if status:
        q = q.where(GuideTask.status == status)
    q = q.order_by(GuideTask.due_at.is_(None), GuideTask.due_at, GuideTask.id).limit(limit)
    return [public(t) for t in session.scalars(q)]


def public(t: GuideTask) -> dict[str, object]:
    return {
        "id": t.id,
        "brand": t.brand,
        "customer_id": t.customer_id,
        "assignee_staff_id": t.assignee_staff_id,
        "store_code": t.store_code,
        "kind": t.kind,
        "title": t.title,
        "body": t.body,
        "source": t.source,
        "due_at": t.due_at,
        "status": t.status,
        "result": t.result,
        "created_at": t.created_at,
        "done_at": t.done_at,
    }


class TaskNotFoundError(NotFoundError):
    """A task that does not exist, or that the workbench caller may not see (both 404)."""


def do_mark_done(
    uow: UnitOfWork,
    task_id: int,
    result: str | None = None,
    *,
    visible_to: tuple[str, str, str | None] | None = None,
) -> dict[str, object]:
    """Mark a task done (again: unchanged). `visible_to` = (brand, staff_id, manager's store_code)
    of a workbench caller: a task they may not see is reported as not found, never as forbidden."""
    task = uow.session.get(GuideTask, task_id)
    if task is not None and visible_to is not None:
        brand, staff, store = visible_to
        own = task.assignee_staff_id == staff
        store_task = task.assignee_staff_id is None and store is not None and task.store_code == store
        task = task if task.brand == brand and (own or store_task) else None
    if task is None:
        raise TaskNotFoundError(f"no task {task_id} (任务不存在); see `siyu guides tasks list`")
    if task.status != "done":
        before = {"status": task.status}
        task.status, task.result, task.done_at = "done", result, uow.now
        uow.audit(
            "task.done",
            "guide_task",
            str(task.id),
            brand=task.brand,
            before=before,
            after={"status": "done", "result": result},
        )
    return public(task)
