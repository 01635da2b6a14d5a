"""Brands and fields (场域) known to the store, registered from imported data."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.store.models import Brand, Field


def brand_timezones(app: App) -> dict[str, str]:
    with app.store.unit_of_work() as session:
        return {b.code: b.timezone for b in session.scalars(select(Brand)).all()}


def ensure_brands(session: Session, codes: list[str], timezone: str) -> None:
    known = set(session.scalars(select(Brand.code)).all())
    for code in sorted(set(codes) - known):
        session.add(Brand(code=code, timezone=timezone, created_at=utc_now()))
    session.flush()


def apply_fields(app: App, rows: pa.Table) -> tuple[Any, list[str]]:
    """Upsert declared fields from `fields.csv`; returns (Counts, warnings)."""
    from siyu.ingest.importer import Counts

    counts = Counts()
    with app.store.unit_of_work() as session:
        ensure_brands(session, rows["brand"].to_pylist(), app.settings.timezone)
        for row in rows.to_pylist():
            values = {k: row[k] for k in ("name_zh", "name_en", "platform")}
            current = session.get(Field, (row["brand"], row["code"]))
            if current is None:
                session.add(Field(brand=row["brand"], code=row["code"], declared=True, created_at=utc_now(), **values))
                counts.accepted += 1
            elif current.declared and all(getattr(current, k) == v for k, v in values.items()):
                counts.unchanged += 1
            else:
                for k, v in values.items():
                    setattr(current, k, v)
                current.declared = True
                counts.updated += 1
    return counts, []


def register_seen_fields(session: Session, pairs: list[dict[str, str]], column: str, file: str) -> list[str]:
    """Register fields first seen in data (not declared in fields.csv), with a warning each."""
    warnings = []
    for pair in pairs:
        brand, code = pair["brand"], pair[column]
        if session.get(Field, (brand, code)) is None:
            session.add(Field(brand=brand, code=code, name_zh=code, name_en=code, declared=False, created_at=utc_now()))
            warnings.append(
                f"{file}: field '{code}' of brand '{brand}' first seen in data; registered it — declare it in "
                f"fields.csv to give it names and a platform (新场域已自动登记)"
            )
    session.flush()
    return warnings
