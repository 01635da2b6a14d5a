"""Data scopes (数据范围): which customers a store manager or a guide may open. A customer is in a
guide's scope when one of their source records, orders or relations names the guide (guide_code /
staff_code); in a store manager's when one of their records or orders names the store. Every other
role sees its whole brand (brand scope is checked by the lookups themselves)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.bootstrap import App
from siyu.console.users import User
from siyu.identity.resolve import NODE
from siyu.identity.service import MAP_TABLE
from siyu.ingest.views import latest

SCOPED_ROLES = frozenset({"guide", "store_manager"})


def _scoped_nodes(app: App, user: User, brand: str) -> ir.Table | None:
    """The source records (brand, source, source_customer_id) the user's store or staff id names."""
    parts: list[ir.Table] = []
    wanted = (
        [("customers", "guide_code"), ("orders", "guide_code"), ("relations", "staff_code")]
        if user.role == "guide"
        else [("customers", "store_code"), ("orders", "store_code")]
    )
    value = user.staff_id if user.role == "guide" else user.store
    for entity, column in wanted:
        table = latest(app.engine, entity)
        if table is None or column not in table.columns:
            continue
        parts.append(table.filter((table.brand == brand) & (table[column] == value)).select(*NODE))
    if not parts:
        return None
    return ibis.union(*parts, distinct=True) if len(parts) > 1 else parts[0]


def in_scope(app: App, user: User, brand: str, customer_id: str) -> bool:
    if user.role not in SCOPED_ROLES:
        return True
    nodes = _scoped_nodes(app, user, brand)
    idmap = app.engine.table(MAP_TABLE)
    if nodes is None or idmap is None:
        return False
    mine = idmap.filter((idmap.customer_id == customer_id) & (idmap.brand == brand)).select(*NODE)
    return int(app.engine.to_arrow(mine.semi_join(nodes, list(NODE)).count().name("n").as_table())["n"][0].as_py()) > 0


def scoped_customers(app: App, user: User, brand: str, limit: int = 50) -> list[str]:
    """The customers of a guide / store manager (smallest ids first)."""
    nodes = _scoped_nodes(app, user, brand)
    idmap = app.engine.table(MAP_TABLE)
    if nodes is None or idmap is None:
        return []
    ids = idmap.semi_join(nodes, list(NODE)).select("customer_id").distinct().order_by("customer_id").limit(limit)
    return [str(v) for v in app.engine.to_arrow(ids)["customer_id"].to_pylist()]
