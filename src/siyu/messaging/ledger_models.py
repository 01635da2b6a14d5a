"""Store tables of the consent ledger and the per-brand message policies.

`consent_records` is history: a change is a new row, the latest row per (brand, customer, purpose,
channel) wins, nothing is updated or deleted (PIPL: the brand must show when and how consent was
given or withdrawn). `message_policies` holds one JSON document per brand (siyu.messaging.policy).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

Id = BigInteger().with_variant(Integer, "sqlite")


class ConsentRecord(Base):
    __tablename__ = "consent_records"
    __table_args__ = (
        Index("ix_consent_records_customer", "brand", "customer_id", "purpose", "at"),
        # one record per lake event (re-delivered EventsLanded batches add nothing)
        UniqueConstraint("source_key", name="uq_consent_records_source_key"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))  # None: every channel of the purpose
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))  # cli | api | event | unsubscribe_link | sms_reply
    source_key: Mapped[str | None] = mapped_column(String(200))  # e.g. event:<source>:<event_id>
    evidence: Mapped[str] = mapped_column(Text)  # JSON: form, page, ip, message id… (no clear PII)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))  # when the person decided
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))


class ConsentPurpose(Base):
    """A brand-declared purpose (beyond the built-in ones), e.g. `member_survey`."""

    __tablename__ = "consent_purposes"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class MessagePolicy(Base):
    __tablename__ = "message_policies"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(Text)  # JSON of siyu.messaging.policy.BrandPolicy
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class MiniProgramSubscription(Base):
    """One accepted mini-program subscription (一次性订阅): allows exactly one subscribe message."""

    __tablename__ = "miniprogram_subscriptions"
    __table_args__ = (
        Index("ix_miniprogram_subscriptions_open", "brand", "customer_id", "template_id", "used_by"),
        UniqueConstraint("source_key", name="uq_miniprogram_subscriptions_source_key"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str] = mapped_column(String(128))
    source_key: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_by: Mapped[int | None] = mapped_column(BigInteger)  # outbound_messages.id that consumed it
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
