"""A journey definition (旅程): the YAML a CRM team writes, validated.

Pure domain: no store access. `parse_journey(text, path)` returns a `Journey` or raises
`JourneyError` naming the file, line and field to fix (docs/journeys.md shows full files).
A step is a mapping with an `id`, exactly one kind key (`wait`, `send`, …) and an optional `next`
(default: the step below it; after the last step the enrolment completes).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from siyu.audiences.errors import RuleError
from siyu.audiences.service import parse_input
from siyu.core.yaml_files import PlacedError, parse_definition
from siyu.journeys.errors import JourneyError

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
Scalar = str | int | float | bool
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
STEP_KINDS = ("wait", "wait_for", "branch", "split", "send", "coupon", "points", "tag", "task", "webhook", "exit")
# Steps that reach the customer or change what they hold: holdout enrolments skip them (recorded).
EFFECT_KINDS = frozenset({"send", "coupon", "points", "tag", "task", "webhook"})
CHANNELS = ("email", "sms", "wecom", "oa", "miniprogram", "webhook")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _time_of_day(value: str | None) -> str | None:
    if value is not None and not TIME_OF_DAY.match(value):
        raise ValueError("a local time of day is HH:MM, e.g. 10:00")
    return value


class Duration(_Strict):
    days: int = Field(0, ge=0)
    hours: int = Field(0, ge=0)
    minutes: int = Field(0, ge=0)

    def delta(self) -> dt.timedelta:
        return dt.timedelta(days=self.days, hours=self.hours, minutes=self.minutes)


class Name(_Strict):
    zh: str
    en: str


# --- triggers -------------------------------------------------------------------------------------


class EventTrigger(_Strict):
    """An event of the lake (`type`), or `order_paid` (orders) / `member_joined` (memberships) /
    `tier_changed` (the loyalty center), with property filters (all must equal)."""

    type: Code
    where: dict[str, Scalar] = {}


class AudienceTrigger(_Strict):
    code: Code
    change: Literal["enter", "leave"] = "enter"  # `on:` would read as YAML's true


class DateTrigger(_Strict):
    attribute: Literal["birthday", "membership_anniversary"]
    calendar: Literal["gregorian", "lunar"] = "gregorian"
    offset_days: int = Field(0, ge=-60, le=60)  # -3: three days before the date
    at: str = "10:00"  # local time of day on that day

    _at = field_validator("at")(_time_of_day)


class BroadcastTrigger(_Strict):
    audience: Code
    at: dt.datetime

    @field_validator("at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give the broadcast time with its offset, e.g. 2026-06-18T10:00:00+08:00")
        return value


class Trigger(_Strict):
    event: EventTrigger | None = None
    audience: AudienceTrigger | None = None
    date: DateTrigger | None = None
    broadcast: BroadcastTrigger | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if sum(x is not None for x in (self.event, self.audience, self.date, self.broadcast)) != 1:
            raise ValueError("a trigger is exactly one of event, audience, date, broadcast (触发器只能选一种)")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("event", "audience", "date", "broadcast") if getattr(self, k) is not None)


class ReEntry(_Strict):
    after_days: int = Field(ge=1)


class Goal(_Strict):
    event: Code | None = None
    where: dict[str, Scalar] = {}
    rule: dict[str, Any] | str | None = None
    within_days: int = Field(ge=1, le=366)

    @model_validator(mode="after")
    def _one(self) -> Goal:
        if (self.event is None) == (self.rule is None):
            raise ValueError("a goal is an event or an audience rule (目标为事件或规则二选一)")
        if self.rule is not None:
            _check_rule(self.rule)
        return self


# --- steps ----------------------------------------------------------------------------------------


class Wait(_Strict):
    """One of: a duration; `until_time` (the next local HH:MM); `until_date` (that local day, at
    `at`); `next_workday` (the next Chinese working day, make-up workdays included, at `at`)."""

    days: int | None = Field(None, ge=0)
    hours: int | None = Field(None, ge=0)
    minutes: int | None = Field(None, ge=0)
    until_time: str | None = None
    until_date: dt.date | None = None
    next_workday: bool = False
    at: str | None = None

    _times = field_validator("until_time", "at")(_time_of_day)

    @model_validator(mode="after")
    def _one_mode(self) -> Wait:
        modes = [
            any(x is not None for x in (self.days, self.hours, self.minutes)),
            self.until_time is not None,
            self.until_date is not None,
            self.next_workday,
        ]
        if sum(modes) != 1:
            raise ValueError("a wait is one of: days/hours/minutes, until_time, until_date, next_workday")
        if self.at is not None and not (self.until_date or self.next_workday):
            raise ValueError("`at` goes with until_date or next_workday")
        return self


class WaitFor(_Strict):
    event: Code
    match: str | None = None  # a key of the enrolment context that the event's property must equal
    where: dict[str, Scalar] = {}
    timeout: Duration
    on_event: Code
    on_timeout: Code


class Branch(_Strict):
    rule: dict[str, Any] | str
    then: Code
    otherwise: Code = Field(alias="else")

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        _check_rule(value)
        return value


class SplitPath(_Strict):
    percent: int = Field(ge=0, le=100)
    next: Code


class Split(_Strict):
    paths: list[SplitPath] = Field(min_length=2)

    @model_validator(mode="after")
    def _hundred(self) -> Split:
        if sum(p.percent for p in self.paths) != 100:
            raise ValueError("split percentages add up to 100 (分流比例之和须为 100)")
        return self


class Send(_Strict):
    channel: Literal["email", "sms", "wecom", "oa", "miniprogram"]
    template: Code


class CouponStep(_Strict):
    program: Code
    template: Code


class PointsStep(_Strict):
    program: Code
    points: int = Field(ge=1)
    reason: str = "journey"


class TagStep(_Strict):
    add: Code | None = None
    remove: Code | None = None
    value: Scalar | None = None

    @model_validator(mode="after")
    def _one(self) -> TagStep:
        if (self.add is None) == (self.remove is None):
            raise ValueError("a tag step adds or removes one tag (add: CODE | remove: CODE)")
        return self


class TaskStep(_Strict):
    title: str = Field(min_length=1, max_length=400)
    body: str | None = None
    store_code: str | None = None
    due_days: int | None = Field(None, ge=0)


class Webhook(_Strict):
    url: str = Field(pattern=r"^https?://")
    body: dict[str, Any] = {}


class Step(_Strict):
    id: Code
    next: Code | None = None
    wait: Wait | None = None
    wait_for: WaitFor | None = None
    branch: Branch | None = None
    split: Split | None = None
    send: Send | None = None
    coupon: CouponStep | None = None
    points: PointsStep | None = None
    tag: TagStep | None = None
    task: TaskStep | None = None
    webhook: Webhook | None = None
    exit: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _exit_marker(cls, data: Any) -> Any:
        # `exit:` with nothing after it is the natural way to write it
        if isinstance(data, dict) and "exit" in data and data["exit"] is None:
            data = {**data, "exit": {}}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step has exactly one of {', '.join(STEP_KINDS)} (found {kinds or 'none'})")
        return self

    @cached_property  # asked for every step of every enrolment a worker moves
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    def targets(self) -> list[str]:
        """Step ids this step may go to (besides its `next`)."""
        if self.wait_for:
            return [self.wait_for.on_event, self.wait_for.on_timeout]
        if self.branch:
            return [self.branch.then, self.branch.otherwise]
        if self.split:
            return [p.next for p in self.split.paths]
        return []


class Journey(_Strict):
    brand: Code
    code: Code
    version: int = Field(ge=1)
    name: Name
    category: Literal["marketing", "transactional"]
    timezone: str | None = None  # default: the brand's
    trigger: Trigger
    re_entry: Literal["once", "always"] | ReEntry = "once"
    goal: Goal | None = None
    holdout_percent: int = Field(0, ge=0, le=50)
    templates: dict[Code, dict[str, dict[str, Any]]] = {}
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Journey:
        ids = [s.id for s in self.steps]
        for i, step in enumerate(self.steps):
            if ids.index(step.id) != i:
                raise PlacedError(f"step id {step.id!r} is used twice (步骤 id 重复)", "steps", i, "id")
            for target in [*step.targets(), *([step.next] if step.next else [])]:
                if target not in ids:
                    raise PlacedError(
                        f"step {step.id!r} goes to {target!r}, which is no step id (未知步骤)",
                        "steps",
                        i,
                    )
            if step.send:
                channels = self.templates.get(step.send.template)
                if channels is None or step.send.channel not in channels:
                    raise PlacedError(
                        f"step {step.id!r} sends template {step.send.template!r} on {step.send.channel}, "
                        "but `templates:` has no such entry (模板缺失)",
                        "steps", i, "send",
                    )  # fmt: skip
        for name, channels in self.templates.items():
            unknown = set(channels) - set(CHANNELS)
            if unknown:
                raise ValueError(f"template {name!r}: unknown channel(s) {sorted(unknown)}; use {CHANNELS}")
        return self

    @cached_property
    def _by_id(self) -> dict[str, tuple[Step, str | None]]:
        """Each step and where it goes without paths, looked up per transition (built once)."""
        ids = [s.id for s in self.steps]
        return {s.id: (s, s.next or (ids[i + 1] if i + 1 < len(ids) else None)) for i, s in enumerate(self.steps)}

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id][0]

    def after(self, step_id: str) -> str | None:
        """Where a step without paths goes: its `next`, else the step below it, else the end."""
        return self._by_id[step_id][1]

    @property
    def reentry_days(self) -> int | None:
        return self.re_entry.after_days if isinstance(self.re_entry, ReEntry) else None


def _check_rule(rule: dict[str, Any] | str) -> None:
    try:
        parse_input(rule)
    except RuleError as e:
        raise ValueError(f"audience rule: {e.message}") from e


def parse_journey(text: str, path: str = "<journey>") -> Journey:
    return parse_definition(
        text,
        path,
        Journey,
        JourneyError,
        what="invalid journey 旅程定义有误",
        shape="a journey file is a YAML mapping (brand:, code:, trigger:, steps: …)",
        union_members=frozenset({"ReEntry"}),
    )
