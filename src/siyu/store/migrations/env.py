"""Alembic environment: runs on the connection handed over by `siyu.store.db.migrate`."""

from alembic import context

from siyu.audiences import models as audience_models
from siyu.loyalty import models as loyalty_models
from siyu.store.models import Base

# Importing the model modules registers their tables on Base.metadata.
REGISTERED = (audience_models, loyalty_models)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
