"""`do_enqueue`: queue one message in the caller's unit of work, exactly once per idempotency key.

The policies are checked here, at the moment the send is decided (and consent again at dispatch):

1. consent (siyu.messaging.consent.blocked_by) → `suppressed`, reason `consent:…` — every category;
2. quiet hours (marketing only) → `deferred` with `not_before` at the window's end, in the
   customer's time zone (`SendRequest.timezone`) or the brand's;
3. frequency caps (marketing only), counted at the planned send time across every journey and
   operator send of the brand → `suppressed`, reason `cap:2/7d` or `cap:1/1d:sms`.

A suppressed send is a row with its reason, never a silent drop. With `app` given, the content is
rendered and the address resolved now (a template error or a missing address suppresses it with
`template_error:…` / `no_address:…`); without, the dispatcher renders at send time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from siyu.messaging.consent import blocked_by
from siyu.messaging.models import OutboundMessage
from siyu.messaging.policy import BrandPolicy, brand_zone, load_policy, quiet_until
from siyu.messaging.sealing import seal_payload
from siyu.store.uow import UnitOfWork

if TYPE_CHECKING:
    from siyu.bootstrap import App

Category = Literal["marketing", "transactional"]
COUNTED = ("queued", "deferred", "sending", "sent", "delivered")  # what a cap counts (not suppressed/failed)


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
    timezone: str | None = None  # the customer's time zone for quiet hours, if known (else the brand's)


@dataclass(frozen=True)
class EnqueueResult:
    message_id: int
    status: str  # queued | deferred | suppressed
    reason: str | None
    created: bool  # False: the key was already queued (a replay), nothing new was written


def _cap_reason(uow: UnitOfWork, request: SendRequest, policy: BrandPolicy, at: dt.datetime) -> str | None:
    for cap in policy.caps:
        if cap.channel and cap.channel != request.channel:
            continue  # a channel's cap limits only that channel's messages
        # symmetric window: no two of the counted messages are closer than `days` beyond the cap,
        # whatever order the journeys decided them in
        q = select(func.count()).where(
            OutboundMessage.brand == request.brand,
            OutboundMessage.customer_id == request.customer_id,
            OutboundMessage.category == "marketing",
            OutboundMessage.status.in_(COUNTED),
            OutboundMessage.not_before > at - dt.timedelta(days=cap.days),
            OutboundMessage.not_before < at + dt.timedelta(days=cap.days),
        )
        if cap.channel:
            q = q.where(OutboundMessage.channel == cap.channel)
        if (uow.session.scalar(q) or 0) >= cap.count:
            return f"cap:{cap.count}/{cap.days}d" + (f":{cap.channel}" if cap.channel else "")
    return None


def decide(uow: UnitOfWork, request: SendRequest) -> tuple[str, str | None, dt.datetime]:
    """(status, reason, not_before) of a new message under the brand's policy (pure reads)."""
    at = (request.not_before or uow.now).astimezone(dt.UTC)  # stored UTC (SQLite keeps no offset)
    reason = blocked_by(uow.session, request.brand, request.customer_id, request.channel, request.category)
    if reason:
        return "suppressed", reason, at
    if request.category != "marketing" or request.customer_id is None:
        return "queued", None, at
    policy = load_policy(uow.session, request.brand)
    zone = ZoneInfo(request.timezone) if request.timezone else brand_zone(uow.session, request.brand, policy)
    until = quiet_until(at, zone, policy.quiet_start, policy.quiet_end)
    planned = until or at
    cap = _cap_reason(uow, request, policy, planned)
    if cap:
        return "suppressed", cap, planned
    return ("deferred", "quiet_hours", planned) if until else ("queued", None, planned)


def do_enqueue(uow: UnitOfWork, request: SendRequest, *, app: App | None = None) -> EnqueueResult:
    s = uow.session
    existing = s.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == request.idempotency_key))
    if existing is not None:
        return EnqueueResult(existing.id, existing.status, existing.reason, created=False)
    status, reason, not_before = decide(uow, request)
    now = uow.now.astimezone(dt.UTC)
    unrendered = {"rendered": False, "content": request.content, "context": request.context}
    # sealed at rest (siyu.messaging.sealing); without an app (journeys enqueue inside their own
    # unit of work) the unrendered template and context stay clear and the dispatcher seals what it renders
    ring = app.settings.pii_sealing_ring if app is not None else None
    row = OutboundMessage(
        idempotency_key=request.idempotency_key, brand=request.brand, customer_id=request.customer_id,
        channel=request.channel, category=request.category, journey=request.journey,
        journey_version=request.journey_version, enrolment_id=request.enrolment_id, step_id=request.step_id,
        template=request.template, payload=seal_payload(ring, unrendered), status=status, reason=reason,
        not_before=not_before, attempts=0, created_at=now, updated_at=now,
    )  # fmt: skip
    s.add(row)
    s.flush()
    if app is not None and status != "suppressed":
        from siyu.messaging.compose import NoAddressError, compose
        from siyu.messaging.templates import TemplateRenderError

        try:
            payload = compose(
                app, message_id=row.id, brand=row.brand, customer_id=row.customer_id, channel=row.channel,
                category=row.category, content=request.content, context=request.context,
                webhook_url=load_policy(s, row.brand).webhook_url,
            )  # fmt: skip
            row.payload = seal_payload(ring, {"rendered": True, **payload})
        except NoAddressError as error:
            row.status, row.reason = "suppressed", str(error)
        except TemplateRenderError as error:
            row.status, row.reason = "suppressed", f"template_error: {error.message}"[:400]
        s.flush()
    return EnqueueResult(row.id, row.status, row.reason, created=True)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
