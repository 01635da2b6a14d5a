"""Alembic environment: runs on the connection handed over by `siyu.store.db.migrate`."""

from alembic import context

import siyu.audiences.models  # noqa: F401  (registers the tag and audience tables)
import siyu.loyalty.models  # noqa: F401  (registers the loyalty tables)
from siyu.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
