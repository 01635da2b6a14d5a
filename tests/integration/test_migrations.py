"""The migrations create exactly the tables, columns and indexes of every model, on SQLite and
PostgreSQL: alembic's autogenerate comparison finds no difference at all."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from siyu.bootstrap import App
from siyu.store.migrations import env_models
from siyu.store.models import Base


def test_migrations_match_every_model(app: App) -> None:
    assert {"audit_log", "outbox_events", "event_consumers"} <= set(Base.metadata.tables)
    assert env_models.REGISTERED  # the model modules are registered on Base.metadata
    with app.store.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diffs == []
