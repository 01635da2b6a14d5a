"""The audit table (one for every kind of change; the points ledger stays its own trail)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

Id = BigInteger().with_variant(Integer, "sqlite")


class AuditEntry(Base):
    """Actor (kind + id), action, subject (type + id), before → after (PII masked), time, request id."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_subject", "subject_type", "subject_id"),
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_order", "txid", "id"),
        Index("ix_audit_log_seq", "seq", unique=True),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | api_key | system
    actor_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # The tamper-evident chain (siyu.audit.chain): the writing transaction, then — once sealed — the
    # position in the chain, the previous row's hash and this row's hash.
    txid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
