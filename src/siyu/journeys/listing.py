"""The journeys a customer is or was in (the customer view), and every journey's enrolment counts
(the console's list)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.journeys.models import Enrolment


def customer_journeys(app: App, brand: str, customer_id: str) -> list[dict[str, Any]]:
    """The journeys a customer is or was in (the customer view)."""
    with app.store.unit_of_work() as session:
        rows = session.execute(
            select(Enrolment)
            .where(Enrolment.brand == brand, Enrolment.customer_id == customer_id)
            .order_by(Enrolment.entered_at.desc(), Enrolment.id.desc())
            .limit(50)
        ).scalars()
        return [
            {
                "journey": e.journey, "version": e.version, "status": e.status, "step": e.step_id,
                "entered_at": e.entered_at, "holdout": e.holdout, "converted": e.converted_at is not None,
            }
            for e in rows
        ]  # fmt: skip


def enrolment_context(app: App, journey: str, customer_id: str) -> dict[str, Any]:
    """The context of the customer's latest enrolment in `journey` ({} if never enrolled)."""
    with app.store.unit_of_work() as session:
        raw = session.scalar(
            select(Enrolment.context)
            .where(Enrolment.journey == journey, Enrolment.customer_id == customer_id)
            .order_by(Enrolment.entered_at.desc(), Enrolment.id.desc())
            .limit(1)
        )
    return dict(json.loads(raw or "{}"))


def enrolment_counts(session: Session, brand: str) -> dict[str, dict[str, int]]:
    """Per journey of `brand`: enrolled, active, completed and exited (one grouped query; the list
    page shows every journey's counts without a report each)."""
    counts: dict[str, dict[str, int]] = {}
    for journey, status, n in session.execute(
        select(Enrolment.journey, Enrolment.status, func.count())
        .where(Enrolment.brand == brand)
        .group_by(Enrolment.journey, Enrolment.status)
    ):
        row = counts.setdefault(journey, dict.fromkeys(("enrolled", "active", "completed", "exited"), 0))
        row["enrolled"] += n
        if status in row:
            row[status] += n
    return counts
