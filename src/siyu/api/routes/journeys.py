"""Journeys (营销旅程) over HTTP: the same services as `siyu journey …`. Reads need `read`;
enrolling a customer and pausing need `admin`. A key sees only its brand's journeys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from siyu.api.deps import ComputeDep, ReadKey, require
from siyu.api.keys import KeyInfo
from siyu.api.schemas.request import RequestBody
from siyu.api.scope import check_customer, narrowed
from siyu.core.actor import Actor
from siyu.journeys.apply import do_set_status, find_journey, list_journeys
from siyu.journeys.errors import UnknownJourneyError
from siyu.journeys.manual import enrol_customer, resolve_customer
from siyu.journeys.report import journey_report

router = APIRouter(tags=["journeys 营销旅程"])
AdminKey = Annotated[KeyInfo, Depends(require("admin"))]


class EnrolmentCreate(RequestBody):
    customer: str = Field(min_length=1, max_length=200, description="Customer id, phone or member no")
    key: str = Field("manual", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-:.]+$",
                     description="Idempotency key: the same key enrols once")  # fmt: skip


def _own(app: ComputeDep, key: KeyInfo, code: str) -> None:
    with app.store.unit_of_work() as session:
        if find_journey(session, code).brand != key.brand:
            raise UnknownJourneyError(f"no journey {code!r} in brand {key.brand} (未找到旅程)")


@router.get("/api/v1/journeys", summary="Journeys 旅程列表")
def journeys(key: ReadKey, app: ComputeDep) -> dict[str, Any]:
    with app.store.unit_of_work() as session:
        return {"journeys": [j for j in list_journeys(session) if j["brand"] == key.brand]}


@router.get("/api/v1/journeys/{code}/report", summary="Journey report 旅程报告")
def report(code: str, key: ReadKey, app: ComputeDep) -> dict[str, Any]:
    _own(app, key, code)
    with app.store.unit_of_work() as session:
        return journey_report(session, code)


@router.post("/api/v1/journeys/{code}/enrolments", summary="Enrol a customer 加入旅程 (idempotent)")
def enrol(code: str, body: EnrolmentCreate, key: AdminKey, app: ComputeDep) -> dict[str, Any]:
    _own(app, key, code)
    if narrowed(key):  # a store- or guide-bound key enrols only the customers it may see
        check_customer(app, key, resolve_customer(app, key.brand, body.customer))
    return enrol_customer(app, code, body.customer, app.clock(), key=body.key)


@router.post("/api/v1/journeys/{code}/pause", summary="Pause a journey 暂停旅程")
def pause(code: str, key: AdminKey, app: ComputeDep) -> dict[str, Any]:
    _own(app, key, code)
    with app.store.begin(Actor.api_key(key.id)) as uow:
        return do_set_status(uow, code, "paused")
