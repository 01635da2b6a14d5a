"""Enrolling one customer by hand (`siyu journey enrol`, `POST /api/v1/journeys/{code}/enrolments`):
idempotent by its key (default "manual"): the same request twice returns the first enrolment."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from siyu.bootstrap import App
from siyu.customers.view import find_customer_ids
from siyu.journeys.apply import find_journey
from siyu.journeys.errors import JourneyError, JourneyStateError
from siyu.journeys.models import Enrolment
from siyu.journeys.runner import enrol_found


def resolve_customer(app: App, brand: str, key: str) -> str:
    """The brand's one customer with this id, phone or member no."""
    found = find_customer_ids(app, key, brand)
    if len(found) != 1:
        what = "no customer" if not found else f"{len(found)} customers"
        raise JourneyError(f"{what} of brand {brand!r} match {key!r}: give a customer id (客户不唯一或不存在)")
    return found[0]


def enrol_customer(app: App, code: str, customer_key: str, now: dt.datetime, key: str = "manual") -> dict[str, Any]:
    with app.store.unit_of_work() as session:
        row = find_journey(session, code)
        brand, status = row.brand, row.status
    if status != "active":
        raise JourneyStateError(f"journey {code!r} is {status}: resume it first (旅程未启用)")
    customer = resolve_customer(app, brand, customer_key)
    entry_key = f"manual:{key}"
    found = pa.table(
        {
            "customer_id": pa.array([customer], pa.string()),
            "entry_key": pa.array([entry_key], pa.string()),
            "occurred_at": pa.array([now], pa.timestamp("us", "UTC")),
            "props": pa.array(["{}"], pa.string()),
        }
    )
    new = enrol_found(app, code, found, now)
    with app.store.unit_of_work() as session:
        existing = session.execute(
            select(Enrolment.id, Enrolment.status, Enrolment.version).where(
                Enrolment.journey == code, Enrolment.customer_id == customer, Enrolment.entry_key == entry_key
            )
        ).first()
    if existing is None:
        return {"journey": code, "customer_id": customer, "enrolled": False, "reason": "re_entry_rule"}
    return {
        "journey": code, "customer_id": customer, "enrolled": True, "created": bool(new),
        "enrolment_id": existing.id, "version": existing.version, "status": existing.status,
    }  # fmt: skip
