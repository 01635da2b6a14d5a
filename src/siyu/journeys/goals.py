"""Goal tracking: an enrolment converts when its customer reaches the journey's goal (an event, or
an audience rule) within `within_days` of entering. Holdout enrolments are tracked the same way,
which is what makes the uplift measurable (siyu.journeys.report)."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
from sqlalchemy import select, update

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.journeys.apply import load_version
from siyu.journeys.batch import aware
from siyu.journeys.models import Enrolment, JourneyRow
from siyu.journeys.sources import occurrences

ACTOR = Actor.system("journeys")


def track_goals(app: App, now: dt.datetime) -> int:
    """Mark the enrolments that reached their goal; returns how many converted in this pass."""
    from siyu.journeys.rules import branch_answers
    from siyu.journeys.triggers import zone_of

    now = now.astimezone(dt.UTC)
    converted = 0
    with app.store.unit_of_work() as session:
        journeys = [(r.code, load_version(session, r.code, r.version)) for r in session.scalars(select(JourneyRow))]
    for code, spec in journeys:
        if spec.goal is None:
            continue
        window = dt.timedelta(days=spec.goal.within_days)
        with app.store.unit_of_work() as session:
            rows = session.execute(
                select(Enrolment.id, Enrolment.customer_id, Enrolment.entered_at).where(
                    Enrolment.journey == code, Enrolment.converted_at.is_(None), Enrolment.entered_at >= now - window
                )
            ).all()
        if not rows:
            continue
        hits: dict[int, dt.datetime] = {}
        if spec.goal.event is not None:
            events = occurrences(app, spec.brand, spec.goal.event, spec.goal.where)
            if events is None:
                continue
            table = ibis.memtable(
                pa.table(
                    {
                        "id": pa.array([r.id for r in rows], pa.int64()),
                        "e_customer": pa.array([r.customer_id for r in rows], pa.string()),
                        "entered": pa.array([aware(r.entered_at) for r in rows], pa.timestamp("us", "UTC")),
                    }
                )
            )
            joined = table.join(
                events,
                [table.e_customer == events.customer_id, events.occurred_at >= table.entered,
                 events.occurred_at <= table.entered + ibis.interval(days=spec.goal.within_days),
                 events.occurred_at <= now],
            )  # fmt: skip
            first = app.engine.to_arrow(joined.group_by("id").agg(at=joined.occurred_at.min()))
            hits = dict(zip(first["id"].to_pylist(), first["at"].to_pylist(), strict=True))
        else:
            yes = branch_answers(
                app, spec.brand, zone_of(app, spec), spec.goal.rule, [r.customer_id for r in rows], now
            )
            hits = {r.id: now for r in rows if r.customer_id in yes}
        if not hits:
            continue
        with app.store.begin(ACTOR, now=now) as uow:
            uow.session.execute(
                update(Enrolment),
                [{"id": i, "converted_at": aware(at)} for i, at in hits.items()],
            )
        converted += len(hits)
    return converted
