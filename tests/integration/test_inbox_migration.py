"""Migration 0007 gives the inbox exactly the dead-letter columns and index of the model, on SQLite
and PostgreSQL (alembic's autogenerate comparison finds no difference for the inbox table)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from siyu.bootstrap import App
from siyu.store.models import Base


def _about_inbox(diff: object) -> bool:
    item = diff[0] if isinstance(diff, list) else diff
    assert isinstance(item, tuple)
    if str(item[0]) in ("add_index", "remove_index", "add_table", "remove_table"):
        return "inbox" in str(getattr(item[1], "table", item[1]).name)
    return "inbox" in {str(part) for part in item}


def test_inbox_migration_matches_the_model(app: App) -> None:
    with app.store.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        columns = {c["name"] for c in inspect(connection).get_columns("inbox")}
        indexes = {i["name"] for i in inspect(connection).get_indexes("inbox")}
    assert [d for d in diffs if _about_inbox(d)] == []
    assert {"attempts", "dead_at", "dead_reason", "dropped_at", "dropped_by"} <= columns
    assert {"ix_inbox_pending", "ix_inbox_dead"} <= indexes
