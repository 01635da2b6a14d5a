"""Run One-ID over the lake: extract identifiers, cluster, keep ids stable, record merges.

The identity map is replaced in one atomic Delta commit (older versions stay readable by time
travel); merges are appended, so the history of who was merged into whom, and by which
identifier, is never lost.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime
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
from siyu.engine.steps import Steps
from siyu.events.catalogue import MAX_KEYS, IdentityResolved
from siyu.identity import incremental
from siyu.identity.incremental import IDENTITY_ENTITIES, IMPORTS_TABLE, INDEX_TABLE, RESOLVED
from siyu.identity.normalise import load_blocklist
from siyu.identity.resolve import NODE, ResolveResult, extract_identifiers, resolve, resolve_steps
from siyu.ingest.views import empty_entity, latest_of
from siyu.privacy.lake_columns import with_hashed
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


def _raw_tables(app: App) -> dict[str, ir.Table]:
    """The raw identity tables as they are now (one snapshot each: later reads see the same files)."""
    raw = {e: app.engine.table(e) for e in IDENTITY_ENTITIES}
    return {e: t for e, t in raw.items() if t is not None}


def _latest_tables(raw: dict[str, ir.Table]) -> tuple[ir.Table, ir.Table, ir.Table]:
    if "customers" not in raw:
        raise NothingToResolveError("no customers imported yet: run `siyu import` first (尚未导入客户)")
    current = {e: latest_of(t, e) for e, t in raw.items()}
    return (
        current["customers"],
        current.get("identities", empty_entity("identities")),
        current.get("memberships", empty_entity("memberships")),
    )


def canonical_tables(app: App) -> tuple[ir.Table, ir.Table, ir.Table]:
    return _latest_tables(_raw_tables(app))


def identifiers(app: App) -> ir.Table:
    """Every normalised identifier of every source customer.

    Columns: brand, source, source_customer_id, id_type, id_value, strength.
    """
    return extract_identifiers(*canonical_tables(app))


def _blocklist(app: App) -> set[tuple[str, str]]:
    blocklist = load_blocklist()
    if app.settings.identity_blocklist:
        blocklist |= load_blocklist(app.settings.identity_blocklist)
    return with_hashed(app.settings.pii_key, blocklist)


def full_result(app: App, max_share: int | None = None) -> tuple[ResolveResult, ir.Table, dict[str, ir.Table]]:
    """The full run's result over the current lake and map, written nowhere: (result, the strong and weak
    identifiers it used, the raw tables it read)."""
    raw = _raw_tables(app)
    customers, identities, memberships = _latest_tables(raw)
    nodes = ibis.union(
        customers.select(*NODE),
        identities.select(*NODE),
        memberships.select(*NODE),
        distinct=True,
    )
    ids = app.engine.materialise(extract_identifiers(customers, identities, memberships), "resolve_identifiers")
    nodes = app.engine.materialise(nodes, "resolve_nodes")
    result = resolve(
        app.engine,
        nodes,
        ids,
        app.engine.table(MAP_TABLE),
        blocklist=_blocklist(app),
        max_share=max_share or app.settings.identity_max_share,
        pii_key=app.settings.pii_key.encode(),
    )
    return result, ids, raw


def run_resolve(app: App, max_share: int | None = None) -> ResolveOutcome:
    """The full run (`siyu resolve --full`, nightly in `siyu worker`): re-cluster every source record,
    and rebuild the identifier index and the list of reflected imports that incremental runs use."""
    result, ids, raw = full_result(app, max_share)
    now = utc_now()
    stamp = pa.array([now] * result.identity_map.num_rows, pa.timestamp("us", tz="UTC"))
    version = app.lake.overwrite(MAP_TABLE, result.identity_map.append_column("resolved_at", stamp))
    _append_merges(app, result.merges, now)
    strong = ids.filter(ids.strength == "strong").select(*NODE, "id_type", "id_value")
    app.lake.overwrite(INDEX_TABLE, app.engine.to_arrow(strong.mutate(indexed_at=_at(now))))
    imports = ibis.union(*(t.select("_import_id") for t in raw.values()), distinct=True)
    app.lake.overwrite(IMPORTS_TABLE, app.engine.to_arrow(imports.mutate(resolved_at=_at(now))))
    return _record(app, result, now, version, result.stats)


_steps: weakref.WeakKeyDictionary[Engine, Steps] = weakref.WeakKeyDictionary()


def incremental_steps(engine: Engine) -> Steps:
    """The engine's incremental One-ID steps, compiled on the first run and kept for the process."""
    steps = _steps.get(engine)
    if steps is None:
        steps = _steps[engine] = Steps(engine)
    return steps


def run_incremental(app: App) -> ResolveOutcome:
    """Re-cluster only what imports since the last run touched (siyu.identity.incremental); the
    result is the full run's. Without an index yet (a workspace from before), this is a full run.
    Its queries are compiled once per process (siyu.engine.steps): a run only binds the lake tables'
    current files and re-runs them."""
    if not all(app.lake.exists(t) for t in (MAP_TABLE, INDEX_TABLE, IMPORTS_TABLE)):
        return run_resolve(app)
    engine = app.engine
    steps = incremental_steps(engine)
    inputs = {}
    for entity in IDENTITY_ENTITIES:
        name = incremental.raw_name(entity)
        bound = steps.bind_lake(name, entity)
        if bound is None and entity == "customers":
            raise NothingToResolveError("no customers imported yet: run `siyu import` first (尚未导入客户)")
        inputs[name] = bound if bound is not None else steps.bind(name, incremental.empty_raw(entity))
    for name, table in ((incremental.INDEX, INDEX_TABLE), (incremental.MAP, MAP_TABLE), (RESOLVED, IMPORTS_TABLE)):
        bound = steps.bind_lake(name, table)
        assert bound is not None
        inputs[name] = bound
    max_share = app.settings.identity_max_share
    steps.start((tuple((name, table.schema()) for name, table in inputs.items()), max_share))
    t = steps.table
    try:
        part = incremental.plan(steps)
        if part is None:
            return _record(app, None, utc_now(), app.lake.version(MAP_TABLE) or 0, _totals(steps))
        result = resolve_steps(
            steps,
            part.nodes,
            part.identifiers,
            part.previous,
            blocklist=_blocklist(app),
            max_share=max_share,
            pii_key=app.settings.pii_key.encode(),
            counts=part.counts,
        )
        now = utc_now()
        steps.bind("inc_result_map", result.identity_map)

        def changed() -> ir.Table:
            rows = t("inc_result_map").left_join(t(part.previous).rename(prev_id="customer_id"), list(NODE))
            rows = rows.filter(rows.prev_id.isnull() | (rows.prev_id != rows.customer_id))
            return rows.select("brand", "source", "source_customer_id", "customer_id")

        rows = steps.rows("inc_changed", changed)
        gone = steps.rows("inc_gone_rows", lambda: t(part.gone))
        version = app.lake.upsert(MAP_TABLE, _stamped(rows, "resolved_at", now), list(NODE), gone)
        _append_merges(app, result.merges, now)

        def index_rows() -> ir.Table:
            markers = t(part.touched).mutate(id_type=ibis.null(str), id_value=ibis.null(str))
            return ibis.union(t(part.new_index), markers)

        app.lake.append(INDEX_TABLE, _stamped(steps.rows("inc_index_rows", index_rows), "indexed_at", now))
        app.lake.append(
            IMPORTS_TABLE, _stamped(steps.rows("inc_import_rows", lambda: t(part.imports)), "resolved_at", now)
        )
        steps.bind_lake(incremental.MAP, MAP_TABLE)  # the map as just written
        return _record(app, result, now, version, {**_totals(steps), "merged": result.stats["merged"]})
    finally:
        for name in engine.temporary_tables():
            if name.startswith(("inc_", "oneid_")):
                engine.drop_temporary(name)


def _stamped(rows: pa.Table, column: str, now: datetime) -> pa.Table:
    """`rows` with the run's time (added in Arrow: a literal in the SQL would make it compile every run)."""
    return rows.append_column(column, pa.array([now] * rows.num_rows, pa.timestamp("us", tz="UTC")))


def _totals(steps: Steps) -> dict[str, int]:
    def totals() -> ir.Table:
        table = steps.table(incremental.MAP)
        return table.aggregate(source_customers=table.count(), customers=table.customer_id.nunique())

    row = steps.rows("inc_totals", totals)
    return {k: int(v or 0) for k, v in row.to_pylist()[0].items()}


def _at(now: datetime) -> ir.Value:
    return ibis.literal(now).cast("timestamp('UTC')")


def _append_merges(app: App, merges: pa.Table, now: datetime) -> None:
    if merges.num_rows:
        merged_at = pa.array([now] * merges.num_rows, pa.timestamp("us", tz="UTC"))
        app.lake.append(MERGES_TABLE, merges.append_column("merged_at", merged_at))


def _record(
    app: App, result: ResolveResult | None, now: datetime, version: int, stats: dict[str, int]
) -> ResolveOutcome:
    """The run in the store, with its `IdentityResolved` events, in one transaction."""
    junk = result.junk if result else []
    with app.store.begin(Actor.system("identity"), now=now) as uow:
        run = IdentityRun(
            ran_at=now,
            source_customers=stats["source_customers"],
            customers=stats["customers"],
            merged=stats.get("merged", 0),
            junk=len(junk),
            lake_version=version,
        )
        uow.session.add(run)
        uow.session.flush()
        if result is not None:
            for event in resolved_events(run.id, result.new_customers, result.merges):
                uow.emit(event)
    return ResolveOutcome(
        source_customers=int(stats["source_customers"]),
        customers=int(stats["customers"]),
        merged=int(stats.get("merged", 0)),
        new_customers=int(result.stats.get("new_customers", 0)) if result else 0,
        junk_identifiers=junk,
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
        table.select("source", "source_customer_id", "customer_id", "brand").order_by(list(NODE))
    )
    with atomic_output(path, force=force) as tmp:
        pacsv.write_csv(data, tmp)
    return int(data.num_rows)
