"""The guide workbench (导购工作台): `/api/v1/guides/me/…` for a key bound to a staff member
(`siyu keys create --brand B --scope read --staff ID`). A guide sees only the customers bound to
them and their own tasks; a store manager also sees their store's unassigned tasks. A task the key
may not see answers 404, like one that does not exist."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from siyu.api.deps import StateDep, require
from siyu.api.errors import REQUEST_ID, ApiError
from siyu.api.keys import KeyInfo
from siyu.api.schemas.request import RequestBody
from siyu.core.actor import Actor
from siyu.guides.models import CurrentBinding, StaffMember
from siyu.guides.tasks import do_mark_done, list_tasks

router = APIRouter(tags=["guides 导购工作台"])


async def guide_key(key: Annotated[KeyInfo, Depends(require("read"))]) -> KeyInfo:
    if key.staff_id is None:
        raise ApiError(
            403,
            "forbidden",
            "not a guide workbench key: create one with `siyu keys create --staff ID` (非导购工作台密钥)",
        )
    return key


GuideKey = Annotated[KeyInfo, Depends(guide_key)]
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Task id")]  # a 64-bit id, never an overflow


class BoundCustomer(BaseModel):
    customer_id: str
    store_code: str | None
    source: str
    since: dt.datetime
    locked_until: dt.datetime | None


class TaskPublic(BaseModel):
    id: int
    customer_id: str | None
    assignee_staff_id: str | None
    store_code: str | None
    kind: str
    title: str
    body: str | None
    due_at: dt.datetime | None
    status: str
    result: str | None
    done_at: dt.datetime | None


class TaskDone(RequestBody):
    result: str | None = None


def _manager_store(state: StateDep, key: KeyInfo) -> str | None:
    with state.app.store.unit_of_work() as session:
        me = session.get(StaffMember, (key.brand, key.staff_id))
    return me.store_code if me is not None and me.role == "manager" else None


@router.get("/api/v1/guides/me/customers", summary="My customers 我的客户")
def my_customers(key: GuideKey, state: StateDep) -> list[BoundCustomer]:
    with state.app.store.unit_of_work() as session:
        rows = session.scalars(
            select(CurrentBinding)
            .where(CurrentBinding.brand == key.brand, CurrentBinding.staff_id == key.staff_id)
            .order_by(CurrentBinding.since.desc(), CurrentBinding.customer_id)
        ).all()
        return [BoundCustomer.model_validate(r, from_attributes=True) for r in rows]


@router.get("/api/v1/guides/me/tasks", summary="My tasks 我的任务")
def my_tasks(
    key: GuideKey, state: StateDep, status: Annotated[str | None, Query(pattern="^(open|done|cancelled)$")] = None
) -> list[TaskPublic]:
    store = _manager_store(state, key)
    with state.app.store.unit_of_work() as session:
        tasks = list_tasks(session, key.brand, key.staff_id, status, store)
    return [TaskPublic.model_validate(t) for t in tasks]


@router.post("/api/v1/guides/me/tasks/{task_id}/done", summary="Mark my task done 完成任务")
def mark_done(task_id: TaskId, body: TaskDone, key: GuideKey, state: StateDep, request: Request) -> TaskPublic:
    assert key.staff_id is not None
    store = _manager_store(state, key)
    actor = Actor.api_key(key.id)
    with state.app.store.begin(actor, request_id=request.scope.get(REQUEST_ID)) as uow:
        task = do_mark_done(uow, task_id, body.result, visible_to=(key.brand, key.staff_id, store))
    return TaskPublic.model_validate(task)
