"""`do_enqueue`: queue one message in the caller's unit of work, exactly once per idempotency key;
`enqueue_many`: a batch of them (a journey worker's batch) with the same answers, set-based.

The policies are checked here, at the moment the send is decided (and consent again at dispatch;
channel rate limits apply at dispatch, per provider account), by siyu.messaging.send_policy:

1. consent (siyu.messaging.consent) → `suppressed`, reason `consent:…` — every category;
2. quiet hours (marketing only) → `deferred` with `not_before` at the window's end, in the
   customer's time zone (`SendRequest.timezone`) or the brand's;
3. frequency caps (marketing only), counted at the planned send time across every journey and
   operator send of the brand → `suppressed`, reason `cap:2/7d` or `cap:1/1d:sms`; on PostgreSQL
   under a per-customer lock, so two transactions cannot both pass one.

A suppressed send is a row with its reason, never a silent drop. With `app` given, the content is
rendered and the address resolved now (a template error or a missing address suppresses it with
`template_error:…` / `no_address:…`); without, the dispatcher renders at send time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from siyu.messaging.models import OutboundMessage
from siyu.messaging.policy import load_policy
from siyu.messaging.sealing import seal_payload
from siyu.messaging.send_policy import decide, load_facts
from siyu.store.uow import UnitOfWork
from siyu.store.upsert import insert_ignoring_many

if TYPE_CHECKING:
    from siyu.bootstrap import App

Category = Literal["marketing", "transactional"]
CHUNK = 500  # messages per INSERT


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


def enqueue_many(uow: UnitOfWork, requests: Sequence[SendRequest]) -> list[EnqueueResult]:
    """Queue `requests` in order, with the same answers as `do_enqueue` one by one (without `app`:
    the dispatcher renders), in a few queries and one INSERT … ON CONFLICT DO NOTHING per chunk."""
    if not requests:
        return []
    s = uow.session
    keys = list(dict.fromkeys(r.idempotency_key for r in requests))
    known = _existing(s, keys)
    fresh = [r for r in requests if r.idempotency_key not in known]
    facts = load_facts(s, fresh, uow.now)
    now = uow.now.astimezone(dt.UTC)
    decided: dict[str, tuple[str, str | None]] = {}
    rows: list[dict[str, Any]] = []
    for r in fresh:
        if r.idempotency_key in decided:
            continue  # the same key twice in one batch: one message
        status, reason, not_before = decide(facts, r, uow.now)
        decided[r.idempotency_key] = (status, reason)
        rows.append(_row(r, status, reason, not_before, now))
    ids: dict[str, int] = {}
    # Core, set-based (COPY on PostgreSQL): the ORM's bulk insert costs more than the rows
    table = cast(Table, OutboundMessage.__table__)
    inserted = insert_ignoring_many(s.connection(), table, rows, ["idempotency_key"], ["id", "idempotency_key"])
    ids.update({key: id_ for id_, key in inserted})
    # a key another transaction wrote meanwhile: its message stands, this decision is dropped
    known.update(_existing(s, [k for k in decided if k not in ids]))
    results: list[EnqueueResult] = []
    for r in requests:
        key = r.idempotency_key
        if key in known:
            results.append(known[key])
        else:
            results.append(EnqueueResult(ids[key], *decided[key], created=True))
            known[key] = EnqueueResult(ids[key], *decided[key], created=False)  # a repeat in this batch
    return results


def _existing(session: Session, keys: Sequence[str]) -> dict[str, EnqueueResult]:
    out: dict[str, EnqueueResult] = {}
    for i in range(0, len(keys), CHUNK):
        rows = session.execute(
            select(OutboundMessage.idempotency_key, OutboundMessage.id, OutboundMessage.status, OutboundMessage.reason)
            .where(OutboundMessage.idempotency_key.in_(keys[i : i + CHUNK]))
        )  # fmt: skip
        out.update({key: EnqueueResult(id_, status, reason, created=False) for key, id_, status, reason in rows})
    return out


def _row(r: SendRequest, status: str, reason: str | None, not_before: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    unrendered = {"rendered": False, "content": r.content, "context": r.context}
    return {
        "idempotency_key": r.idempotency_key, "brand": r.brand, "customer_id": r.customer_id, "channel": r.channel,
        "category": r.category, "journey": r.journey, "journey_version": r.journey_version,
        "enrolment_id": r.enrolment_id, "step_id": r.step_id, "template": r.template, "payload": _dumps(unrendered),
        "status": status, "reason": reason, "not_before": not_before, "attempts": 0, "created_at": now,
        "updated_at": now,
    }  # fmt: skip


def do_enqueue(uow: UnitOfWork, request: SendRequest, *, app: App | None = None) -> EnqueueResult:
    """Queue one message (see the module docstring); with `app`, render it and resolve its address now."""
    result = enqueue_many(uow, [request])[0]
    if app is None or not result.created or result.status == "suppressed":
        return result
    from siyu.messaging.compose import NoAddressError, compose
    from siyu.messaging.templates import TemplateRenderError

    s = uow.session
    row = s.get(OutboundMessage, result.message_id)
    assert row is not None
    try:
        payload = compose(
            app, message_id=row.id, brand=row.brand, customer_id=row.customer_id, channel=row.channel,
            category=row.category, content=request.content, context=request.context,
            webhook_url=load_policy(s, row.brand).webhook_url,
        )  # fmt: skip
        # sealed at rest (siyu.messaging.sealing); a journey's unrendered row (template and context,
        # no address) stays clear until the dispatcher renders and seals it
        row.payload = seal_payload(app.settings.pii_sealing_ring, {"rendered": True, **payload})
    except NoAddressError as error:
        row.status, row.reason = "suppressed", str(error)
    except TemplateRenderError as error:
        row.status, row.reason = "suppressed", f"template_error: {error.message}"[:400]
    s.flush()
    return EnqueueResult(row.id, row.status, row.reason, created=True)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
