"""Run One-ID over the lake: extract identifiers, cluster, keep ids stable, record merges.

The identity map is replaced in one atomic Delta commit (older versions stay readable by time
travel); merges are appended, so the history of who was merged into whom, and by which
identifier, is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import SiyuError
from siyu.core.output import atomic_output, output_format
from siyu.engine.connect import Engine
from siyu.events.catalogue import MAX_KEYS, IdentityResolved
from siyu.identity.normalise import load_blocklist
from siyu.identity.resolve import extract_identifiers, resolve
from siyu.ingest.schema import ENTITIES
from siyu.ingest.views import latest
from siyu.store.models import IdentityRun

MAP_TABLE = "identity_map"
MERGES_TABLE = "identity_merges"


class NothingToResolveError(SiyuError):
    code = "nothing_to_resolve"


@dataclass
class ResolveOutcome:
    source_customers: int
    customers: int
    merged: int
    new_customers: int
    junk_identifiers: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "source_customers": self.source_customers,
            "customers": self.customers,
            "merged": self.merged,
            "new_customers": self.new_customers,
            "junk_identifiers": self.junk_identifiers,
        }


def empty_entity(entity: str) -> ir.Table:
    """An empty raw table of `entity`'s columns (strings), for an entity never imported."""
    names = ENTITIES[entity].column_names
    return ibis.memtable(pa.table({n: pa.array([], pa.string()) for n in names}))


def canonical_tables(app: App) -> tuple[ir.Table, ir.Table, ir.Table]:
    customers = latest(app.engine, "customers")
    if customers is None:
        raise NothingToResolveError("no customers imported yet: run `siyu import` first (尚未导入客户)")
    identities = latest(app.engine, "identities")
    memberships = latest(app.engine, "memberships")
    return (
        customers,
        identities if identities is not None else empty_entity("identities"),
        memberships if memberships is not None else empty_entity("memberships"),
    )


def identifiers(app: App) -> ir.Table:
    """Every normalised identifier of every source customer.

    Columns: brand, source, source_customer_id, id_type, id_value, strength.
    """
    return extract_identifiers(*canonical_tables(app))


def run_resolve(app: App, max_share: int | None = None) -> ResolveOutcome:
    customers, identities, memberships = canonical_tables(app)
    node_key = ["brand", "source", "source_customer_id"]
    nodes = ibis.union(
        customers.select(*node_key),
        identities.select(*node_key),
        memberships.select(*node_key),
        distinct=True,
    )
    ids = app.engine.materialise(extract_identifiers(customers, identities, memberships), "resolve_identifiers")
    nodes = app.engine.materialise(nodes, "resolve_nodes")
    blocklist = load_blocklist()
    if app.settings.identity_blocklist:
        blocklist |= load_blocklist(app.settings.identity_blocklist)
    result = resolve(
        app.engine,
        nodes,
        ids,
        app.engine.table(MAP_TABLE),
        blocklist=blocklist,
        max_share=max_share or app.settings.identity_max_share,
        pii_key=app.settings.pii_key.encode(),
    )
    now = utc_now()
    stamp = pa.array([now] * result.identity_map.num_rows, pa.timestamp("us", tz="UTC"))
    version = app.lake.overwrite(MAP_TABLE, result.identity_map.append_column("resolved_at", stamp))
    if result.merges.num_rows:
        merged_at = pa.array([now] * result.merges.num_rows, pa.timestamp("us", tz="UTC"))
        app.lake.append(MERGES_TABLE, result.merges.append_column("merged_at", merged_at))
    stats = result.stats
    with app.store.begin(Actor.system("identity"), now=now) as uow:
        run = IdentityRun(
            ran_at=now,
            source_customers=stats["source_customers"],
            customers=stats["customers"],
            merged=stats["merged"],
            junk=len(result.junk),
            lake_version=version,
        )
        uow.session.add(run)
        uow.session.flush()
        for event in resolved_events(run.id, result.new_customers, result.merges):
            uow.emit(event)
    return ResolveOutcome(
        source_customers=int(stats["source_customers"]),
        customers=int(stats["customers"]),
        merged=int(stats["merged"]),
        new_customers=int(stats.get("new_customers", 0)),
        junk_identifiers=result.junk,
    )


def resolved_events(run_id: int, new_customers: pa.Table, merges: pa.Table) -> list[IdentityResolved]:
    """One `IdentityResolved` per brand that gained or merged customers. Beyond MAX_KEYS ids in all
    (a first run over a big brand) the events carry no ids and say so, like imports do."""
    brands = sorted(set(pc.unique(new_customers["brand"]).to_pylist()) | set(pc.unique(merges["brand"]).to_pylist()))
    if new_customers.num_rows + merges.num_rows > MAX_KEYS:
        return [IdentityResolved(brand, run_id, keys_complete=False) for brand in brands]
    new = new_customers.to_pylist()
    merged = merges.select(["brand", "merged_id", "survivor_id"]).to_pylist()
    return [
        IdentityResolved(
            brand,
            run_id,
            tuple(r["customer_id"] for r in new if r["brand"] == brand),
            tuple((r["merged_id"], r["survivor_id"]) for r in merged if r["brand"] == brand),
        )
        for brand in brands
    ]


def is_customer(engine: Engine, brand: str, customer_id: str) -> bool:
    """Whether `customer_id` is a customer of `brand` in the current One-ID map."""
    table = engine.table(MAP_TABLE)
    if table is None:
        return False
    found = table.filter((table.brand == brand) & (table.customer_id == customer_id)).select("customer_id").limit(1)
    return bool(engine.to_arrow(found).num_rows > 0)


def export_map(app: App, path: Path, *, force: bool = False) -> int:
    """Write the identity map as CSV (source, source_customer_id, customer_id, brand); an existing
    file is replaced only with `force` (see siyu.core.output)."""
    output_format(path, {".csv": "csv"})
    table = app.engine.table(MAP_TABLE)
    if table is None:
        raise NothingToResolveError("no identity map yet: run `siyu resolve` first (尚未运行 One-ID)")
    data = app.engine.to_arrow(
        table.select("source", "source_customer_id", "customer_id", "brand").order_by(
            ["brand", "source", "source_customer_id"]
        )
    )
    with atomic_output(path, force=force) as tmp:
        pacsv.write_csv(data, tmp)
    return int(data.num_rows)
