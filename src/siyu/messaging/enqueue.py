"""`do_enqueue`: queue one message in the caller's unit of work, exactly once per idempotency key.

The policy checks (consent, frequency caps, quiet hours) and template rendering belong here too: a
journey step or an operator calls this one function and gets queued, deferred or suppressed back.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select

from siyu.messaging.models import OutboundMessage
from siyu.store.uow import UnitOfWork

Category = Literal["marketing", "transactional"]


@dataclass(frozen=True)
class SendRequest:
    brand: str
    customer_id: str | None
    channel: str
    category: Category
    idempotency_key: str  # e.g. f"journey:{enrolment_id}:{step_id}"
    content: dict[str, Any]  # the template (or already rendered fields) for the channel
    context: dict[str, Any] = field(default_factory=dict)  # template variables beyond the profile
    journey: str | None = None
    journey_version: int | None = None
    enrolment_id: int | None = None
    step_id: str | None = None
    template: str | None = None
    not_before: dt.datetime | None = None


@dataclass(frozen=True)
class EnqueueResult:
    message_id: int
    status: str  # queued | deferred | suppressed
    reason: str | None
    created: bool  # False: the key was already queued (a replay), nothing new was written


def do_enqueue(uow: UnitOfWork, request: SendRequest) -> EnqueueResult:
    s = uow.session
    existing = s.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == request.idempotency_key))
    if existing is not None:
        return EnqueueResult(existing.id, existing.status, existing.reason, created=False)
    row = OutboundMessage(
        idempotency_key=request.idempotency_key, brand=request.brand, customer_id=request.customer_id,
        channel=request.channel, category=request.category, journey=request.journey,
        journey_version=request.journey_version, enrolment_id=request.enrolment_id, step_id=request.step_id,
        template=request.template, payload=json.dumps(request.content, ensure_ascii=False, default=str),
        status="queued", reason=None, not_before=request.not_before or uow.now, attempts=0,
        created_at=uow.now, updated_at=uow.now,
    )  # fmt: skip
    s.add(row)
    s.flush()
    return EnqueueResult(row.id, row.status, None, created=True)
