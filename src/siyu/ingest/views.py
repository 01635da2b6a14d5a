"""Views over raw lake tables: "latest version per key" (raw tables are append-only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import func, select

from siyu.engine.connect import Engine
from siyu.ingest.schema import ENTITIES
from siyu.store.models import ImportJob

NODE = ("brand", "source", "source_customer_id")

if TYPE_CHECKING:
    from siyu.bootstrap import App


def latest(engine: Engine, entity: str) -> ir.Table | None:
    """The current version of every key of a raw entity table, or None if nothing was imported."""
    table = engine.table(entity)
    if table is None:
        return None
    return latest_of(table, entity)


def latest_of(table: ir.Table, entity: str) -> ir.Table:
    """The latest version per key of `entity` among the raw rows of `table` (all of them or a subset
    holding every version of the keys it holds, e.g. a semi-join on the key)."""
    key = list(ENTITIES[entity].key)
    ranked = table.mutate(
        _rank=ibis.row_number().over(group_by=key, order_by=[ibis.desc("ingested_at"), ibis.desc("_import_id")])
    )
    return ranked.filter(ranked._rank == 0).drop("_rank")


def latest_for_records(engine: Engine, entity: str, records: ir.Table) -> ir.Table | None:
    """`latest(engine, entity)` cut to the rows of some source records (`records`: brand, source,
    source_customer_id) — the same rows, but only the versions of keys those records ever held are
    ranked, so one customer's view reads their handful of rows instead of ranking the whole table.
    (A key that moved to another record is ranked with all its versions, so it is not shown here.)"""
    table = engine.table(entity)
    if table is None:
        return None
    key = list(ENTITIES[entity].key)
    held = table.semi_join(records, list(NODE)).select(*key).distinct()
    table = table.semi_join(held, key)
    return latest_of(table, entity).semi_join(records, list(NODE))


def current(app: App, entity: str) -> ir.Table | None:
    """Like `latest`, but skips the per-key ranking when no import ever replaced a row of `entity`:
    then every key has one version and the raw table already is the current one (a full window
    over 30M events costs seconds that metrics run every time)."""
    with app.store.unit_of_work() as session:
        replaced = session.scalar(
            select(func.coalesce(func.sum(ImportJob.updated), 0)).where(
                # `running` counts too: a job killed after its lake commit never got to `committed`.
                ImportJob.entity == entity,
                ImportJob.status != "failed",
            )
        )
    if replaced:
        return latest(app.engine, entity)
    return app.engine.table(entity)


def empty_entity(entity: str) -> ir.Table:
    """An empty raw table of `entity`'s columns (strings), for an entity never imported."""
    names = ENTITIES[entity].column_names
    return ibis.memtable(pa.table({n: pa.array([], pa.string()) for n in names}))
