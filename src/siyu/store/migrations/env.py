"""Alembic environment: runs on the connection handed over by `siyu.store.db.migrate`."""

from alembic import context

from siyu.store.migrations import env_models
from siyu.store.models import Base

assert env_models.REGISTERED  # every model module is imported: the metadata is complete

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
