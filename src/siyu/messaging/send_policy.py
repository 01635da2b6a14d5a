"""The send policies of `siyu.messaging.enqueue`, decided for one request or a whole batch with a
few queries: what the policies read (consent records, brand policies and time zones, the marketing
messages already planned near the send) is loaded once for all requests (`load_facts`), then each
request is decided in order by the pure `decide`, which counts what it accepted so that a later
request of the same batch sees it — the same answers as queueing them one by one.

Caps are a read-then-write, so two transactions queueing for the same customer at the same instant
could both pass one. On PostgreSQL `load_facts` first takes a transaction-scoped advisory lock per
(brand, customer) it will count caps for, in one globally sorted order (two batches never wait on
each other in a cycle); the second transaction then reads the first one's committed messages. SQLite
has one writer at a time, which serialises them already.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session

from siyu.messaging.consent import ConsentFact, consent_facts, verdict
from siyu.messaging.models import OutboundMessage
from siyu.messaging.policy import BrandPolicy, brand_zone, load_policy, quiet_until

if TYPE_CHECKING:
    from siyu.messaging.enqueue import SendRequest

COUNTED = ("queued", "deferred", "sending", "sent", "delivered")  # what a cap counts (not suppressed/failed)
QUIET_MAX = dt.timedelta(days=1)  # a quiet window defers a send by less than a day
CHUNK = 1000
Who = tuple[str, str]  # (brand, customer_id)


@dataclass
class PolicyFacts:
    """What the policies read for a set of requests."""

    policies: dict[str, BrandPolicy] = field(default_factory=dict)
    zones: dict[str, ZoneInfo] = field(default_factory=dict)
    consent: dict[Who, list[ConsentFact]] = field(default_factory=dict)
    # the counted marketing messages of each customer near the sends: (not_before, channel)
    planned: dict[Who, list[tuple[dt.datetime, str]]] = field(default_factory=dict)


def _at(request: SendRequest, now: dt.datetime) -> dt.datetime:
    return (request.not_before or now).astimezone(dt.UTC)  # stored UTC (SQLite keeps no offset)


def _capped(request: SendRequest, policy: BrandPolicy) -> bool:
    return request.category == "marketing" and request.customer_id is not None and bool(policy.caps)


def lock_key(brand: str, customer_id: str) -> int:
    """The advisory-lock key of a customer's caps: a signed 64-bit hash."""
    digest = hashlib.sha256(f"siyu:caps\x1f{brand}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_caps(session: Session, who: Sequence[Who]) -> None:
    """Hold each customer's caps lock until the transaction ends (PostgreSQL; see the docstring)."""
    if not who or session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({lock_key(b, c) for b, c in who})
    # unnest yields the array in order, so the locks are taken in sorted order
    stmt = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(:keys) AS t(k)").bindparams(
        bindparam("keys", type_=ARRAY(BIGINT))
    )
    session.execute(stmt, {"keys": keys})


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def load_facts(session: Session, requests: Sequence[SendRequest], now: dt.datetime) -> PolicyFacts:
    """Everything `decide` reads for `requests`, in a few queries per brand."""
    facts = PolicyFacts()
    by_brand: dict[str, list[SendRequest]] = {}
    for r in requests:
        by_brand.setdefault(r.brand, []).append(r)
    for brand, group in by_brand.items():
        policy = facts.policies[brand] = load_policy(session, brand)
        if any(r.category == "marketing" and r.timezone is None for r in group):
            facts.zones[brand] = brand_zone(session, brand, policy)
        customers = list(dict.fromkeys(r.customer_id for r in group if r.customer_id is not None))
        facts.consent.update({(brand, c): f for c, f in consent_facts(session, brand, customers).items()})
        capped = [r for r in group if _capped(r, policy)]
        if not capped:
            continue
        who = list(dict.fromkeys(r.customer_id for r in capped if r.customer_id is not None))
        lock_caps(session, [(brand, c) for c in who])
        days = dt.timedelta(days=max(cap.days for cap in policy.caps))
        lo = min(_at(r, now) for r in capped) - days
        hi = max(_at(r, now) for r in capped) + QUIET_MAX + days
        for i in range(0, len(who), CHUNK):
            rows = session.execute(
                select(OutboundMessage.customer_id, OutboundMessage.not_before, OutboundMessage.channel).where(
                    OutboundMessage.brand == brand,
                    OutboundMessage.customer_id.in_(who[i : i + CHUNK]),
                    OutboundMessage.category == "marketing",
                    OutboundMessage.status.in_(COUNTED),
                    OutboundMessage.not_before > lo,
                    OutboundMessage.not_before < hi,
                )
            )
            for customer, not_before, channel in rows:
                facts.planned.setdefault((brand, str(customer)), []).append((_aware(not_before), channel))
    return facts


def _cap_reason(request: SendRequest, policy: BrandPolicy, planned: list[tuple[dt.datetime, str]],
                at: dt.datetime) -> str | None:  # fmt: skip
    for cap in policy.caps:
        if cap.channel and cap.channel != request.channel:
            continue  # a channel's cap limits only that channel's messages
        # symmetric window: no two of the counted messages are closer than `days` beyond the cap,
        # whatever order the journeys decided them in
        window = dt.timedelta(days=cap.days)
        near = sum(1 for t, ch in planned if at - window < t < at + window and (not cap.channel or ch == cap.channel))
        if near >= cap.count:
            return f"cap:{cap.count}/{cap.days}d" + (f":{cap.channel}" if cap.channel else "")
    return None


def decide(facts: PolicyFacts, request: SendRequest, now: dt.datetime) -> tuple[str, str | None, dt.datetime]:
    """(status, reason, not_before) of a new message, counted in `facts` for the requests after it:

    1. consent → `suppressed`, reason `consent:…` — every category;
    2. quiet hours (marketing only) → `deferred` with `not_before` at the window's end, in the
       customer's time zone (`SendRequest.timezone`) or the brand's;
    3. frequency caps (marketing only), counted at the planned send time across every journey and
       operator send of the brand → `suppressed`, reason `cap:2/7d` or `cap:1/1d:sms`.
    """
    at = _at(request, now)
    who = (request.brand, request.customer_id or "")
    if request.customer_id is not None:
        reason = verdict(facts.consent.get(who, []), request.channel, request.category)
        if reason:
            return "suppressed", reason, at
    if request.category != "marketing" or request.customer_id is None:
        return "queued", None, at
    policy = facts.policies[request.brand]
    zone = ZoneInfo(request.timezone) if request.timezone else facts.zones[request.brand]
    until = quiet_until(at, zone, policy.quiet_start, policy.quiet_end)
    planned = until or at
    cap = _cap_reason(request, policy, facts.planned.get(who, []), planned)
    if cap:
        return "suppressed", cap, planned
    facts.planned.setdefault(who, []).append((planned, request.channel))
    return ("deferred", "quiet_hours", planned) if until else ("queued", None, planned)
