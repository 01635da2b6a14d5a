"""Store tables (SQLAlchemy 2 declarative, `Mapped[]`): configuration and import bookkeeping.

ORM classes are persistence records; services convert them to plain values at the edge, so the
domain never imports sqlalchemy.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Brand(Base):
    """A brand (品牌) under a group (集团); periods are cut in its time zone."""

    __tablename__ = "brands"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    group_code: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # FAST+ settings (DESIGN §4): whether positive reviews count as propagation for KOC, and the
    # share attribution window in days from the click.
    koc_reviews: Mapped[bool] = mapped_column(default=True, server_default=true())
    attribution_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")


class Field(Base):
    """A field (场域): a private-domain touchpoint of a brand, e.g. `wecom`, `tmall_store`."""

    __tablename__ = "fields"
    brand: Mapped[str] = mapped_column(String(64), ForeignKey("brands.code"), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    platform: Mapped[str | None] = mapped_column(String(64))
    # False when the field was first seen in data rather than declared in fields.csv.
    declared: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RelationType(Base):
    """A relation type (关系类型) a brand declared in `relation_types.csv`: its own (`douyin_fan_group`)
    or a built-in renamed or marked as not a connection. Built-ins need no row (ingest/schema.py)."""

    __tablename__ = "relation_types"
    brand: Mapped[str] = mapped_column(String(64), ForeignKey("brands.code"), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    field: Mapped[str | None] = mapped_column(String(64))
    # Whether holding it makes a customer "basic" (FAST+ 基础层) and counts for Connection.
    connection: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ImportJob(Base):
    """One file imported. Its quarantine rows count only once the job is `committed`."""

    __tablename__ = "import_jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    entity: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # running | committed | failed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    quarantined: Mapped[int] = mapped_column(BigInteger, default=0)
    lake_version: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(Text)


class QuarantineRow(Base):
    """A rejected input row with where it came from and why (never dropped silently)."""

    __tablename__ = "quarantine_rows"
    __table_args__ = (Index("ix_quarantine_job", "job_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("import_jobs.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))
    file: Mapped[str] = mapped_column(Text)
    line: Mapped[int] = mapped_column(BigInteger)
    field: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)  # the row as sealed JSON (siyu.privacy.sealed_rows), for correction
    # Keyed hashes of its phones and e-mails, space-separated: erasure finds a person's rows by them.
    match_hashes: Mapped[str | None] = mapped_column(Text)


class IdentityRun(Base):
    """One `siyu resolve` run: its counts, for the audit trail of One-ID."""

    __tablename__ = "identity_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ran_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source_customers: Mapped[int] = mapped_column(BigInteger)
    customers: Mapped[int] = mapped_column(BigInteger)
    merged: Mapped[int] = mapped_column(BigInteger)
    junk: Mapped[int] = mapped_column(Integer)
    lake_version: Mapped[int | None] = mapped_column(BigInteger)


class MaterialisationRun(Base):
    """One stored computation of derived results (物化记录): the layers of one period or the RFM of
    one day, the lake table version it wrote and the inputs it saw. A read uses the stored result
    only when the latest run of the same key saw the inputs of now (`siyu.metrics.freshness`)."""

    __tablename__ = "materialisations"
    __table_args__ = (Index("ix_materialisations_key", "brand", "kind", "grain", "period", "as_of", "window_days"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # layers | rfm
    brand: Mapped[str] = mapped_column(String(64))
    grain: Mapped[str | None] = mapped_column(String(8))  # layers: month | week | quarter | year
    period: Mapped[str | None] = mapped_column(String(16))  # layers: 2024-06, 2024-W23, …
    as_of: Mapped[date | None] = mapped_column(Date)  # rfm: last day of the window
    window_days: Mapped[int | None] = mapped_column(Integer)  # rfm
    inputs: Mapped[str] = mapped_column(Text)  # JSON: input lake table versions and brand settings
    lake_table: Mapped[str] = mapped_column(String(64))
    lake_version: Mapped[int] = mapped_column(BigInteger)  # the version this run's write created
    rows: Mapped[int] = mapped_column(BigInteger)
    trigger: Mapped[str] = mapped_column(String(16))  # command | schedule
    materialised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """An API key: bound to one brand, with scopes; only its SHA-256 hash is kept."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    brand: Mapped[str] = mapped_column(String(64), ForeignKey("brands.code"))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated, e.g. "read pii"
    source: Mapped[str | None] = mapped_column(String(64))  # what Segment messages are recorded as
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a key can be recognised
    name: Mapped[str | None] = mapped_column(String(200))
    rate_limit: Mapped[int | None] = mapped_column(Integer)  # requests per second; None = default
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A guide workbench key (导购工作台): the key sees only this staff member's customers and tasks.
    staff_id: Mapped[str | None] = mapped_column(String(64))
    # A store-bound key (门店密钥): the key sees only the customers of this store (as a store manager).
    store_code: Mapped[str | None] = mapped_column(String(64))


class InboxMessage(Base):
    """A message accepted by the API, durable before the client gets its 2xx.

    `kind` is `segment` (one raw Segment message) or a canonical entity name (one row). The loader
    moves pending messages into the lake and stamps `loaded_at`; the unique key makes a retried
    message a no-op. A message that cannot be loaded even on its own is a dead letter (`dead_at`,
    `dead_reason`, no PII): out of the queue until `siyu inbox retry` (clears `dead_at`) or
    `siyu inbox drop` (stamps `dropped_at`/`dropped_by`, keeping the row as the record).
    """

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("brand", "source", "kind", "message_id", name="uq_inbox_message"),
        Index(
            "ix_inbox_pending",
            "id",
            postgresql_where=text("loaded_at IS NULL"),
            sqlite_where=text("loaded_at IS NULL"),
        ),
        Index(
            "ix_inbox_dead",
            "id",
            postgresql_where=text("dead_at IS NOT NULL AND dropped_at IS NULL"),
            sqlite_where=text("dead_at IS NOT NULL AND dropped_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    loaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    batch: Mapped[str | None] = mapped_column(String(36))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # times it failed on its own
    dead_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dead_reason: Mapped[str | None] = mapped_column(Text)
    dropped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dropped_by: Mapped[str | None] = mapped_column(String(120))
