"""The dispatcher (发送器): claims due messages, sends them through their channel, records the answer.

1. Claim (one short transaction): up to `messaging_batch` rows that are queued/deferred with
   `not_before ≤ now`, or `sending` with an expired lease (their dispatcher died), are set to
   `sending` with `leased_until = now + lease` — `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
   dispatchers split the work; SQLite serialises claims with BEGIN IMMEDIATE.
2. Per message: consent is checked again (it may have been withdrawn since the enqueue); a row
   queued without rendering is rendered now; a mini-program message consumes one subscription.
3. Send, within the channel's rate (messages per second per provider account, per process).
4. Record (one transaction, only while our lease stands): sent / delivered / failed / refused, or
   back to queued with exponential backoff for a transient failure, `failed` after
   `messaging_max_attempts`.

Exactly once (docs/messaging.md): a message is claimed by one dispatcher at a time; a crash
between claim and send re-sends after the lease expires, which the provider-side idempotency key
(SMS OutId, webhook Idempotency-Key, e-mail Message-ID) makes recognisable. A crash between the
provider's acceptance and our record is the one window that can deliver twice where the provider
does not deduplicate (SMTP): such a row is marked `resent_after_lease` and counted.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, or_, select, update

from siyu.messaging.channels import registry  # noqa: F401  (registers the adapters)
from siyu.messaging.channels.base import Channel, Outbound, SendResult, channel_factory
from siyu.messaging.consent import consent_facts, verdict
from siyu.messaging.ledger_models import MiniProgramSubscription
from siyu.messaging.models import OutboundMessage
from siyu.messaging.policy import load_policy
from siyu.messaging.sealing import open_payload, seal_payload

if TYPE_CHECKING:
    from siyu.bootstrap import App
    from siyu.messaging.address import CustomerFacts

log = logging.getLogger("siyu.messaging")
RESENT = "resent_after_lease"


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    refused: int = 0
    suppressed: int = 0
    retried: int = 0
    resent: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RateLimiter:
    """At most `rate` sends a second per channel in this process (spaced evenly)."""

    rates: dict[str, float]
    _next: dict[str, float] = field(default_factory=dict)

    def wait(self, channel: str) -> None:
        rate = self.rates.get(channel)
        if not rate:
            return
        now = time.monotonic()
        slot = max(now, self._next.get(channel, now))
        self._next[channel] = slot + 1.0 / rate
        if slot > now:
            time.sleep(slot - now)


@dataclass(frozen=True)
class Claimed:
    id: int
    idempotency_key: str
    brand: str
    customer_id: str | None
    channel: str
    category: str
    payload: dict[str, Any]
    attempts: int
    lease: dt.datetime
    resent: bool


class Dispatcher:
    def __init__(
        self,
        app: App,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        channels: dict[str, Channel] | None = None,
    ) -> None:
        self.app = app
        self.settings = app.settings.channels
        clock = clock or app.clock
        self.clock: Callable[[], dt.datetime] = lambda: clock().astimezone(dt.UTC)  # stored UTC (SQLite: no offset)
        self.channels: dict[str, Channel] = dict(channels or {})
        self.limiter = RateLimiter(dict(self.settings.messaging_rate))

    def channel(self, name: str) -> Channel:
        if name not in self.channels:
            self.channels[name] = channel_factory(name)(self.app.settings)
        return self.channels[name]

    # -- claim -----------------------------------------------------------------------------------

    def claim(self, now: dt.datetime) -> list[Claimed]:
        store = self.app.store
        lease = now + dt.timedelta(seconds=self.settings.messaging_lease_seconds)
        m = OutboundMessage
        due = or_(
            and_(m.status.in_(("queued", "deferred")), m.not_before <= now),
            and_(m.status == "sending", m.leased_until < now),
        )
        q = select(m).where(due).order_by(m.not_before, m.id).limit(self.settings.messaging_batch)
        if store.engine.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        out: list[Claimed] = []
        with store.write_unit() as session:
            for row in session.scalars(q).all():
                resent = row.status == "sending"  # its dispatcher died after claiming it
                row.status, row.leased_until, row.updated_at = "sending", lease, now
                row.attempts += 1
                out.append(
                    Claimed(row.id, row.idempotency_key, row.brand, row.customer_id, row.channel, row.category,
                            open_payload(self.app.settings.pii_keyring, row.payload), row.attempts, lease, resent)
                )  # fmt: skip
        return out

    # -- record ----------------------------------------------------------------------------------

    def _record(self, c: Claimed, now: dt.datetime, **values: Any) -> bool:
        """Write the outcome while our lease stands (it is the fencing token); False if lost."""
        m = OutboundMessage
        with self.app.store.write_unit() as session:
            done = session.execute(
                update(m)
                .where(m.id == c.id, m.status == "sending", m.leased_until == c.lease)
                .values(leased_until=None, updated_at=now, **values)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def _record_many(self, outcomes: list[tuple[Claimed, dt.datetime, dict[str, Any]]]) -> None:
        """`_record` for many messages in one transaction: one executemany UPDATE per set of
        columns, each row fenced by its own lease."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for c, now, values in outcomes:
            row = {"b_id": c.id, "b_lease": c.lease, "leased_until": None, "updated_at": now, **values}
            groups.setdefault(tuple(sorted(row)), []).append(row)
        m = OutboundMessage
        fenced = update(m).where(
            m.id == bindparam("b_id"), m.status == "sending", m.leased_until == bindparam("b_lease")
        )
        with self.app.store.write_unit() as session:
            for rows in groups.values():
                session.connection().execute(fenced, rows)

    def _outcome(self, c: Claimed, result: SendResult, now: dt.datetime, stats: DispatchStats) -> None:
        record = self._record
        note = RESENT if c.resent else None
        if result.status in ("sent", "delivered"):
            stats.sent += 1
            record(c, now, status=result.status, provider_id=result.provider_id, sent_at=now, reason=note)
        elif result.status == "retry" and c.attempts < self.settings.messaging_max_attempts:
            stats.retried += 1
            delay = result.retry_after_s or self.settings.messaging_retry_base * 2 ** (c.attempts - 1)
            record(c, now, status="queued", not_before=now + dt.timedelta(seconds=min(delay, 6 * 3600)),
                   reason=f"retry: {result.error}"[:400])  # fmt: skip
        else:
            status = "refused" if result.status == "refused" else "failed"
            stats.refused += status == "refused"
            stats.failed += status == "failed"
            record(c, now, status=status, reason=(result.error or status)[:400])

    # -- per message -----------------------------------------------------------------------------

    def _prepare_many(self, batch: list[Claimed], now: dt.datetime) -> list[tuple[dict[str, Any] | None, str | None]]:
        """For each claimed message: (payload to send, None) or (None, reason to suppress).

        Set-based for the batch: consent and policy in one read per brand, the customer facts of
        every row queued without rendering in a few engine queries per brand (customer_facts_many),
        the rendered payloads stored in one executemany UPDATE before anything is sent."""
        brands = {c.brand for c in batch}
        with self.app.store.unit_of_work() as session:
            policies = {b: load_policy(session, b) for b in brands}
            consent = {
                b: consent_facts(session, b, sorted({c.customer_id for c in batch if c.brand == b and c.customer_id}))
                for b in brands
            }
        facts: dict[tuple[str, str], CustomerFacts] = {}
        for b in brands:
            wanted = [c.customer_id for c in batch if c.brand == b and c.customer_id and not c.payload.get("rendered")]
            if wanted:
                # imported here: rendering reads the lake (Ibis); a dispatcher of rendered rows never does
                from siyu.messaging.address import customer_facts_many

                facts.update({(b, k): v for k, v in customer_facts_many(self.app, b, wanted).items()})
        out: list[tuple[dict[str, Any] | None, str | None]] = []
        rendered: list[dict[str, Any]] = []
        for c in batch:
            reason = verdict(consent[c.brand].get(c.customer_id, []), c.channel, c.category) if c.customer_id else None
            if reason:
                out.append((None, reason))
                continue
            policy = policies[c.brand]
            payload = c.payload
            if not payload.get("rendered"):
                from siyu.messaging.compose import NoAddressError, compose
                from siyu.messaging.templates import TemplateRenderError

                try:
                    payload = {"rendered": True, **compose(
                        self.app, message_id=c.id, brand=c.brand, customer_id=c.customer_id, channel=c.channel,
                        category=c.category, content=payload.get("content", {}), context=payload.get("context", {}),
                        webhook_url=policy.webhook_url,
                        facts=facts.get((c.brand, c.customer_id)) if c.customer_id else None,
                    )}  # fmt: skip
                except NoAddressError as error:
                    out.append((None, str(error)))
                    continue
                except TemplateRenderError as error:
                    out.append((None, f"template_error: {error.message}"))
                    continue
                # the same content if this send is retried
                rendered.append({"b_id": c.id, "payload": seal_payload(self.app.settings.pii_sealing_ring, payload)})
            if c.channel == "webhook":
                payload = {**payload, "_secret": policy.webhook_secret or ""}
            out.append((payload, None))
        if rendered:
            m = OutboundMessage
            with self.app.store.write_unit() as session:
                session.connection().execute(update(m).where(m.id == bindparam("b_id")), rendered)
        for i, (c, (ready, _)) in enumerate(zip(batch, out, strict=True)):
            if c.channel == "miniprogram" and ready is not None and not self._consume_subscription(c, ready, now):
                out[i] = (None, "no_subscription")
        return out

    def _consume_subscription(self, c: Claimed, payload: dict[str, Any], now: dt.datetime) -> bool:
        """Take one unused subscription of the customer for the template (or the one this message
        already took before a crash)."""
        s = MiniProgramSubscription
        with self.app.store.write_unit() as session:
            mine = select(s.id).where(s.used_by == c.id).limit(1)
            if session.scalar(mine) is not None:
                return True
            q = select(s).where(s.brand == c.brand, s.customer_id == c.customer_id,
                                s.template_id == str(payload.get("template_id")), s.used_by.is_(None))  # fmt: skip
            q = q.order_by(s.granted_at, s.id).limit(1)
            if self.app.store.engine.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            sub = session.scalars(q).first()
            if sub is None:
                return False
            sub.used_by, sub.used_at = c.id, now
            return True

    def deliver_batch(self, batch: list[Claimed], stats: DispatchStats) -> None:
        """Send a claimed batch. Channels that can hold a session (SMTP) keep one for the batch.

        Each sent message's outcome is recorded as it comes, in its own short transaction, so a kill
        between a provider's acceptance and our record re-sends at most the one message in flight
        (Aliyun does not document OutId as a deduplication key, so SMS is treated like SMTP).
        Suppressed messages (nothing was sent) are recorded together at the end of the batch."""
        prepared = self._prepare_many(batch, self.clock())
        deferred: list[tuple[Claimed, dt.datetime, dict[str, Any]]] = []

        def later(c: Claimed, now: dt.datetime, **values: Any) -> None:
            deferred.append((c, now, values))

        with ExitStack() as sessions:
            for name in sorted({c.channel for c, (p, _) in zip(batch, prepared, strict=True) if p is not None}):
                opener = getattr(self.channel(name), "session", None)
                if opener is not None:
                    sessions.enter_context(opener())
            for c, (payload, reason) in zip(batch, prepared, strict=True):
                stats.resent += c.resent
                if payload is None:
                    stats.suppressed += 1
                    later(c, self.clock(), status="suppressed", reason=(reason or "")[:400])  # nothing was sent
                    continue
                self.limiter.wait(c.channel)
                outbound = Outbound(c.id, c.idempotency_key, c.brand, c.customer_id, c.channel, c.category, payload)
                try:
                    result = self.channel(c.channel).send(outbound)
                except Exception as error:  # an adapter bug must not stop the queue; logged by type (PII)
                    log.error("channel %s failed: %s", c.channel, type(error).__name__)
                    result = SendResult("retry", error=f"adapter error {type(error).__name__}")
                self._outcome(c, result, self.clock(), stats)
        if deferred:
            self._record_many(deferred)

    # -- loops -----------------------------------------------------------------------------------

    def run_once(self, max_messages: int | None = None) -> DispatchStats:
        """Send everything due now (claiming batch after batch), then return."""
        stats = DispatchStats()
        while max_messages is None or stats.claimed < max_messages:
            batch = self.claim(self.clock())
            if not batch:
                break
            stats.claimed += len(batch)
            self.deliver_batch(batch, stats)
        return stats

    def run(self, stop: threading.Event, poll: float = 1.0) -> None:
        while not stop.is_set():
            try:
                stats = self.run_once()
            except Exception as error:  # the store was unreachable: try again
                log.error("dispatcher pass failed: %s", type(error).__name__)
                stop.wait(5.0)
                continue
            if not stats.claimed:
                stop.wait(poll)
