"""`siyu journey report`: enrolments by state, each step's traffic, messages by channel and status
(from outbound_messages), and the goal with its holdout uplift.

The uplift's 95 % interval is Newcombe's hybrid score interval for a difference of two
independent proportions (Newcombe 1998, method 10: Wilson intervals of each rate combined); unlike
the Wald interval it stays inside [-1, 1] and behaves with few conversions or small holdouts.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from siyu.journeys.apply import find_journey, load_version
from siyu.journeys.models import Enrolment, EnrolmentStep
from siyu.messaging.models import OutboundMessage

Z95 = 1.959963984540054
SEND_KEYS = ("sent", "delivered", "failed", "suppressed")


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """95 % interval for p1 − p2 (None when a group is empty)."""
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    return (
        round(d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), 6),
        round(d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2), 6),
    )


def _rate(x: int, n: int) -> float | None:
    return round(x / n, 6) if n else None


def journey_report(session: Session, code: str) -> dict[str, Any]:
    row = find_journey(session, code)
    spec = load_version(session, code, row.version)
    states = dict(
        session.execute(
            select(Enrolment.status, func.count()).where(Enrolment.journey == code).group_by(Enrolment.status)
        ).all()
    )
    steps: dict[str, dict[str, int]] = {s.id: {"entered": 0, "waiting": 0, "completed": 0} for s in spec.steps}
    for logged_step, entered, left in session.execute(
        select(EnrolmentStep.step_id, func.count(), func.count(EnrolmentStep.left_at))
        .where(EnrolmentStep.journey == code)
        .group_by(EnrolmentStep.step_id)
    ):
        steps.setdefault(logged_step, {"entered": 0, "waiting": 0, "completed": 0})
        steps[logged_step].update(entered=entered, completed=left)
    for step_id, n in session.execute(
        select(Enrolment.step_id, func.count())
        .where(Enrolment.journey == code, Enrolment.status == "active")
        .group_by(Enrolment.step_id)
    ):
        if step_id is not None:
            steps.setdefault(step_id, {"entered": 0, "waiting": 0, "completed": 0})["waiting"] = n
    sends: dict[str, dict[str, int]] = {}
    for channel, status, n in session.execute(
        select(OutboundMessage.channel, OutboundMessage.status, func.count())
        .where(OutboundMessage.journey == code)
        .group_by(OutboundMessage.channel, OutboundMessage.status)
    ):
        counts = sends.setdefault(channel, dict.fromkeys(SEND_KEYS, 0))
        if status in ("sent", "delivered"):  # a delivered message was sent too
            counts["sent"] += n
        if status in ("delivered", "failed", "suppressed"):
            counts[status] += n
    treated, treated_conv, held, held_conv = session.execute(
        select(
            func.count(case((Enrolment.holdout.is_(False), 1))),
            func.count(case(((Enrolment.holdout.is_(False)) & Enrolment.converted_at.is_not(None), 1))),
            func.count(case((Enrolment.holdout.is_(True), 1))),
            func.count(case(((Enrolment.holdout.is_(True)) & Enrolment.converted_at.is_not(None), 1))),
        ).where(Enrolment.journey == code)
    ).one()
    rate, holdout_rate = _rate(treated_conv, treated), _rate(held_conv, held)
    return {
        "journey": code,
        "version": row.version,
        "status": row.status,
        "enrolled": sum(states.values()),
        "active": states.get("active", 0),
        "completed": states.get("completed", 0),
        "exited": states.get("exited", 0),
        "steps": steps,
        "sends": sends,
        "goal": {
            "converted": treated_conv,
            "rate": rate,
            "holdout_size": held,
            "holdout_converted": held_conv,
            "holdout_rate": holdout_rate,
            "uplift": None if rate is None or holdout_rate is None else round(rate - holdout_rate, 6),
            "ci95": newcombe(treated_conv, treated, held_conv, held),
            "ci95_method": "newcombe_hybrid_score",
        },
    }
