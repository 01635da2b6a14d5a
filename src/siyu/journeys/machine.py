"""The state machine: moving one enrolment through its steps inside a unit of work.

An enrolment sits at a step (`step_id`) until `due_at`. Running it at or after `due_at`:
- `wait` / `wait_for` on arrival set `waiting_since` and `due_at` (the end of the wait, the
  timeout) and stop; when due they leave by `next` (wait) or by the outcome path (wait_for:
  `wait_result` "event" if a matching event was seen, else the timeout path);
- `branch` needs the rule's answer for this customer now: the walk stops and asks the caller,
  who evaluates the rule for every enrolment waiting at that step in one engine query;
- `split` goes the customer's deterministic bucket's way; `exit` ends the enrolment;
- effect steps (send, coupon, points, tag, task, webhook) apply their effect (or, in the holdout,
  record `skipped:holdout`) and go on.
Every step entered is one transition: a step-log row, written in the same transaction as the
effect, so a transition happens completely or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from siyu.core.errors import SiyuError
from siyu.journeys.batch import EnrolmentState
from siyu.journeys.definition import EFFECT_KINDS, Journey, Step
from siyu.journeys.effects import apply_effect, send_outcome, send_request
from siyu.journeys.enrol import bucket
from siyu.journeys.timing import wait_until
from siyu.messaging.enqueue import SendRequest, enqueue_many
from siyu.store.uow import UnitOfWork

MAX_STEPS = 50  # per enrolment per run: a loop without a wait in it must not spin forever


@dataclass
class StepLog:
    """Step-log writes of one batch: rows opened in it (inserted whole at the end) and rows of
    earlier runs closed in it (updated by primary key)."""

    opened: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    closed: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    transitions: int = 0

    def enter(self, e: EnrolmentState, step_id: str, now: dt.datetime) -> None:
        self.opened[(e.id, e.step_seq)] = {
            "enrolment_id": e.id, "seq": e.step_seq, "journey": e.journey, "step_id": step_id,
            "entered_at": now, "left_at": None, "outcome": None,
        }  # fmt: skip
        self.transitions += 1

    def leave(self, e: EnrolmentState, now: dt.datetime, outcome: str) -> None:
        row = self.opened.get((e.id, e.step_seq))
        if row is not None:
            row["left_at"], row["outcome"] = now, outcome[:200]
        else:
            self.closed[(e.id, e.step_seq)] = {
                "enrolment_id": e.id, "seq": e.step_seq, "left_at": now, "outcome": outcome[:200],
            }  # fmt: skip

    def settle(self, step: tuple[int, int], outcome: str) -> None:
        """Replace the placeholder outcome of a step left earlier in this batch."""
        (self.opened.get(step) or self.closed[step])["outcome"] = outcome[:200]


QUEUED = "queueing"  # a send's outcome until the batch's messages are queued (Walk.queue_sends)


@dataclass
class Walk:
    """One batch: the unit of work, the step log, and branch answers the caller supplied."""

    uow: UnitOfWork
    log: StepLog
    zones: dict[str, ZoneInfo]
    answers: dict[int, bool] = field(default_factory=dict)
    # messages the walk decided, queued together by `queue_sends` (enrolment id, step seq, request)
    sends: list[tuple[tuple[int, int], SendRequest]] = field(default_factory=list)

    def queue_sends(self) -> None:
        """Queue the batch's messages in one go (set-based policies, one insert) and record each
        send step's outcome; the caller runs this before writing the step log."""
        results = enqueue_many(self.uow, [request for _, request in self.sends])
        for (step, request), result in zip(self.sends, results, strict=True):
            self.log.settle(step, send_outcome(request.channel, result))
        self.sends.clear()

    def advance(self, e: EnrolmentState, j: Journey) -> str | None:
        """Run `e` as far as it goes now. Returns the branch step id it waits at for an answer,
        or None when it stopped (a wait, the end) for this run."""
        now = self.uow.now
        for _ in range(MAX_STEPS):
            assert e.step_id is not None
            step = j.step(e.step_id)
            kind = step.kind
            if kind in ("wait", "wait_for"):
                if e.waiting_since is None:
                    e.waiting_since = now
                    if step.wait is not None:
                        e.due_at = wait_until(now, step.wait, self.zones[e.journey])
                    else:
                        assert step.wait_for is not None
                        e.due_at = now + step.wait_for.timeout.delta()
                    return None
                if step.wait_for is not None:
                    result = e.wait_result or "timeout"
                    target = step.wait_for.on_event if result == "event" else step.wait_for.on_timeout
                    self._go(e, j, target, result)
                else:
                    self._go(e, j, j.after(step.id), "waited")
            elif kind == "branch":
                if e.id not in self.answers:
                    return step.id
                yes = self.answers.pop(e.id)
                assert step.branch is not None
                self._go(e, j, step.branch.then if yes else step.branch.otherwise, "then" if yes else "else")
            elif kind == "split":
                assert step.split is not None
                b, edge, target = bucket(e.customer_id, j.code, step.id), 0, step.split.paths[-1].next
                for path in step.split.paths:
                    edge += path.percent
                    if b < edge:
                        target = path.next
                        break
                self._go(e, j, target, f"split:{target}")
            elif kind == "exit":
                self.log.leave(e, now, "exit")
                e.status, e.finished_at, e.due_at = "exited", now, None
                return None
            else:
                self._go(e, j, j.after(step.id), self._effect(e, j, step))
            if e.status != "active":
                return None
        e.due_at = now  # the step cap: carry on in the next batch
        return None

    def _effect(self, e: EnrolmentState, j: Journey, step: Step) -> str:
        assert step.kind in EFFECT_KINDS
        if e.holdout:
            return "skipped:holdout"
        context = json.loads(e.context or "{}")
        if step.kind in ("send", "webhook"):  # queued with the batch's others: never raises, no savepoint
            self.sends.append(((e.id, e.step_seq), send_request(e, j, step, context)))
            return QUEUED
        savepoint = self.uow.session.begin_nested()
        try:
            outcome = apply_effect(self.uow, e, j, step, context)
        except SiyuError as error:  # e.g. a tag that is not manual: recorded, the journey goes on
            savepoint.rollback()
            return f"failed:{error.code}"
        savepoint.commit()
        e.context = json.dumps(context, ensure_ascii=False, default=str)
        return outcome

    def _go(self, e: EnrolmentState, j: Journey, target: str | None, outcome: str) -> None:
        now = self.uow.now
        self.log.leave(e, now, outcome)
        e.waiting_since, e.wait_result = None, None
        if target is None:
            e.status, e.finished_at, e.due_at, e.step_id = "completed", now, None, None
            return
        e.step_id, e.step_seq, e.due_at = target, e.step_seq + 1, now
        self.log.enter(e, target, now)
