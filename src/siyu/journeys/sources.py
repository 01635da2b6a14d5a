"""Occurrences of an event type in the lake, resolved to customers: what triggers, `wait_for` and
goals look for. Ibis expressions only; the caller adds its own window and reads the result.

`order_paid` comes from orders (paid), `member_joined` from memberships (joined_at), anything else
from the events table by its `type` (points_expiring, coupon_expiring, layer_changed, consent… are
events like any other). Every occurrence has: customer_id, occurrence (a stable key), occurred_at,
ingested_at, and `props` (JSON text of its properties, for the enrolment context).
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.bootstrap import App
from siyu.identity.service import MAP_TABLE
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import current

NODE = ["source", "source_customer_id"]
# Source columns that become context properties of an order / a membership occurrence.
ORDER_PROPS = ("order_id", "amount_fen", "store_code", "guide_code", "coupon_code")
MEMBER_PROPS = ("member_no", "program", "tier", "enrol_store", "enrol_guide")


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def identity_map(app: App, brand: str) -> ir.Table | None:
    idmap = app.engine.table(MAP_TABLE)
    if idmap is None:
        return None
    return idmap.filter(idmap.brand == brand).select(*NODE, "customer_id")


def _json_of(table: ir.Table, columns: tuple[str, ...]) -> ir.StringValue:
    """A JSON object text of some columns (nulls left out), built by the engine."""
    parts = [
        ibis.ifelse(
            table[c].isnull(),
            ibis.literal(""),
            ibis.literal(f'"{c}":') + ibis.literal('"') + table[c].cast("string").replace('"', '\\"') + '"',
        )
        for c in columns
        if c in table.columns
    ]
    body = parts[0]
    for part in parts[1:]:
        body = ibis.ifelse(body == "", part, ibis.ifelse(part == "", body, body + "," + part))
    return "{" + body + "}"


def _column(rows: ir.Table, event_type: str, key: str) -> ir.StringValue:
    """A property of an occurrence as text: an order's / membership's column, an event's property."""
    if event_type in ("order_paid", "member_joined"):
        return rows[key].cast("string")
    return rows.properties.cast("json")[key].str


def occurrences(
    app: App, brand: str, event_type: str, where: dict[str, Any], match: str | None = None
) -> ir.Table | None:
    """Occurrences of `event_type` for the brand's customers that satisfy `where`; with `match`,
    a column `match_value` holds the property `match` (as text). None: nothing of that kind yet."""
    idmap = identity_map(app, brand)
    if idmap is None:
        return None
    if event_type == "order_paid":
        rows = current(app, "orders")
        if rows is None:
            return None
        rows = rows.filter((rows.brand == brand) & rows.status.isin(PAID_STATUSES) & rows.paid_at.notnull())
        rows = rows.mutate(
            occurrence="order:" + rows.order_id, occurred_at=rows.paid_at, props=_json_of(rows, ORDER_PROPS)
        )
    elif event_type == "member_joined":
        rows = current(app, "memberships")
        if rows is None:
            return None
        rows = rows.filter(rows.brand == brand)
        rows = rows.mutate(
            occurrence="member:" + rows.member_no, occurred_at=rows.joined_at, props=_json_of(rows, MEMBER_PROPS)
        )
    else:
        rows = current(app, "events")
        if rows is None:
            return None
        rows = rows.filter((rows.brand == brand) & (rows.type == event_type))
        rows = rows.mutate(
            occurrence="event:" + rows.source + ":" + rows.event_id,
            props=rows.properties.fill_null("{}"),
        )
    for key, value in where.items():
        rows = rows.filter(_column(rows, event_type, key) == _text(value))
    if match is not None:
        rows = rows.mutate(match_value=_column(rows, event_type, match))
    keep = ["customer_id", "occurrence", "occurred_at", "ingested_at", "props"]
    if match is not None:
        keep.append("match_value")
    return rows.join(idmap, NODE).select(*keep)


def unresolved(app: App, brand: str, event_type: str) -> ir.Table | None:
    """Rows of `event_type` whose customer One-ID has not placed yet (ingested_at only)."""
    idmap = identity_map(app, brand)
    entity = {"order_paid": "orders", "member_joined": "memberships"}.get(event_type, "events")
    rows = current(app, entity)
    if rows is None or idmap is None:
        return None
    rows = rows.filter(rows.brand == brand)
    if entity == "events":
        rows = rows.filter(rows.type == event_type)
    return rows.anti_join(idmap, NODE).select("ingested_at")


def empty_candidates() -> pa.Table:
    """No candidates, in the shape every trigger answers."""
    return pa.table(
        {
            "customer_id": pa.array([], pa.string()),
            "entry_key": pa.array([], pa.string()),
            "occurred_at": pa.array([], pa.timestamp("us", "UTC")),
            "props": pa.array([], pa.string()),
        }
    )
