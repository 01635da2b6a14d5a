"""Store tables of the data duties: erasure tombstones and retention policies.

`erasure_tombstones` holds keyed hashes only (`siyu.privacy.hashing.keyed_hash`): of each erased
identifier (kind = its id type, the normalised value) and of each erased source record (kind
`record`, value `brand/source/source_customer_id`). Nothing in it can be read back into a phone or a
name; an import computes the same hashes over its rows and quarantines what matches (`erased`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

Id = BigInteger().with_variant(Integer, "sqlite")


class ErasureTombstone(Base):
    __tablename__ = "erasure_tombstones"
    __table_args__ = (UniqueConstraint("brand", "kind", "hash", name="uq_erasure_tombstones"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    hash: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class RetentionPolicy(Base):
    """How long a brand keeps one kind of data (days); absent = the default (siyu.privacy.retention)."""

    __tablename__ = "retention_policies"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(64), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
