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


class GuideRulesVersion(Base):
    """An applied rules file (versioned data): the newest version of a brand is in force."""

    __tablename__ = "guide_rules"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class CurrentBinding(Base):
    """Who a customer's guide is now, per binding scope (the whole brand, a store, or a guide in
    `every_friend` mode). Written from the lake history by each binding run, only where it changed,
    so `current_guide()` answers from the store inside any unit of work."""

    __tablename__ = "guide_bindings"
    __table_args__ = (Index("ix_guide_bindings_staff", "brand", "staff_id"),)
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(String(64))
    store_code: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # wecom_add | scan | purchase | manual | transfer
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ManualBinding(Base):
    """A binding a person or a transfer decided (manual | transfer): an input of the binding run
    that overrides every lock from `at` on."""

    __tablename__ = "guide_manual_bindings"
    __table_args__ = (Index("ix_guide_manual_customer", "brand", "customer_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[str] = mapped_column(String(64))
    store_code: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # manual | transfer
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(String(400))


class CustomerStore(Base):
    """A customer's home store (所属门店), for tasks when no guide is bound: the store of their
    latest store purchase, else their profile's store_code, else the nearest open store by location."""

    __tablename__ = "guide_customer_stores"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store_code: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # purchase | profile | location


class StaffMember(Base):
    """The brand's staff as last imported (the lake `staff` table), mirrored by each binding run so
    churn alerts find a guide's store managers and workbench keys their store inside a unit of work."""

    __tablename__ = "guide_staff"
    __table_args__ = (Index("ix_guide_staff_store", "brand", "store_code", "role"),)
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # guide | manager
    store_code: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(16))  # active | left
