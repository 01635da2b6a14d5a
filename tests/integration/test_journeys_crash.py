"""Exactly once under SIGKILL: `siyu journey run` (a real process) is killed mid-way, then run
again; every enrolment has made each transition once and has one outbound message per send step,
on SQLite and on PostgreSQL. Enrolments are inserted straight into the store (the state the
triggers leave), so the test needs no lake data."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.journeys.apply import do_apply_journey
from siyu.journeys.models import Enrolment, EnrolmentStep
from siyu.messaging.models import OutboundMessage

N = 200
T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
JOURNEY = """
brand: kb
code: crashy
version: 1
name: {zh: 崩溃, en: Crashy}
category: transactional
timezone: Asia/Shanghai
trigger: {event: {type: never_happens}}
templates:
  a: {sms: {template_code: SMS_A}}
  b: {email: {subject: b, body: b}}
steps:
  - {id: first, send: {channel: sms, template: a}}
  - {id: second, send: {channel: email, template: b}}
  - {id: hook, webhook: {url: "https://hooks.example.com/k", body: {}}}
"""


def _count(app: App, query) -> int:  # type: ignore[no-untyped-def]
    with app.store.unit_of_work() as s:
        return int(s.scalar(query) or 0)


def test_a_killed_journey_run_neither_loses_nor_duplicates(app: App, tmp_path: Path) -> None:
    path = tmp_path / "crashy.yaml"
    path.write_text(JOURNEY, encoding="utf-8")
    do_apply_journey(app, path, actor=Actor.user("test"), at=T0)
    with app.store.begin(Actor.user("test"), now=T0) as uow:
        ids = uow.session.execute(
            insert(Enrolment).returning(Enrolment.id),
            [
                {"journey": "crashy", "version": 1, "brand": "kb", "customer_id": f"k{i:05d}", "entry_key": "x",
                 "status": "active", "holdout": False, "step_id": "first", "step_seq": 1, "due_at": T0,
                 "context": "{}", "entered_at": T0}
                for i in range(N)
            ],
        ).scalars().all()  # fmt: skip
        uow.session.execute(
            insert(EnrolmentStep),
            [{"enrolment_id": i, "seq": 1, "journey": "crashy", "step_id": "first", "entered_at": T0} for i in ids],
        )
    env = {**os.environ, "SIYU_HOME": str(app.settings.home), "SIYU_DATABASE_URL": app.settings.store_url}
    command = [sys.executable, "-m", "siyu", "journey", "run", "--now", "2026-03-01T10:00:00+08:00", "--batch", "10"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once part of the work is done, not before, not after
        done = _count(app, select(func.count()).select_from(Enrolment).where(Enrolment.status == "completed"))
        if done >= N // 5:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = _count(app, select(func.count()).select_from(Enrolment).where(Enrolment.status == "completed"))
    assert N // 5 <= finished < N, "the kill must land mid-way"
    again = subprocess.run(command, env=env, capture_output=True, check=False)
    assert again.returncode == 0, again.stderr.decode()
    assert _count(app, select(func.count()).select_from(Enrolment).where(Enrolment.status == "completed")) == N
    # one message per customer per send step, each step entered exactly once per enrolment
    assert _count(app, select(func.count()).select_from(OutboundMessage)) == 3 * N
    assert _count(app, select(func.count(func.distinct(OutboundMessage.idempotency_key)))) == 3 * N
    assert _count(app, select(func.count()).select_from(EnrolmentStep)) == 3 * N
    with app.store.unit_of_work() as s:
        per = s.execute(
            select(EnrolmentStep.step_id, func.count(), func.count(EnrolmentStep.left_at)).group_by(
                EnrolmentStep.step_id
            )
        ).all()
    assert sorted(per) == [("first", N, N), ("hook", N, N), ("second", N, N)]
