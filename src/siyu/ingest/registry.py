"""Brands, fields (场域) and relation types (关系类型) known to the store: registered from imported
data, or declared in `fields.csv` / `relation_types.csv` (the declaration entities)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.ingest.counts import Counts
from siyu.ingest.schema import BUILTIN_RELATION_TYPES
from siyu.store.models import Base, Brand, Field, RelationType


def brand_timezones(app: App) -> dict[str, str]:
    with app.store.unit_of_work() as session:
        return {b.code: b.timezone for b in session.scalars(select(Brand)).all()}


def ensure_brands(session: Session, codes: list[str], timezone: str) -> None:
    known = set(session.scalars(select(Brand.code)).all())
    for code in sorted(set(codes) - known):
        session.add(Brand(code=code, timezone=timezone, created_at=utc_now()))
    session.flush()


class _Declared:
    """How one declaration entity maps to its store table."""

    def __init__(self, model: type[Base], values: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.model, self.values = model, values

    def current(self, session: Session, row: dict[str, Any]) -> Any:
        return session.get(self.model, (row["brand"], row["code"]))

    def outcome(self, session: Session, row: dict[str, Any]) -> str:
        current = self.current(session, row)
        if current is None:
            return "accepted"
        same = all(getattr(current, k) == v for k, v in self.values(row).items())
        return "unchanged" if same and getattr(current, "declared", True) else "updated"


_DECLARED = {
    "fields": _Declared(Field, lambda row: {k: row[k] for k in ("name_zh", "name_en", "platform")}),
    "relation_types": _Declared(
        RelationType,
        lambda row: {k: row[k] for k in ("name_zh", "name_en", "field")} | {"connection": row["connection"] != "false"},
    ),
}


def declaration_outcomes(app: App, entity: str, rows: list[dict[str, Any]]) -> list[str]:
    """accepted / updated / unchanged of each valid declaration row against the store."""
    declared = _DECLARED[entity]
    with app.store.unit_of_work() as session:
        return [declared.outcome(session, row) for row in rows]


def apply_declarations(app: App, entity: str, rows: pa.Table) -> tuple[Any, list[str]]:
    """Upsert the declarations of `fields.csv` or `relation_types.csv`; returns (Counts, warnings)."""

    declared = _DECLARED[entity]
    counts = Counts()
    with app.store.unit_of_work() as session:
        ensure_brands(session, rows["brand"].to_pylist(), app.settings.timezone)
        for row in rows.to_pylist():
            values = declared.values(row)
            outcome = declared.outcome(session, row)
            setattr(counts, outcome, getattr(counts, outcome) + 1)
            current = declared.current(session, row)
            if current is None:
                extra = {"declared": True} if declared.model is Field else {}
                session.add(
                    declared.model(brand=row["brand"], code=row["code"], created_at=utc_now(), **values, **extra)
                )
                continue
            for k, v in values.items():
                setattr(current, k, v)
            if declared.model is Field:
                current.declared = True
    return counts, []


def declared_relation_types(app: App) -> frozenset[tuple[str, str]]:
    """(brand, code) of every declared relation type (built-ins need no declaration)."""
    with app.store.unit_of_work() as session:
        rows = session.execute(select(RelationType.brand, RelationType.code)).all()
    return frozenset((brand, code) for brand, code in rows)


def connection_types(app: App, brand: str) -> list[str]:
    """The relation types that count as a connection (basic layer) for `brand`: the built-ins and
    its declared types, less any it declared `connection=false`."""
    with app.store.unit_of_work() as session:
        rows = session.execute(select(RelationType.code, RelationType.connection).where(RelationType.brand == brand))
        declared = {code: connection for code, connection in rows.all()}
    return sorted(code for code in {*BUILTIN_RELATION_TYPES, *declared} if declared.get(code, True))


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
