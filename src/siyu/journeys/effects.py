"""The side effects of steps, each through the service that owns it, in the transition's unit of
work and keyed by `journey:{enrolment}:{step}`: a message (siyu.messaging), a coupon or points
(siyu.loyalty), a tag (siyu.audiences), a task (siyu.guides). Each returns the step's outcome.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from siyu.audiences.tag_manual import KnownCustomer, do_remove_tag, do_set_tag
from siyu.core.errors import NotFoundError
from siyu.guides.tasks import TaskRequest, do_create_task
from siyu.journeys.batch import EnrolmentState
from siyu.journeys.definition import Journey, Step
from siyu.loyalty.coupons import accounts_of_customers, do_issue_many
from siyu.loyalty.models import Coupon
from siyu.loyalty.points import do_earn
from siyu.loyalty.programs import load_program
from siyu.messaging.enqueue import EnqueueResult, SendRequest
from siyu.store.uow import UnitOfWork


def step_key(enrolment: EnrolmentState, step: Step) -> str:
    return f"journey:{enrolment.id}:{step.id}"


def send_request(e: EnrolmentState, j: Journey, step: Step, context: dict[str, Any]) -> SendRequest:
    """The message a `send` or `webhook` step queues (the walk queues a batch's at once)."""
    channel: str
    if step.send is not None:
        channel, template = step.send.channel, step.send.template
        content = j.templates[template][channel]
    else:
        assert step.webhook is not None
        channel, template = "webhook", None
        content = {"url": step.webhook.url, "body": {**step.webhook.body, "journey": j.code, "step": step.id}}
        context = {**context, "customer_id": e.customer_id}
    return SendRequest(
        brand=e.brand, customer_id=e.customer_id, channel=channel, category=j.category,
        idempotency_key=step_key(e, step), content=content, context=context, journey=j.code,
        journey_version=j.version, enrolment_id=e.id, step_id=step.id, template=template,
    )  # fmt: skip


def send_outcome(channel: str, result: EnqueueResult) -> str:
    return f"{channel}:{result.status}" + (f":{result.reason}" if result.reason else "")


def _account(uow: UnitOfWork, program: str, e: EnrolmentState) -> int | None:
    return accounts_of_customers(uow.session, program, e.brand, [e.customer_id]).get(e.customer_id)


def apply_effect(uow: UnitOfWork, e: EnrolmentState, j: Journey, step: Step, context: dict[str, Any]) -> str:
    """Do what a coupon, points, tag or task `step` does for enrolment `e`; returns the outcome
    recorded in the step log. `context` may gain keys (the coupon code issued) that later templates
    can use. (Messages: `send_request`.)"""
    if step.coupon is not None:
        program = load_program(uow.session, step.coupon.program)
        account = _account(uow, program.program, e)
        if account is None:
            return "skipped:not_member"
        issued = do_issue_many(
            uow, program, step.coupon.template, [account], key=step_key(e, step), via="journey", keep_codes=True
        )
        if not issued.codes:
            return "skipped:" + ",".join(sorted(issued.skipped)) if issued.skipped else "skipped"
        code = issued.codes[0]
        coupon = uow.session.get(Coupon, code)
        assert coupon is not None  # issued in this unit of work
        # `coupon` is what templates read (docs/messaging.md: {{ coupon.code }}); `coupon_code` stays
        # for templates and rules written against it
        context["coupon"] = {"code": code, "template": coupon.template, "valid_to": coupon.valid_to.isoformat()}
        context["coupon_code"] = code
        return f"coupon:{code}"
    if step.points is not None:
        program = load_program(uow.session, step.points.program)
        account = _account(uow, program.program, e)
        if account is None:
            return "skipped:not_member"
        posted = do_earn(
            uow.session, program, account, step.points.points, key=step_key(e, step), at=uow.now,
            actor=str(uow.actor), brand=e.brand, reason=f"{step.points.reason} ({j.code})",
        )  # fmt: skip
        return f"points:{posted.points}"
    if step.tag is not None:
        reason = f"journey {j.code} v{j.version}"
        if step.tag.add is not None:
            do_set_tag(uow, KnownCustomer(e.brand, e.customer_id), step.tag.add, step.tag.value, reason=reason)
            return f"tag:+{step.tag.add}"
        assert step.tag.remove is not None
        try:
            do_remove_tag(uow, e.brand, step.tag.remove, e.customer_id, reason=reason)
        except NotFoundError:
            return f"tag:-{step.tag.remove}:absent"
        return f"tag:-{step.tag.remove}"
    if step.task is not None:
        due = None if step.task.due_days is None else uow.now + dt.timedelta(days=step.task.due_days)
        task_id, _ = do_create_task(
            uow,
            TaskRequest(
                brand=e.brand, customer_id=e.customer_id, kind="journey", title=step.task.title,
                idempotency_key=step_key(e, step), store_code=step.task.store_code, body=step.task.body,
                source=f"journey:{j.code}:v{j.version}:{step.id}", due_at=due,
            ),
        )  # fmt: skip
        return f"task:{task_id}"
    raise AssertionError(f"not an effect step: {step.kind}")
