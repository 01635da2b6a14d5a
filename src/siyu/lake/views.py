"""Views over raw lake tables: "latest version per key" (raw tables are append-only)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.engine.connect import Engine
from siyu.ingest.schema import ENTITIES


def latest(engine: Engine, entity: str) -> ir.Table | None:
    """The current version of every key of a raw entity table, or None if nothing was imported."""
    table = engine.table(entity)
    if table is None:
        return None
    key = list(ENTITIES[entity].key)
    ranked = table.mutate(
        _rank=ibis.row_number().over(group_by=key, order_by=[ibis.desc("ingested_at"), ibis.desc("_import_id")])
    )
    return ranked.filter(ranked._rank == 0).drop("_rank")
