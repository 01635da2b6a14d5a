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
import pyarrow as pa

from siyu.engine.steps import Steps
from siyu.identity.resolve import NODE, extract_identifiers
from siyu.ingest.schema import ENTITIES
from siyu.ingest.views import latest_of

INDEX_TABLE = "identity_index"
IMPORTS_TABLE = "identity_imports"
VALUE = ("brand", "id_type", "id_value")
IDENTITY_ENTITIES = ("customers", "identities", "memberships")
# The inputs a run binds in its `Steps` (the raw entity tables as `inc_raw_<entity>`).
INDEX, MAP, RESOLVED = "inc_index", "inc_map", "inc_resolved"


@dataclass(frozen=True)
class Part:
    """The tables (names in the run's `Steps`) an incremental run clusters, and what it records after."""

    touched: str = "inc_touched"  # NODE: records with new raw rows (or that held a touched membership key)
    new_index: str = "inc_new_index"  # NODE + id_type, id_value: the touched records' strong identifiers now
    nodes: str = "inc_nodes"  # NODE: the part N
    gone: str = "inc_gone"  # NODE: records in the map that no longer exist
    identifiers: str = "inc_identifiers"  # NODE + id_type, id_value, strength: N's identifiers now
    previous: str = "inc_previous"  # NODE + customer_id: the map restricted to N
    counts: str = "inc_counts"  # VALUE + n: holders in the whole workspace of every value N holds
    imports: str = "inc_imports"  # _import_id: the imports this run reflects


def raw_name(entity: str) -> str:
    return f"inc_raw_{entity}"


def empty_raw(entity: str) -> pa.Table:
    """A raw table of `entity` with no rows (an entity never imported), bound so every run has the same SQL."""
    names = [n for n in ENTITIES[entity].column_names if n not in ("_import_id", "ingested_at")]
    columns = {n: pa.array([], pa.string()) for n in names}
    columns["_import_id"] = pa.array([], pa.string())
    columns["ingested_at"] = pa.array([], pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


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


def plan(steps: Steps) -> Part | None:
    """Compute the part to re-cluster into `steps` (tables named as in `Part`), or None when no import is
    new. The caller binds the inputs: `inc_raw_<entity>` for each of IDENTITY_ENTITIES, INDEX (the
    identifier index), MAP (the identity map) and RESOLVED (the imports it reflects). Small sets are
    materialised first and every join runs small-to-indexed (temporary tables carry no statistics for
    the optimiser)."""
    t, part = steps.table, Part()

    def raw() -> dict[str, ir.Table]:
        return {e: t(raw_name(e)) for e in IDENTITY_ENTITIES}

    def new() -> dict[str, ir.Table]:
        """The raw rows of imports the map does not reflect yet, per entity (anti-join on `_import_id`:
        the resolved list is small, the raw table is scanned once for one column)."""
        return {e: table.anti_join(t(RESOLVED), "_import_id") for e, table in raw().items()}

    steps.keep(part.imports, lambda: ibis.union(*(n.select("_import_id") for n in new().values()), distinct=True))
    if steps.scalar("inc_imports_count", lambda: t(part.imports).count()) == 0:
        return None
    steps.keep(part.touched, lambda: _touched(raw(), new()))
    for entity in IDENTITY_ENTITIES:

        def latest(entity: str = entity) -> ir.Table:
            return _latest_for(t(raw_name(entity)), entity, t(part.touched))

        steps.keep(f"inc_latest_{entity}", latest)

    def current() -> dict[str, ir.Table]:
        return {e: t(f"inc_latest_{e}") for e in IDENTITY_ENTITIES}

    def new_index() -> ir.Table:
        extracted = extract_identifiers(*current().values())
        return extracted.filter(extracted.strength == "strong").select(*NODE, "id_type", "id_value")

    steps.keep(part.new_index, new_index)

    def values() -> ir.Table:
        before = current_index(t(INDEX), t(part.touched))
        return ibis.union(before.select(*VALUE), t(part.new_index).select(*VALUE), distinct=True)

    steps.keep("inc_values", values)

    def present() -> ir.Table:
        return ibis.union(*(c.select(*NODE) for c in current().values()), distinct=True)

    def nodes() -> ir.Table:
        touched, id_map = t(part.touched), t(MAP)
        holders = _holders(t(INDEX), touched, t(part.new_index), t("inc_values"))
        reached = ibis.union(touched, holders.select(*NODE), distinct=True)
        customers = id_map.semi_join(reached, list(NODE)).select("brand", "customer_id").distinct()
        members = id_map.semi_join(customers, ["brand", "customer_id"]).select(*NODE)
        # A record whose only row was a membership whose member_no moved away is no record any more (a
        # full run would not see it): it leaves the map.
        return ibis.union(members.anti_join(touched, list(NODE)), present(), distinct=True)

    steps.keep(part.nodes, nodes)

    def gone() -> ir.Table:
        return t(MAP).semi_join(t(part.touched).anti_join(present(), list(NODE)), list(NODE)).select(*NODE)

    steps.keep(part.gone, gone)

    def identifiers() -> ir.Table:
        untouched = t(part.nodes).anti_join(t(part.touched), list(NODE))
        held = ibis.union(current_index(t(INDEX), untouched), t(part.new_index), distinct=True)
        return held.mutate(strength=ibis.literal("strong"))

    steps.keep(part.identifiers, identifiers)

    def counts() -> ir.Table:
        counted = ibis.union(t(part.identifiers).select(*VALUE), t("inc_values"), distinct=True)
        everyone = _holders(t(INDEX), t(part.touched), t(part.new_index), counted)
        return everyone.group_by(list(VALUE)).aggregate(n=everyone.count())

    steps.keep(part.counts, counts)
    steps.keep(part.previous, lambda: t(MAP).semi_join(t(part.nodes), list(NODE)).select(*NODE, "customer_id"))
    return part
