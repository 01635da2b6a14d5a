"""Incremental One-ID: re-cluster only the customers that new or changed source records touch.

The lake keeps, beside the identity map, two derived tables that a full run rebuilds:
- `identity_index`: every source record's strong identifiers (brand, source, source_customer_id,
  id_type, id_value) stamped `indexed_at`. Append-only: a record's current identifiers are its rows
  with the latest stamp (a record re-indexed with no strong identifier left gets a marker row with
  NULL id_type/id_value);
- `identity_imports`: the raw imports (`_import_id`) the map already reflects.

A run takes the raw rows of imports not yet reflected (`touched` records: their nodes, and for
memberships every record that ever held a touched key, since `member_no` can move), and:
1. the touched values V = their identifiers before (index) and now (raw, normalised as a full run);
2. the holders of V now (index minus the touched records, plus the touched records' new identifiers);
3. the affected customers C = the current customer ids of the touched records and of V's holders; the
   part N = every record of C, plus the new records;
4. clusters N with `siyu.identity.resolve.resolve`, the previous map restricted to N, and each value's
   holder count over the whole workspace (so junk limits are counted for every touched value).

Why N is closed: a record outside N shares no usable value with one inside. A value held inside and
outside is either in V (then all its holders are in N) or unchanged, and an unchanged usable value
linked its holders into one previous customer, which is wholly in N or wholly out. So the result on N
is the full run's result restricted to N, and outside N the full run keeps every id: stable ids, merge
records, the survivor rule and splits are exactly the full run's. This holds while the blocklist and
`max_share` stay as they were; after changing either, run `siyu resolve --full`.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from siyu.engine.base import Engine
from siyu.identity.resolve import NODE, extract_identifiers
from siyu.ingest.schema import ENTITIES
from siyu.ingest.views import empty_entity, latest_of

INDEX_TABLE = "identity_index"
IMPORTS_TABLE = "identity_imports"
VALUE = ("brand", "id_type", "id_value")
IDENTITY_ENTITIES = ("customers", "identities", "memberships")


@dataclass
class Part:
    """What an incremental run clusters (all materialised), and what it records after."""

    touched: ir.Table  # NODE: records with new raw rows (or that held a touched membership key)
    new_index: ir.Table  # NODE + id_type, id_value: the touched records' strong identifiers now
    nodes: ir.Table  # NODE: the part N
    gone: ir.Table  # NODE: records in the map that no longer exist
    identifiers: ir.Table  # NODE + id_type, id_value, strength: N's identifiers now
    previous: ir.Table  # NODE + customer_id: the map restricted to N
    counts: ir.Table  # VALUE + n: holders in the whole workspace of every value N holds
    imports: ir.Table  # _import_id: the imports this run reflects


def new_imports(raw: dict[str, ir.Table], resolved: ir.Table) -> dict[str, ir.Table]:
    """The raw rows of imports the map does not reflect yet, per entity (anti-join on `_import_id`:
    the resolved list is small, the raw table is scanned once for one column)."""
    return {entity: table.anti_join(resolved, "_import_id") for entity, table in raw.items()}


def _touched(raw: dict[str, ir.Table], new: dict[str, ir.Table]) -> ir.Table:
    parts = []
    for entity, rows in new.items():
        key = list(ENTITIES[entity].key)
        if set(NODE) <= set(key):
            parts.append(rows.select(*NODE))
        else:  # memberships: the key (member_no) can move from one record to another
            versions = raw[entity].semi_join(rows.select(*key).distinct(), key)
            parts.append(versions.select(*NODE))
    return ibis.union(*parts, distinct=True)


def _latest_for(raw: ir.Table, entity: str, nodes: ir.Table) -> ir.Table:
    """The current rows of `entity` that belong to `nodes` (all versions of their keys, then latest)."""
    key = list(ENTITIES[entity].key)
    rows = raw.semi_join(nodes, list(NODE))
    if not set(NODE) <= set(key):
        rows = raw.semi_join(rows.select(*key).distinct(), key)
    current = latest_of(rows, entity)
    return current.semi_join(nodes, list(NODE))


def current_index(index: ir.Table, nodes: ir.Table) -> ir.Table:
    """The current identifiers (latest `indexed_at`) of `nodes` in the index."""
    rows = index.semi_join(nodes, list(NODE))
    last = rows.group_by(list(NODE)).aggregate(last_at=rows.indexed_at.max())
    rows = rows.join(last, [*NODE, rows.indexed_at == last.last_at])
    return rows.filter(rows.id_value.notnull()).select(*NODE, "id_type", "id_value")


def _holders(index: ir.Table, touched: ir.Table, new_index: ir.Table, values: ir.Table) -> ir.Table:
    """NODE + VALUE: who holds `values` now (untouched records from the index, touched from `new_index`)."""
    candidates = index.semi_join(values, list(VALUE)).select(*NODE).distinct().anti_join(touched, list(NODE))
    kept = current_index(index, candidates).semi_join(values, list(VALUE))
    fresh = new_index.semi_join(values, list(VALUE))
    return ibis.union(kept, fresh, distinct=True)


def plan(
    engine: Engine,
    raw: dict[str, ir.Table],
    new: dict[str, ir.Table],
    index: ir.Table,
    identity_map: ir.Table,
    tmp: str,
) -> Part | None:
    """The part to re-cluster, or None when no import is new. Small sets are materialised first and
    every join runs small-to-indexed (in-memory tables carry no statistics for the optimiser)."""

    def keep(expr: ir.Table, stem: str) -> ir.Table:
        return engine.materialise(expr, f"{tmp}_{stem}")

    imports = keep(ibis.union(*(t.select("_import_id") for t in new.values()), distinct=True), "imports")
    if engine.scalar(imports.count()) == 0:
        return None
    touched = keep(_touched(raw, new), "touched")
    tables = {e: _latest_for(raw[e], e, touched) for e in raw}
    customers, identities, memberships = (tables[e] if e in tables else empty_entity(e) for e in IDENTITY_ENTITIES)
    extracted = extract_identifiers(customers, identities, memberships)
    new_index = keep(extracted.filter(extracted.strength == "strong").select(*NODE, "id_type", "id_value"), "new_index")
    before = current_index(index, touched)
    values = keep(ibis.union(before.select(*VALUE), new_index.select(*VALUE), distinct=True), "values")
    holders = _holders(index, touched, new_index, values)
    reached = ibis.union(touched, holders.select(*NODE), distinct=True)
    customers = identity_map.semi_join(reached, list(NODE)).select("brand", "customer_id").distinct()
    members = identity_map.semi_join(customers, ["brand", "customer_id"]).select(*NODE)
    # A record whose only row was a membership whose member_no moved away is no record any more (a full
    # run would not see it): it leaves the map.
    present = ibis.union(*(t.select(*NODE) for t in tables.values()), distinct=True)
    nodes = keep(ibis.union(members.anti_join(touched, list(NODE)), present, distinct=True), "nodes")
    gone = keep(identity_map.semi_join(touched.anti_join(present, list(NODE)), list(NODE)).select(*NODE), "gone")
    held = ibis.union(current_index(index, nodes.anti_join(touched, list(NODE))), new_index, distinct=True)
    identifiers = keep(held.mutate(strength=ibis.literal("strong")), "identifiers")
    counted = ibis.union(identifiers.select(*VALUE), values, distinct=True)
    everyone = _holders(index, touched, new_index, counted)
    counts = keep(everyone.group_by(list(VALUE)).aggregate(n=everyone.count()), "counts")
    previous = keep(identity_map.semi_join(nodes, list(NODE)).select(*NODE, "customer_id"), "previous")
    return Part(touched, new_index, nodes, gone, identifiers, previous, counts, imports)
