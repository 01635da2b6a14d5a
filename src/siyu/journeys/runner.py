"""Running journeys: enrol what the triggers found, notice awaited events, and move due enrolments
on, a small batch per transaction.

Due enrolments are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL (two workers split the
work, neither waits for the other) and under SQLite's single write lock otherwise. A batch is one
unit of work: every transition in it commits with its side effects or not at all, so a worker
killed at any moment leaves each enrolment where it was, to be run again whole. Batches are small
and short, so 100,000 steps due at once never hold the store for long (the API's writes
interleave between batches).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import ibis
import pyarrow as pa
from sqlalchemy import select, update

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.journeys.apply import load_version
from siyu.journeys.batch import EnrolmentState, aware, claim_due, write_back, write_log
from siyu.journeys.definition import Journey
from siyu.journeys.enrol import enrol
from siyu.journeys.machine import StepLog, Walk
from siyu.journeys.models import Enrolment, JourneyRow
from siyu.journeys.rules import Answers, rule_holds
from siyu.journeys.sources import occurrences
from siyu.journeys.triggers import candidates, zone_of

log = logging.getLogger("siyu.journeys")
ACTOR = Actor.system("journeys")
BATCH = 200
# Triggers found by the domain event handler (not by a lake scan).
HANDLER_TRIGGERS = frozenset({"tier_changed"})


@dataclass
class RunStats:
    enrolled: int = 0
    transitions: int = 0
    batches: int = 0
    matched: int = 0
    converted: int = 0
    by_journey: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "enrolled": self.enrolled, "transitions": self.transitions, "batches": self.batches,
            "events_matched": self.matched, "converted": self.converted,
        }  # fmt: skip


def _utc(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC)


def _journeys(app: App, brands: set[str] | None = None) -> list[tuple[JourneyRow, Journey]]:
    with app.store.unit_of_work() as session:
        query = select(JourneyRow).where(JourneyRow.status == "active")
        if brands is not None:
            query = query.where(JourneyRow.brand.in_(brands))
        return [(r, load_version(session, r.code, r.version)) for r in session.scalars(query)]


def scan_triggers(app: App, now: dt.datetime, brands: set[str] | None = None, kinds: set[str] | None = None) -> int:
    """Enrol everyone the active journeys' triggers found since their marks."""
    now, total = _utc(now), 0
    for row, journey in _journeys(app, brands):
        if kinds is not None and journey.trigger.kind not in kinds:
            continue
        if journey.trigger.event is not None and journey.trigger.event.type in HANDLER_TRIGGERS:
            continue
        found, mark = candidates(app, journey, row.trigger_mark, aware(row.backfill_from), now)
        with app.store.begin(ACTOR, now=now) as uow:
            locked = uow.session.get(JourneyRow, row.code, with_for_update=True)
            if locked is None or locked.trigger_mark != row.trigger_mark or locked.status != "active":
                continue  # another worker moved it meanwhile: its scan enrolled these
            total += len(enrol(uow, journey, found))
            locked.trigger_mark = mark
    return total


def enrol_found(app: App, code: str, found: pa.Table, now: dt.datetime) -> list[int]:
    """Enrol given candidates (the handler's tier changes, `siyu journey enrol`, the API)."""
    with app.store.begin(ACTOR, now=_utc(now)) as uow:
        row = uow.session.get(JourneyRow, code, with_for_update=True)
        assert row is not None
        return enrol(uow, load_version(uow.session, code, row.version), found)


def match_waits(app: App, now: dt.datetime) -> int:
    """Enrolments in a `wait_for` whose event arrived (before the timeout): due now, path "event"."""
    now = _utc(now)
    with app.store.unit_of_work() as session:
        rows = session.execute(
            select(
                Enrolment.id, Enrolment.journey, Enrolment.version, Enrolment.step_id, Enrolment.brand,
                Enrolment.customer_id, Enrolment.context, Enrolment.waiting_since,
            ).where(Enrolment.status == "active", Enrolment.waiting_since.is_not(None), Enrolment.wait_result.is_(None))
        ).all()  # fmt: skip
        specs = {key: load_version(session, *key) for key in {(r.journey, r.version) for r in rows}}
    groups: dict[tuple[str, int, str], list[dict[str, object]]] = defaultdict(list)
    for r in rows:
        step = specs[(r.journey, r.version)].step(r.step_id)
        if step.wait_for is None:
            continue
        value = json.loads(r.context or "{}").get(step.wait_for.match) if step.wait_for.match else None
        groups[(r.journey, r.version, r.step_id)].append(
            {
                "id": r.id,
                "customer_id": r.customer_id,
                "since": aware(r.waiting_since),
                "value": None if value is None else str(value),
            }
        )
    matched = 0
    for (code, version, step_id), waiting in groups.items():
        spec = specs[(code, version)]
        wf = spec.step(step_id).wait_for
        assert wf is not None
        events = occurrences(app, spec.brand, wf.event, wf.where, wf.match)
        if events is None:
            continue
        table = ibis.memtable(
            pa.table(
                {
                    "id": pa.array([w["id"] for w in waiting], pa.int64()),
                    "w_customer": pa.array([w["customer_id"] for w in waiting], pa.string()),
                    "since": pa.array([w["since"] for w in waiting], pa.timestamp("us", "UTC")),
                    "value": pa.array([w["value"] for w in waiting], pa.string()),
                }
            )
        )
        timeout = ibis.interval(seconds=int(wf.timeout.delta().total_seconds()))
        cond = [
            table.w_customer == events.customer_id,
            events.occurred_at >= table.since,
            events.occurred_at <= table.since + timeout,
        ]
        if wf.match:
            cond.append(events.match_value == table.value)
        hits = app.engine.to_arrow(table.join(events, cond).select("id").distinct())["id"].to_pylist()
        if not hits:
            continue
        with app.store.begin(ACTOR, now=now) as uow:
            result = uow.session.execute(
                update(Enrolment)
                .where(Enrolment.id.in_(hits), Enrolment.wait_result.is_(None), Enrolment.step_id == step_id,
                       Enrolment.status == "active")
                .values(wait_result="event", due_at=now)
            )  # fmt: skip
            matched += getattr(result, "rowcount", 0) or 0
    return matched


def advance_batch(app: App, now: dt.datetime, limit: int = BATCH, answers: Answers | None = None) -> tuple[int, int]:
    """Claim up to `limit` due enrolments and move each as far as it goes; returns (enrolments
    claimed, transitions made); (0, 0): nothing due."""
    now = _utc(now)
    with app.store.begin(ACTOR, now=now) as uow:
        session = uow.session
        claimed = claim_due(session, now, limit)
        if not claimed:
            return 0, 0
        specs = {key: load_version(session, *key) for key in {(e.journey, e.version) for e in claimed}}
        zones = {code: zone_of(app, spec) for (code, _), spec in specs.items()}
        walk = Walk(uow, StepLog(), zones)
        pending = claimed
        while pending:  # rounds: walk everyone, answer the branches they stopped at, walk on
            asking: dict[tuple[str, int, str], list[EnrolmentState]] = defaultdict(list)
            for e in pending:
                at = walk.advance(e, specs[(e.journey, e.version)])
                if at is not None:
                    asking[(e.journey, e.version, at)].append(e)
            pending = []
            for (code, version, step_id), group in asking.items():
                spec = specs[(code, version)]
                branch = spec.step(step_id).branch
                assert branch is not None
                who = [e.customer_id for e in group]
                yes = rule_holds(
                    app, spec.brand, zones[code], branch.rule, who, now, answers if answers is not None else {}
                )
                walk.answers.update({e.id: e.customer_id in yes for e in group})
                pending.extend(group)
        walk.queue_sends()
        write_back(session, claimed)
        write_log(session, list(walk.log.opened.values()), list(walk.log.closed.values()))
        return len(claimed), walk.log.transitions


def run_due(app: App, now: dt.datetime, *, batch: int = BATCH, max_batches: int | None = None) -> RunStats:
    """One pass: triggers, awaited events, every due step (batch by batch), goals."""
    from siyu.journeys.goals import track_goals

    stats = RunStats()
    stats.enrolled = scan_triggers(app, now)
    stats.matched = match_waits(app, now)
    answers: Answers = {}
    while max_batches is None or stats.batches < max_batches:
        claimed, transitions = advance_batch(app, now, batch, answers)
        if claimed == 0:
            break
        stats.batches += 1
        stats.transitions += transitions
    stats.converted = track_goals(app, now)
    return stats


def run_loop(app: App, stop: threading.Event | None = None, every: float = 2.0) -> None:
    """`siyu journey run` and `siyu worker`: a pass every `every` seconds until `stop` is set. A
    failing pass is logged by type (messages can carry personal data) and retried."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            run_due(app, app.clock())
        except Exception as error:  # retried next pass: every transition is whole or absent
            log.error("journey pass failed: %s", type(error).__name__)
        stop.wait(every)
