"""The outbound message queue (`outbound_messages`): one row per message a customer is to receive.

A row is written in the unit of work of the decision that causes it (a journey step, an operator's
send), keyed by an idempotency key, so a decision made twice (after a crash) queues one message.
Delivery is separate (siyu.messaging.dispatch): it claims due rows and records what the provider said.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

Id = BigInteger().with_variant(Integer, "sqlite")

# queued → sending → sent → delivered | failed; deferred (quiet hours: not_before) → queued;
# suppressed (consent, cap, holdout…: never sent, kept with its reason); refused: the provider or the
# customer refused it (no subscription, not following).
STATUSES = ("queued", "deferred", "sending", "sent", "delivered", "failed", "refused", "suppressed")


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_messages_due", "status", "not_before"),
        Index("ix_outbound_messages_customer", "brand", "customer_id", "created_at"),
        Index("ix_outbound_messages_journey", "journey", "step_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    brand: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))  # email | sms | wecom | oa | miniprogram | webhook
    category: Mapped[str] = mapped_column(String(16))  # marketing | transactional
    journey: Mapped[str | None] = mapped_column(String(64))
    journey_version: Mapped[int | None] = mapped_column(Integer)
    enrolment_id: Mapped[int | None] = mapped_column(BigInteger)
    step_id: Mapped[str | None] = mapped_column(String(64))
    template: Mapped[str | None] = mapped_column(String(64))
    # the rendered message and its address, JSON (PII: masked when shown, never logged)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(400))
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    provider_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
