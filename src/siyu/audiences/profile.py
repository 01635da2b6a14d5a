"""Profile conditions: attributes of the customer records, identifiers held, membership (tier,
points) and relations held in a field. A merged customer matches when any of its source records
does (see `siyu.audiences.compare` for `!=` and `missing`)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.audiences.compare import select
from siyu.audiences.context import ID, Context, empty_ids, ids
from siyu.audiences.rules import Leaf
from siyu.engine.adapter import utc_to_local
from siyu.identity.resolve import extract_identifiers
from siyu.ingest.schema import ENTITIES, IDENTIFIER_TYPES
from siyu.metrics.layers import active_at


def _empty_source(entity: str) -> ir.Table:
    names = ENTITIES[entity].column_names
    return ibis.memtable(pa.table({n: pa.array([], pa.string()) for n in names}))


def attribute(ctx: Context, leaf: Leaf) -> ir.Table:
    customers = ctx.raw("customers")
    if customers is None:
        return ctx.universe if leaf.op == "missing" else empty_ids()
    name = leaf.subject or ""
    if name == "birthday_month":
        col: ir.Value = customers.birthday.month()
    elif name == "created_at":
        col = utc_to_local(customers.created_at, ctx.brand.timezone).date()
    else:
        col = customers[name]
    rows = ctx.resolve(customers.select("source", "source_customer_id", v=col))
    return select(ctx, rows, "v", leaf.op, leaf.value)


def identifier_rows(ctx: Context, types: tuple[str, ...]) -> ir.Table:
    """customer_id, id_type, id_value of the brand's normalised identifiers of the given types."""
    customers = ctx.raw("customers")
    if customers is None:
        return ibis.memtable(
            {ID: [], "id_type": [], "id_value": []}, schema={ID: "string", "id_type": "string", "id_value": "string"}
        )
    identities, memberships = (ctx.raw(e) for e in ("identities", "memberships"))
    found = extract_identifiers(
        customers,
        _empty_source("identities") if identities is None else identities,
        _empty_source("memberships") if memberships is None else memberships,
    )
    found = found.filter(found.id_type.isin(types))
    return ctx.resolve(found.select("source", "source_customer_id", "id_type", "id_value")).select(
        ID, "id_type", "id_value"
    )


def identified(ctx: Context) -> ir.Table:
    """customer_id, id_type of every identifier the brand's customers hold, computed once per
    compilation into a temporary table. Extracting identifiers is one large expression (about 260 KB
    of SQL: every type's normalisation), so conditions on several identifiers, and the reachability
    lights, share this one result instead of each repeating it (20 conditions were 6 MB of SQL)."""
    if "identified" not in ctx.cache:
        found = identifier_rows(ctx, tuple(IDENTIFIER_TYPES))
        found = found.filter(found.id_value.notnull()).select(ID, "id_type").distinct()
        ctx.cache["identified"] = ctx.materialise(found, "identified")
    table: ir.Table = ctx.cache["identified"]
    return table


def identifier(ctx: Context, leaf: Leaf) -> ir.Table:
    found = identified(ctx)
    held = ids(found.filter(found.id_type == (leaf.subject or "")))
    return ctx.universe.anti_join(held, ID) if leaf.op == "missing" else held


def members_now(ctx: Context) -> ir.Table | None:
    """Membership rows active at the end of the as-of day, with customer_id."""
    m = ctx.raw("memberships")
    if m is None:
        return None
    end = ibis.literal(ctx.end_of_as_of(), type="timestamp('UTC')")
    return ctx.resolve(m.filter(active_at(m, "joined_at", "left_at", end)))


def membership(ctx: Context, leaf: Leaf) -> ir.Table:
    rows = members_now(ctx)
    if rows is None:
        return ctx.universe if leaf.op == "missing" else empty_ids()
    subject = leaf.subject
    if subject == "member":
        return select(ctx, rows.select(ID, v=rows.member_no), "v", leaf.op, None)
    column = {
        "tier": rows.tier,
        "program": rows.program,
        "points": rows.points_balance,
        "joined_at": utc_to_local(rows.joined_at, ctx.brand.timezone).date(),
    }[subject or ""]
    return select(ctx, rows.select(ID, v=column), "v", leaf.op, leaf.value)


def relation_rows(
    ctx: Context, types: tuple[str, ...] | None, fields: tuple[str, ...] | None, active: bool = True
) -> ir.Table:
    """customer_id, field, relation_type of relations (active at the end of the as-of day)."""
    r = ctx.raw("relations")
    if r is None:
        return ibis.memtable(
            {ID: [], "field": [], "relation_type": []},
            schema={ID: "string", "field": "string", "relation_type": "string"},
        )
    if types is not None:
        r = r.filter(r.relation_type.isin(types))
    if fields is not None:
        r = r.filter(r.field.isin(fields))
    end = ibis.literal(ctx.end_of_as_of(), type="timestamp('UTC')")
    r = r.filter(active_at(r, "started_at", "ended_at", end) if active else r.started_at < end)
    return ctx.resolve(r.select("source", "source_customer_id", "field", "relation_type")).select(
        ID, "field", "relation_type"
    )


def relation(ctx: Context, leaf: Leaf) -> ir.Table:
    types = None if leaf.subject == "any" else (leaf.subject or "",)
    field = leaf.params.get("field")
    fields = None if field is None else ((field,) if isinstance(field, str) else tuple(field))
    held = ids(relation_rows(ctx, types, fields, leaf.params.get("active", True)))
    return ctx.universe.anti_join(held, ID) if leaf.op == "missing" else held
