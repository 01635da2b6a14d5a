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

from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.engine.base import Engine
from siyu.engine.steps import Steps
from siyu.identity.normalise import with_identifier_value
from siyu.ingest.schema import IDENTIFIER_TYPES
from siyu.privacy.hashing import keyed_hash
from siyu.privacy.lake_columns import display, is_hash, is_sealed_table

NODE = ("brand", "source", "source_customer_id")
SEP = "\x1f"


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


def _blocked_table(blocklist: set[tuple[str, str]]) -> pa.Table:
    rows = sorted(blocklist)
    return pa.table(
        {
            "b_type": pa.array([r[0] for r in rows], pa.string()),
            "b_value": pa.array([r[1] for r in rows], pa.string()),
        }
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
    junk limit is counted over every holder, not over the part. A one-off run: its steps are compiled
    for this call (`resolve_steps` reuses them across runs)."""
    steps = Steps(engine, compile_once=False)
    steps.bind("oneid_in_nodes", nodes)
    steps.bind("oneid_in_identifiers", identifiers)
    if previous_map is not None:
        steps.bind("oneid_in_previous", previous_map)
    if counts is not None:
        steps.bind("oneid_in_counts", counts)
    return resolve_steps(
        steps,
        "oneid_in_nodes",
        "oneid_in_identifiers",
        "oneid_in_previous" if previous_map is not None else None,
        blocklist=blocklist,
        max_share=max_share,
        pii_key=pii_key,
        counts="oneid_in_counts" if counts is not None else None,
    )


def resolve_steps(
    steps: Steps,
    nodes_in: str,
    identifiers_in: str,
    previous_in: str | None,
    *,
    blocklist: set[tuple[str, str]],
    max_share: int,
    pii_key: bytes,
    counts: str | None = None,
) -> ResolveResult:
    """`resolve` over tables named in `steps` (bound inputs or earlier steps). Every step has a stable name
    and reads stable names, so with a compiling `Steps` a later run re-runs SQL compiled once (the caller's
    `start` key must cover `max_share` and whether `previous_in` and `counts` are given)."""
    t = steps.table
    steps.bind("oneid_blocklist", _blocked_table(blocklist))

    def numbered_nodes() -> ir.Table:
        source = t(nodes_in)
        nodes = source.select(*NODE).distinct()
        node_key = ibis.literal(SEP).join([nodes.brand, nodes.source, nodes.source_customer_id])
        return nodes.mutate(key=node_key, nid=ibis.row_number().over(order_by=node_key))

    steps.keep("oneid_nodes", numbered_nodes)

    def edges() -> ir.Table:
        ids, nodes = t(identifiers_in), t("oneid_nodes")
        strong = ids.filter(ids.strength == "strong").select(*NODE, "id_type", "id_value")
        return strong.join(nodes, list(NODE)).select("nid", "brand", "id_type", "id_value").distinct()

    def holders() -> ir.Table:
        e, blocked = edges(), t("oneid_blocklist")
        is_blocked = (
            e.join(
                blocked,
                ((e.id_type == blocked.b_type) | (blocked.b_type == "*")) & (e.id_value.lower() == blocked.b_value),
            )
            .select("brand", "id_type", "id_value")
            .distinct()
        )
        held = e.group_by(["brand", "id_type", "id_value"]).aggregate(n=e.nid.nunique())
        if counts is not None:
            held = held.select("brand", "id_type", "id_value").join(t(counts), ["brand", "id_type", "id_value"])
        held = held.left_join(is_blocked.mutate(blocked=True), ["brand", "id_type", "id_value"]).select(
            "brand", "id_type", "id_value", "n", blocked=ibis._.blocked.fill_null(False)
        )
        return held.mutate(vid=ibis.row_number().over(order_by=["brand", "id_type", "id_value"]))

    steps.keep("oneid_values", holders)

    def usable() -> ir.Table:
        v = t("oneid_values")
        return v.filter(~v.blocked & (v.n <= max_share) & (v.n > 1))

    steps.keep("oneid_links", lambda: edges().join(usable(), ["brand", "id_type", "id_value"]).select("nid", "vid"))
    labels = _components(steps)
    _stable_ids(steps, labels, previous_in)
    merges = _merges(steps, pii_key)

    assigned = "oneid_assigned"
    id_map = steps.rows("oneid_map_rows", lambda: t(assigned).select(*NODE, "customer_id").order_by(list(NODE)))

    def junk_rows() -> ir.Table:
        v = t("oneid_values")
        return v.filter(v.blocked | (v.n > max_share)).order_by([ibis.desc("n"), "id_type", "id_value"])

    junk = [
        {
            "brand": r["brand"],
            "id_type": r["id_type"],
            "value_masked": display(r["id_type"], r["id_value"]),
            "source_customers": int(r["n"]),
            "reason": "blocklist" if r["blocked"] else "over_limit",
        }
        for r in steps.rows("oneid_junk_rows", junk_rows).to_pylist()
    ]

    def stats_row() -> ir.Table:
        a = t(assigned)
        return a.aggregate(
            source_customers=a.count(),
            customers=a.customer_id.nunique(),
            new_customers=a.customer_id.nunique(where=a.is_new),
        )

    stats = steps.rows("oneid_stats", stats_row).to_pylist()[0]
    stats = {k: int(v or 0) for k, v in stats.items()}
    stats["merged"] = merges.num_rows

    def new_id_rows() -> ir.Table:
        a = t(assigned)
        return a.filter(a.is_new).select("brand", "customer_id").distinct().order_by(["brand", "customer_id"])

    new_ids = steps.rows("oneid_new_ids", new_id_rows)
    return ResolveResult(identity_map=id_map, merges=merges, new_customers=new_ids, junk=junk, stats=stats)


def _components(steps: Steps) -> str:
    """The name of the table nid -> label (smallest nid of its connected component).

    The rounds alternate between two label tables, so each round runs one of two compiled variants."""
    t = steps.table
    steps.keep("oneid_label0", lambda: t("oneid_nodes").select("nid", label=t("oneid_nodes").nid))
    current = 0
    while True:
        label_name, next_name, step_name = f"oneid_label{current}", f"oneid_label{1 - current}", f"oneid_step{current}"

        def step(label_name: str = label_name) -> ir.Table:
            links, label = t("oneid_links"), t(label_name)
            per_value = links.join(label, "nid").group_by("vid").aggregate(vlabel=ibis._.label.min())
            proposed = links.join(per_value, "vid").group_by("nid").aggregate(best=ibis._.vlabel.min())
            return label.left_join(proposed, "nid").select(
                "nid", label=ibis.least(label.label, ibis._.best.fill_null(label.label))
            )

        steps.keep(step_name, step)

        def jumped(step_name: str = step_name) -> ir.Table:
            # Pointer jumping: take the label of my label, which shortcuts long chains.
            s = t(step_name)
            parent = s.select(pnid=s.nid, plabel=s.label)
            return s.join(parent, s.label == parent.pnid).select("nid", label=ibis.least(s.label, parent.plabel))

        steps.keep(next_name, jumped, step=f"oneid_jump{current}")

        def changed(label_name: str = label_name, next_name: str = next_name) -> ir.Scalar:
            return t(next_name).join(t(label_name), "nid").filter(lambda r: r.label != r.label_right).count()

        if steps.scalar(f"oneid_changed{current}", changed) == 0:
            return next_name
        current = 1 - current


def _stable_ids(steps: Steps, labels: str, previous: str | None) -> None:
    """`oneid_assigned`: the stable id of every node; `oneid_merged_ids`: the previous ids merged away
    (label, merged_id)."""
    t = steps.table

    def comp() -> ir.Table:
        nodes, label = t("oneid_nodes"), t(labels)
        joined = nodes.join(label, "nid").select(*NODE, "key", "nid", "label")
        if previous is None:
            return joined.mutate(prev_id=ibis.null(str))
        prev = t(previous).select(*NODE, prev_id=t(previous).customer_id)
        return joined.left_join(prev, list(NODE)).select(*NODE, "key", "nid", "label", "prev_id")

    steps.keep("oneid_comp", comp)

    def owned() -> ir.Table:
        c = t("oneid_comp")
        has_prev = c.filter(c.prev_id.notnull())
        # The component holding a previous id's smallest record owns that id.
        first = has_prev.group_by("prev_id").aggregate(first_key=has_prev.key.min())
        owner = has_prev.join(first, (has_prev.prev_id == first.prev_id) & (has_prev.key == first.first_key)).select(
            owner_label=has_prev.label, prev_id=has_prev.prev_id
        )
        sizes = has_prev.group_by(["label", "prev_id"]).aggregate(size=has_prev.count())
        out = owner.join(sizes, (owner.owner_label == sizes.label) & (owner.prev_id == sizes.prev_id)).select(
            label=owner.owner_label, prev_id=owner.prev_id, size=sizes.size
        )
        rank = ibis.row_number().over(group_by="label", order_by=[ibis.desc("size"), "prev_id"])
        return out.mutate(rank=rank)

    steps.keep("oneid_owned", owned)

    def assigned() -> ir.Table:
        c, o = t("oneid_comp"), t("oneid_owned")
        survivor = o.filter(o.rank == 0).select("label", survivor_id="prev_id")
        smallest = c.group_by("label").aggregate(min_key=c.key.min(), min_brand=c.brand.min())
        fresh = "c" + smallest.min_key.hexdigest("sha256").substr(0, 15)
        ids = smallest.left_join(survivor, "label").select(
            "label",
            customer_id=ibis.coalesce(ibis._.survivor_id, fresh),
            is_new=ibis._.survivor_id.isnull(),
        )
        return c.join(ids, "label").select(*NODE, "nid", "label", "prev_id", "customer_id", "is_new")

    steps.keep("oneid_assigned", assigned)
    steps.keep(
        "oneid_merged_ids", lambda: t("oneid_owned").filter(ibis._.rank > 0).select("label", merged_id="prev_id")
    )


def _merges(steps: Steps, pii_key: bytes) -> pa.Table:
    schema = pa.schema(
        [(n, pa.string()) for n in ("brand", "survivor_id", "merged_id", "id_type", "id_value", "id_hash")]
    )
    t = steps.table
    if steps.scalar("oneid_merged_count", lambda: t("oneid_merged_ids").count()) == 0:
        return schema.empty_table()

    def bridged() -> ir.Table:
        # Identifiers held by records of the merged id and by records of another id in the same component.
        links, assigned = t("oneid_links"), t("oneid_assigned")
        held = links.join(assigned, "nid").select("vid", "label", owner=assigned.prev_id.fill_null(""))
        bridging = held.group_by(["vid", "label"]).aggregate(owners=held.owner.nunique()).filter(ibis._.owners > 1)
        return held.join(bridging, ["vid", "label"]).select("vid", "label", "owner")

    steps.keep("oneid_bridged", bridged)

    def chosen_rows() -> ir.Table:
        merged = t("oneid_merged_ids")
        mine = t("oneid_bridged").join(merged.select("label", owner=merged.merged_id), ["label", "owner"])
        mine = mine.select("vid", "label", merged_id="owner")
        candidates = mine.join(t("oneid_values"), "vid").select("label", "merged_id", "brand", "id_type", "id_value")
        rank = ibis.row_number().over(group_by="merged_id", order_by=["id_type", "id_value"])
        chosen = candidates.mutate(rank=rank).filter(ibis._.rank == 0)
        survivors = t("oneid_assigned").select("label", "customer_id").distinct()
        return (
            chosen.join(survivors, "label")
            .select("brand", survivor_id="customer_id", merged_id="merged_id", id_type="id_type", raw_value="id_value")
            .order_by("merged_id")
        )

    rows = steps.rows("oneid_merge_rows", chosen_rows).to_pylist()
    # O(merges), not O(rows): mask and key-hash the bridging value so no raw PII is kept.
    # From a sealed lake a phone or e-mail value already is its keyed hash (siyu.privacy.lake_columns).
    for r in rows:
        raw = r.pop("raw_value")
        r["id_value"] = display(r["id_type"], raw)
        r["id_hash"] = raw if is_hash(r["id_type"], raw) else keyed_hash(pii_key, r["id_type"], raw)
    return pa.Table.from_pylist(rows, schema=schema)
