"""Store tables of the guides domain. Tasks first: journeys (`task` steps), churn alerts and SOP
rules all create them; guides and managers work them off."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

Id = BigInteger().with_variant(Integer, "sqlite")


class GuideTask(Base):
    """A follow-up for a guide (or a store when no guide is bound): who, which customer, by when."""

    __tablename__ = "guide_tasks"
    __table_args__ = (
        Index("ix_guide_tasks_assignee", "brand", "assignee_staff_id", "status"),
        Index("ix_guide_tasks_store", "brand", "store_code", "status"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    brand: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    assignee_staff_id: Mapped[str | None] = mapped_column(String(64))
    store_code: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # journey | churn_alert | sop | manual
    title: Mapped[str] = mapped_column(String(400))
    body: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))  # e.g. journey:onboarding:v2:step3
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done | cancelled
    result: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
