"""Data scopes (数据范围) over customers: the customers a store or a staff member (guide) names. A
customer is a store's when one of their source records or orders names the store (`store_code`); a
guide's when one of their records, orders or relations names the guide (`guide_code` /
`staff_code`). The console's store managers and guides (siyu.console.scope) and store-bound API
keys (siyu.api.scope) use these same rules."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.bootstrap import App
from siyu.identity.resolve import NODE
from siyu.identity.service import MAP_TABLE
from siyu.ingest.views import latest

STORE_COLUMNS = (("customers", "store_code"), ("orders", "store_code"))
STAFF_COLUMNS = (("customers", "guide_code"), ("orders", "guide_code"), ("relations", "staff_code"))


def scoped_nodes(app: App, brand: str, *, store: str | None = None, staff: str | None = None) -> ir.Table | None:
    """The source records (brand, source, source_customer_id) the store or the staff id names."""
    wanted, value = (STAFF_COLUMNS, staff) if staff is not None else (STORE_COLUMNS, store)
    parts: list[ir.Table] = []
    for entity, column in wanted:
        table = latest(app.engine, entity)
        if table is None or column not in table.columns:
            continue
        parts.append(table.filter((table.brand == brand) & (table[column] == value)).select(*NODE))
    if not parts:
        return None
    return ibis.union(*parts, distinct=True) if len(parts) > 1 else parts[0]


def in_scope(app: App, brand: str, customer_id: str, *, store: str | None = None, staff: str | None = None) -> bool:
    """Whether the customer is one the store / staff id names."""
    nodes = scoped_nodes(app, brand, store=store, staff=staff)
    idmap = app.engine.table(MAP_TABLE)
    if nodes is None or idmap is None:
        return False
    mine = idmap.filter((idmap.customer_id == customer_id) & (idmap.brand == brand)).select(*NODE)
    return int(app.engine.to_arrow(mine.semi_join(nodes, list(NODE)).count().name("n").as_table())["n"][0].as_py()) > 0


def scoped_ids(
    app: App, brand: str, *, store: str | None = None, staff: str | None = None, limit: int | None = 50
) -> list[str]:
    """The customers of a store / staff id (smallest ids first)."""
    nodes = scoped_nodes(app, brand, store=store, staff=staff)
    idmap = app.engine.table(MAP_TABLE)
    if nodes is None or idmap is None:
        return []
    ids = idmap.semi_join(nodes, list(NODE)).select("customer_id").distinct().order_by("customer_id")
    if limit is not None:
        ids = ids.limit(limit)
    return [str(v) for v in app.engine.to_arrow(ids)["customer_id"].to_pylist()]
