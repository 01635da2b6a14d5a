"""Store tables of journeys: the journey and every applied version, enrolments (one customer's walk
through one version) and the step log (one row per step an enrolment entered).

An enrolment's state is its row: `step_id` and `due_at` say what runs next and when; a transition
rewrites the row, appends to the step log and writes its side effect (message, coupon, points…)
in one transaction, so a crash repeats a transition whole or not at all.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

Id = BigInteger().with_variant(Integer, "sqlite")


class JourneyRow(Base):
    __tablename__ = "journeys"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    brand: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)  # the version new enrolments enter
    status: Mapped[str] = mapped_column(String(16))  # active | paused | archived
    trigger_kind: Mapped[str] = mapped_column(String(16))
    # How far the trigger has looked: the lake's `ingested_at` high-water mark for event triggers,
    # the last local day for date triggers, "done" for a broadcast (see siyu.journeys.triggers).
    trigger_mark: Mapped[str | None] = mapped_column(String(64))
    backfill_from: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class JourneyVersion(Base):
    __tablename__ = "journey_versions"
    journey: Mapped[str] = mapped_column(ForeignKey("journeys.code"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[str] = mapped_column(Text)  # the validated definition, JSON
    source: Mapped[str] = mapped_column(Text)  # the file as applied
    checksum: Mapped[str] = mapped_column(String(64))
    applied_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    applied_by: Mapped[str] = mapped_column(String(200))


class Enrolment(Base):
    __tablename__ = "journey_enrolments"
    __table_args__ = (
        UniqueConstraint("journey", "customer_id", "entry_key", name="uq_journey_enrolments_entry"),
        Index("ix_journey_enrolments_due", "status", "due_at"),
        Index("ix_journey_enrolments_customer", "brand", "customer_id"),
        Index("ix_journey_enrolments_journey", "journey", "status", "step_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    journey: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    brand: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    entry_key: Mapped[str] = mapped_column(String(200))  # what enrolled them: event id, day, "manual:…"
    status: Mapped[str] = mapped_column(String(16))  # active | completed | exited
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    step_id: Mapped[str | None] = mapped_column(String(64))  # the step that runs at due_at
    step_seq: Mapped[int] = mapped_column(Integer, default=0)  # steps entered so far
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # a `wait_for` in progress: since when, and whether the event came ("event") before the timeout
    waiting_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    wait_result: Mapped[str | None] = mapped_column(String(16))
    context: Mapped[str] = mapped_column(Text, default="{}")  # JSON: trigger properties, issued coupons…
    entered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    converted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class EnrolmentStep(Base):
    """One step an enrolment entered: when, when it left, and what happened (outcome)."""

    __tablename__ = "journey_enrolment_steps"
    __table_args__ = (Index("ix_journey_enrolment_steps_step", "journey", "step_id"),)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("journey_enrolments.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # sent:<status> | coupon:<code> | skipped:holdout | then | else | event | timeout | …
    outcome: Mapped[str | None] = mapped_column(String(200))
