"""INSERT … ON CONFLICT DO NOTHING for the store's two dialects (SQLite and PostgreSQL both have it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring(session: Session, model: Any, index_elements: list[str]) -> Any:
    """An insert into `model` that skips rows whose `index_elements` (a unique key) already exist."""
    maker = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return maker(model).on_conflict_do_nothing(index_elements=index_elements)
