"""One-ID clustering: link source customers sharing a strong identifier, keep customer ids stable.

Algorithm (all Ibis; the Python loop is over iterations, never rows):
1. Strong identifiers, minus blocklisted placeholders and values held by more than `max_share`
   source customers (both reported as junk), form edges node — identifier value.
2. Connected components by min-label propagation with pointer jumping, materialised per round,
   until no label changes.
3. Stable ids. A previous customer id is *owned* by the component holding its lexicographically
   smallest record (so a split keeps the id on one side). In each component, the survivor is the
   owned previous id with the most records in the component, ties to the smallest id; every other
   owned id is merged into it and recorded with the identifier that bridged it. A component owning
   no previous id gets `c` + the first 15 hex digits of sha256(brand|source|source_customer_id) of
   its smallest record, so a from-scratch run gives the same ids.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.engine.base import Engine
from siyu.identity.normalise import with_identifier_value
from siyu.ingest.schema import IDENTIFIER_TYPES
from siyu.privacy.hashing import keyed_hash
from siyu.privacy.lake_columns import display, is_hash, is_sealed_table

NODE = ("brand", "source", "source_customer_id")
SEP = "\x1f"
_names = itertools.count()


@dataclass
class ResolveResult:
    identity_map: pa.Table  # brand, source, source_customer_id, customer_id
    merges: pa.Table  # brand, survivor_id, merged_id, id_type, id_value (masked), id_hash
    new_customers: pa.Table  # brand, customer_id: ids this run created
    junk: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


def _strength(id_type: ir.StringValue) -> ir.StringValue:
    strong = [t for t, s in IDENTIFIER_TYPES.items() if s == "strong"]
    return ibis.ifelse(id_type.isin(strong), "strong", "weak")


def extract_identifiers(customers: ir.Table, identities: ir.Table, memberships: ir.Table) -> ir.Table:
    """All identifiers of all source customers, normalised, one row each (see module docs).

    From a sealed lake (siyu.privacy.lake_columns) phones and e-mails are read from their keyed-hash
    columns, already normalised then hashed: their value here is the hash."""
    no = ibis.literal(False)
    parts = []
    for id_type in IDENTIFIER_TYPES:
        if is_sealed_table(customers, id_type):
            hashed = customers[f"{id_type}_hash"]
            # no hash but a mask: a phone column holding an already masked value (read as before)
            raw = hashed.coalesce(customers[f"{id_type}_mask"])
            parts.append(customers.select(*NODE, id_type=ibis.literal(id_type), raw=raw, hashed=hashed.notnull()))
        elif id_type in customers.columns:
            raw = customers[id_type].cast("string")
            parts.append(customers.select(*NODE, id_type=ibis.literal(id_type), raw=raw, hashed=no))
    if is_sealed_table(identities, "id_value"):
        hashed = identities.id_value_hash
        parts.append(
            identities.select(*NODE, id_type=identities.id_type, raw=hashed.coalesce(identities.id_value),
                              hashed=hashed.notnull())
        )  # fmt: skip
    else:
        parts.append(identities.select(*NODE, id_type=identities.id_type, raw=identities.id_value.cast("string"),
                                       hashed=no))  # fmt: skip
    parts.append(memberships.select(*NODE, id_type=ibis.literal("member_no"), raw=memberships.member_no, hashed=no))
    raw = ibis.union(*parts, distinct=False)
    raw = raw.filter(raw.raw.notnull() & (raw.raw.strip() != ""))
    # A phone column holding a masked value (138****5678) is a weak `phone_masked`, never a phone.
    masked = (raw.id_type == "phone") & raw.raw.contains("*")
    raw = with_identifier_value(raw.mutate(masked=masked), "id_type", "raw", "normalised")
    id_type = ibis.ifelse(raw.masked, "phone_masked", raw.id_type)
    value = ibis.cases((raw.hashed, raw.raw), (raw.masked, raw.raw.strip()), else_=raw.normalised)
    out = raw.select(*NODE, id_type=id_type, id_value=value)
    out = out.filter(out.id_value.notnull()).distinct()
    return out.mutate(strength=_strength(out.id_type))


def _tmp(engine: Engine, expr: ir.Table, stem: str) -> ir.Table:
    return engine.materialise(expr, f"oneid_{stem}_{next(_names)}")


def _blocked_table(blocklist: set[tuple[str, str]]) -> ir.Table:
    rows = sorted(blocklist)
    return ibis.memtable(
        pa.table(
            {
                "b_type": pa.array([r[0] for r in rows], pa.string()),
                "b_value": pa.array([r[1] for r in rows], pa.string()),
            }
        )
    )


def resolve(
    engine: Engine,
    nodes: ir.Table,
    identifiers: ir.Table,
    previous_map: ir.Table | None,
    *,
    blocklist: set[tuple[str, str]],
    max_share: int = 50,
    pii_key: bytes = b"siyu-dev-key",
    counts: ir.Table | None = None,
) -> ResolveResult:
    """Cluster `nodes`. `counts` (brand, id_type, id_value, n) gives each value's holders in the whole
    workspace when `nodes` is only a part of it (an incremental run: siyu.identity.incremental), so the
    junk limit is counted over every holder, not over the part."""
    node_key = ibis.literal(SEP).join([nodes.brand, nodes.source, nodes.source_customer_id])
    nodes = nodes.select(*NODE).distinct()
    nodes = _tmp(engine, nodes.mutate(key=node_key, nid=ibis.row_number().over(order_by=node_key)), "nodes")

    strong = identifiers.filter(identifiers.strength == "strong").select(*NODE, "id_type", "id_value")
    edges = strong.join(nodes, list(NODE)).select("nid", "brand", "id_type", "id_value").distinct()
    blocked = _blocked_table(blocklist)
    is_blocked = (
        edges.join(
            blocked,
            ((edges.id_type == blocked.b_type) | (blocked.b_type == "*")) & (edges.id_value.lower() == blocked.b_value),
        )
        .select("brand", "id_type", "id_value")
        .distinct()
    )
    holders = edges.group_by(["brand", "id_type", "id_value"]).aggregate(n=edges.nid.nunique())
    if counts is not None:
        holders = holders.select("brand", "id_type", "id_value").join(counts, ["brand", "id_type", "id_value"])
    holders = holders.left_join(is_blocked.mutate(blocked=True), ["brand", "id_type", "id_value"]).select(
        "brand", "id_type", "id_value", "n", blocked=ibis._.blocked.fill_null(False)
    )
    value_order = ["brand", "id_type", "id_value"]
    holders = _tmp(engine, holders.mutate(vid=ibis.row_number().over(order_by=value_order)), "values")
    junk_values = holders.filter(holders.blocked | (holders.n > max_share))
    usable = holders.filter(~holders.blocked & (holders.n <= max_share) & (holders.n > 1))
    links = _tmp(engine, edges.join(usable, ["brand", "id_type", "id_value"]).select("nid", "vid"), "links")

    labels = _components(engine, nodes, links)
    assigned, merged_ids = _stable_ids(engine, nodes, labels, previous_map)
    merges = _merges(engine, assigned, merged_ids, links, usable, pii_key)

    id_map = engine.to_arrow(assigned.select(*NODE, "customer_id").order_by(list(NODE)))
    junk = [
        {
            "brand": r["brand"],
            "id_type": r["id_type"],
            "value_masked": display(r["id_type"], r["id_value"]),
            "source_customers": int(r["n"]),
            "reason": "blocklist" if r["blocked"] else "over_limit",
        }
        for r in engine.to_arrow(junk_values.order_by([ibis.desc("n"), "id_type", "id_value"])).to_pylist()
    ]
    stats = engine.to_arrow(
        assigned.aggregate(
            source_customers=assigned.count(),
            customers=assigned.customer_id.nunique(),
            new_customers=assigned.customer_id.nunique(where=assigned.is_new),
        )
    ).to_pylist()[0]
    stats = {k: int(v or 0) for k, v in stats.items()}
    stats["merged"] = merges.num_rows
    new_ids = engine.to_arrow(
        assigned.filter(assigned.is_new).select("brand", "customer_id").distinct().order_by(["brand", "customer_id"])
    )
    return ResolveResult(identity_map=id_map, merges=merges, new_customers=new_ids, junk=junk, stats=stats)


def _components(engine: Engine, nodes: ir.Table, links: ir.Table) -> ir.Table:
    """nid -> label (smallest nid of its connected component)."""
    label = _tmp(engine, nodes.select("nid", label=nodes.nid), "label")
    while True:
        per_value = links.join(label, "nid").group_by("vid").aggregate(vlabel=ibis._.label.min())
        proposed = links.join(per_value, "vid").group_by("nid").aggregate(best=ibis._.vlabel.min())
        step = label.left_join(proposed, "nid").select(
            "nid", label=ibis.least(label.label, ibis._.best.fill_null(label.label))
        )
        step = _tmp(engine, step, "step")
        # Pointer jumping: take the label of my label, which shortcuts long chains.
        parent = step.select(pnid=step.nid, plabel=step.label)
        jumped = step.join(parent, step.label == parent.pnid).select("nid", label=ibis.least(step.label, parent.plabel))
        jumped = _tmp(engine, jumped, "jump")
        changed = jumped.join(label, "nid").filter(lambda t: t.label != t.label_right).count()
        if engine.scalar(changed) == 0:
            return jumped
        label = jumped


def _stable_ids(
    engine: Engine, nodes: ir.Table, labels: ir.Table, previous: ir.Table | None
) -> tuple[ir.Table, ir.Table]:
    """The stable id of every node, and the previous ids merged away (label, merged_id)."""
    comp = nodes.join(labels, "nid").select(*NODE, "key", "nid", "label")
    if previous is not None:
        prev = previous.select(*NODE, prev_id=previous.customer_id)
        comp = comp.left_join(prev, list(NODE)).select(*NODE, "key", "nid", "label", "prev_id")
    else:
        comp = comp.mutate(prev_id=ibis.null(str))
    comp = _tmp(engine, comp, "comp")
    has_prev = comp.filter(comp.prev_id.notnull())
    # The component holding a previous id's smallest record owns that id.
    first = has_prev.group_by("prev_id").aggregate(first_key=has_prev.key.min())
    owner = has_prev.join(first, (has_prev.prev_id == first.prev_id) & (has_prev.key == first.first_key)).select(
        owner_label=has_prev.label, prev_id=has_prev.prev_id
    )
    sizes = has_prev.group_by(["label", "prev_id"]).aggregate(size=has_prev.count())
    owned = owner.join(sizes, (owner.owner_label == sizes.label) & (owner.prev_id == sizes.prev_id)).select(
        label=owner.owner_label, prev_id=owner.prev_id, size=sizes.size
    )
    rank = ibis.row_number().over(group_by="label", order_by=[ibis.desc("size"), "prev_id"])
    owned = _tmp(engine, owned.mutate(rank=rank), "owned")
    survivor = owned.filter(owned.rank == 0).select("label", survivor_id="prev_id")
    smallest = comp.group_by("label").aggregate(min_key=comp.key.min(), min_brand=comp.brand.min())
    fresh = "c" + smallest.min_key.hexdigest("sha256").substr(0, 15)
    ids = smallest.left_join(survivor, "label").select(
        "label",
        customer_id=ibis.coalesce(ibis._.survivor_id, fresh),
        is_new=ibis._.survivor_id.isnull(),
    )
    assigned = comp.join(ids, "label").select(*NODE, "nid", "label", "prev_id", "customer_id", "is_new")
    out = _tmp(engine, assigned, "assigned")
    out_owned = owned.filter(owned.rank > 0).select("label", merged_id="prev_id")
    return out, _tmp(engine, out_owned, "merged_ids")


def _merges(
    engine: Engine, assigned: ir.Table, merged: ir.Table, links: ir.Table, values: ir.Table, pii_key: bytes
) -> pa.Table:
    schema = pa.schema(
        [(n, pa.string()) for n in ("brand", "survivor_id", "merged_id", "id_type", "id_value", "id_hash")]
    )
    if engine.scalar(merged.count()) == 0:
        return schema.empty_table()
    # Identifiers held by records of the merged id and by records of another id in the same component.
    held = links.join(assigned, "nid").select("vid", "label", owner=assigned.prev_id.fill_null(""))
    bridging = held.group_by(["vid", "label"]).aggregate(owners=held.owner.nunique()).filter(ibis._.owners > 1)
    bridged = _tmp(engine, held.join(bridging, ["vid", "label"]).select("vid", "label", "owner"), "bridged")
    mine = bridged.join(merged.select("label", owner=merged.merged_id), ["label", "owner"]).select(
        "vid", "label", merged_id="owner"
    )
    candidates = mine.join(values, "vid").select("label", "merged_id", "brand", "id_type", "id_value")
    rank = ibis.row_number().over(group_by="merged_id", order_by=["id_type", "id_value"])
    chosen = candidates.mutate(rank=rank).filter(ibis._.rank == 0)
    survivors = assigned.select("label", "customer_id").distinct()
    rows = engine.to_arrow(
        chosen.join(survivors, "label")
        .select("brand", survivor_id="customer_id", merged_id="merged_id", id_type="id_type", raw_value="id_value")
        .order_by("merged_id")
    ).to_pylist()
    # O(merges), not O(rows): mask and key-hash the bridging value so no raw PII is kept.
    # From a sealed lake a phone or e-mail value already is its keyed hash (siyu.privacy.lake_columns).
    for r in rows:
        raw = r.pop("raw_value")
        r["id_value"] = display(r["id_type"], raw)
        r["id_hash"] = raw if is_hash(r["id_type"], raw) else keyed_hash(pii_key, r["id_type"], raw)
    return pa.Table.from_pylist(rows, schema=schema)
