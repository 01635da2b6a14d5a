"""Store records of tags and audiences (SQLAlchemy 2, `Mapped[]`): the transactional side of 人群圈选.

Definitions, manual and imported tag assignments with who / when / why, the tag history, audience
definitions and snapshot bookkeeping live here. Large derived data — computed rule-tag values and
snapshot memberships — lives in the lake (`tag_values`, `audience_members`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base


class TagGroup(Base):
    """A group of tags (标签组), e.g. "price band 价格带" or "guide notes 导购标记"."""

    __tablename__ = "tag_groups"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TagDefinition(Base):
    """A tag (标签): `rule` tags are computed in batch into the lake; `manual` tags are set by
    operators or guides; `imported` tags come from a file. Values are `enum` (one of `values`),
    `number`, or `flag` (present or not)."""

    __tablename__ = "tag_definitions"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_code: Mapped[str | None] = mapped_column(String(64))
    name_zh: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # rule | manual | imported
    value_type: Mapped[str] = mapped_column(String(16))  # enum | number | flag
    values_json: Mapped[str | None] = mapped_column(Text)  # allowed enum values, JSON list
    rule_json: Mapped[str | None] = mapped_column(Text)  # rule tags: how the value is computed
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    computed_customers: Mapped[int | None] = mapped_column(BigInteger)
    lake_version: Mapped[int | None] = mapped_column(BigInteger)


class TagAssignment(Base):
    """The current value of a manual or imported tag on one customer, with who set it, when and why."""

    __tablename__ = "tag_assignments"
    __table_args__ = (Index("ix_tag_assignments_customer", "brand", "customer_id"),)
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(String(200))
    number: Mapped[float | None] = mapped_column(Float)
    origin: Mapped[str] = mapped_column(String(16))  # manual | import
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)


class TagHistory(Base):
    """Every change of a tag: a manual set / removal (actor, old → new, why) or a rule-tag run."""

    __tablename__ = "tag_history"
    __table_args__ = (Index("ix_tag_history_tag", "brand", "tag_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    tag_code: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))  # None for a whole-tag event
    action: Mapped[str] = mapped_column(String(16))  # define | set | remove | import | compute | delete
    old_value: Mapped[str | None] = mapped_column(String(200))
    new_value: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)


class Audience(Base):
    """An audience (人群): a rule over the lake, re-evaluated on every count / export / snapshot."""

    __tablename__ = "audiences"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    rule_json: Mapped[str] = mapped_column(Text)
    refresh_minutes: Mapped[int | None] = mapped_column(Integer)  # None: no scheduled refresh
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_snapshot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_count: Mapped[int | None] = mapped_column(BigInteger)


class AudienceSnapshot(Base):
    """One frozen membership of an audience; the member ids are in the lake table `audience_members`."""

    __tablename__ = "audience_snapshots"
    __table_args__ = (Index("ix_audience_snapshots_audience", "brand", "audience_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    audience_code: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    as_of: Mapped[str] = mapped_column(String(10))  # brand-local day the rule's windows ended on
    customers: Mapped[int] = mapped_column(BigInteger)
    rule_json: Mapped[str] = mapped_column(Text)  # the rule as it was when the snapshot was taken
    trigger: Mapped[str] = mapped_column(String(16))  # manual | schedule
    actor: Mapped[str] = mapped_column(String(200))
    lake_version: Mapped[int | None] = mapped_column(BigInteger)


class AudienceExport(Base):
    """Audit of every audience export: who, when, how many rows, and whether PII left unmasked."""

    __tablename__ = "audience_exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    audience_code: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    path: Mapped[str] = mapped_column(Text)
    file_format: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger)
    unmasked: Mapped[bool] = mapped_column(Boolean, default=False)
