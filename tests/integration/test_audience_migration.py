"""Migration 0004 creates exactly the tables and columns of siyu.audiences.models, on SQLite and
PostgreSQL (alembic's autogenerate comparison finds no difference for those tables)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from siyu.audiences import models
from siyu.bootstrap import App

TABLES = {t.name for t in models.Base.metadata.sorted_tables if t.name.startswith(("tag_", "audience"))}


def _table_of(diff: object) -> str | None:
    """The table an autogenerate difference is about."""
    item = diff[0] if isinstance(diff, list) else diff
    assert isinstance(item, tuple)
    kind = str(item[0])
    if kind in ("add_table", "remove_table"):
        return str(item[1].name)
    if kind in ("add_index", "remove_index"):
        return str(item[1].table.name)
    if kind.endswith("_column") or kind.startswith("modify_"):
        return str(item[2])
    return None


def test_migration_matches_models(app: App) -> None:
    assert {
        "tag_groups",
        "tag_definitions",
        "tag_assignments",
        "tag_history",
        "audiences",
        "audience_snapshots",
        "audience_exports",
    } == TABLES
    with app.store.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), models.Base.metadata)
    mine = [d for d in diffs if _table_of(d) in TABLES]
    assert mine == []
