"""Journeys on PostgreSQL, on the `jb` brand (tests/fixtures/journey_brand.py): two workers running
the same store at once run each enrolment's steps once; an audience `leave` trigger enrols who
left. One workspace for the module. Times: T0 = 2026-03-01 10:00 Asia/Shanghai (02:00Z)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from fixtures.journey_brand import build, ids
from pgdb import postgres_database
from siyu.audiences.service import check_rule, do_create_audience
from siyu.audiences.snapshots import do_snapshot_audience, freeze_audience
from siyu.bootstrap import App, bootstrap
from siyu.core.actor import Actor
from siyu.journeys.apply import do_apply_journey
from siyu.journeys.models import Enrolment, EnrolmentStep
from siyu.journeys.runner import enrol_found, run_due
from siyu.messaging.models import OutboundMessage

pytestmark = pytest.mark.postgres
T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
USER = Actor.user("test")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, Path]]:
    root = tmp_path_factory.mktemp("journeys_pg")
    with postgres_database() as url:
        app = build(root, url)
        yield app, root
        app.store.engine.dispose()


def apply(ws: tuple[App, Path], code: str, text: str, at: dt.datetime = T0) -> None:
    app, root = ws
    path = root / f"{code}.yaml"
    path.write_text(text, encoding="utf-8")
    do_apply_journey(app, path, actor=USER, at=at)


def enrolled(app: App, code: str) -> dict[str, Enrolment]:
    back = {v: k for k, v in ids(app).items()}
    with app.store.unit_of_work() as s:
        return {back[e.customer_id]: e for e in s.scalars(select(Enrolment).where(Enrolment.journey == code))}


def test_two_workers_run_each_enrolment_once(ws: tuple[App, Path]) -> None:
    """30 enrolments (6 customers × 5 entries) of send → tag → send, run by two workers at once in
    batches of 2: every enrolment completes with exactly 3 step rows and 2 messages, keys distinct."""
    app = ws[0]
    apply(ws, "twice", """
brand: jb
code: twice
version: 1
name: {zh: 两个工人, en: Two workers}
category: transactional
trigger: {event: {type: never_happens}}
re_entry: always
templates:
  hi: {sms: {template_code: SMS_1}}
steps:
  - {id: first, send: {channel: sms, template: hi}}
  - {id: mark, tag: {add: vip}}
  - {id: second, send: {channel: sms, template: hi}}
""")  # fmt: skip
    customers = [c for c in ids(app).values() for _ in range(5)]
    found = pa.table({
        "customer_id": customers, "entry_key": [f"k{i}" for i in range(len(customers))],
        "props": ["{}"] * len(customers), "occurred_at": pa.array([T0] * len(customers), pa.timestamp("us", "UTC")),
    })  # fmt: skip
    assert len(enrol_found(app, "twice", found, T0)) == 30
    errors: list[BaseException] = []

    def worker() -> None:
        own = bootstrap(app.settings)  # a worker is a process of its own: its own engine connection
        try:
            run_due(own, T0, batch=2)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with app.store.unit_of_work() as s:
        status = dict(s.execute(select(Enrolment.status, func.count()).where(Enrolment.journey == "twice")
                                .group_by(Enrolment.status)).all())  # fmt: skip
        steps = s.execute(
            select(EnrolmentStep.enrolment_id, func.count()).where(EnrolmentStep.journey == "twice")
            .group_by(EnrolmentStep.enrolment_id)
        ).all()  # fmt: skip
        keys = s.scalars(select(OutboundMessage.idempotency_key).where(OutboundMessage.journey == "twice")).all()
    assert status == {"completed": 30}
    assert sorted(n for _, n in steps) == [3] * 30
    assert len(keys) == len(set(keys)) == 60


def test_audience_leave_enrols_who_left(ws: tuple[App, Path]) -> None:
    """Snapshot 1 of `born` holds the members (c1 c2 c4 c5 c6); the rule becomes members born in
    February (c2); snapshot 2: c1 c4 c5 c6 left and are enrolled, c2 is not."""
    app = ws[0]
    with app.store.begin(USER) as uow:
        do_create_audience(uow, "born", check_rule(app, "jb", {"membership": "member"}))
    apply(ws, "left", """
brand: jb
code: left
version: 1
name: {zh: 离开, en: Left}
category: marketing
trigger: {audience: {code: born, change: leave}}
steps:
  - {id: mark, tag: {add: vip}}
""")  # fmt: skip
    with app.store.begin(USER) as uow:
        do_snapshot_audience(uow, app.lake, freeze_audience(app, "jb", "born"))
    run_due(app, T0 + dt.timedelta(hours=1))
    assert enrolled(app, "left") == {}  # the first snapshot after apply is the baseline
    rule = {"all": [{"membership": "member"}, {"attribute": "birthday_month", "op": "=", "value": 2}]}
    with app.store.begin(USER) as uow:
        do_create_audience(uow, "born", check_rule(app, "jb", rule), replace=True)
    with app.store.begin(USER) as uow:
        do_snapshot_audience(uow, app.lake, freeze_audience(app, "jb", "born"))
    run_due(app, T0 + dt.timedelta(hours=2))
    assert set(enrolled(app, "left")) == {"c1", "c4", "c5", "c6"}
