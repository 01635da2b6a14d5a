"""Migration 0009 creates exactly the `materialisations` table and index of siyu.store.models, on
SQLite and PostgreSQL (alembic's autogenerate comparison finds no difference for it)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from siyu.bootstrap import App
from siyu.store.models import Base, MaterialisationRun


def _about_materialisations(diff: object) -> bool:
    item = diff[0] if isinstance(diff, list) else diff
    return "materialisations" in repr(item)


def test_migration_matches_models(app: App) -> None:
    with app.store.engine.connect() as connection:
        assert MaterialisationRun.__tablename__ in Base.metadata.tables
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diffs if _about_materialisations(d)] == []
