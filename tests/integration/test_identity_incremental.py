"""Incremental One-ID gives the full run's map, merges and new ids, batch after batch.

Random batches of customer and membership rows (shared phones and unionids, a blocklisted phone, a masked
phone, values pushed over a small `max_share`, member numbers moving between records, records changing
their identifiers) are imported one after another. Before each incremental run, the full run's result
over the same lake and the same previous map is computed (and not written); the incremental run must
then write exactly that map, those merge records and those new customer ids.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.clock import utc_now
from siyu.identity.incremental import INDEX_TABLE
from siyu.identity.service import MAP_TABLE, MERGES_TABLE, full_result, incremental_steps, run_incremental
from siyu.ingest import inbox
from siyu.ingest.importer import import_path
from siyu.ingest.loader import Loader

PHONES = ["", "13811110001", "13811110002", "+86 138 1111 0003", "13800000000", "138****0001"]
UNIONIDS = ["", "U1", "U2", "U3"]
RECORDS = [("tmall", f"t{i}") for i in range(5)] + [("pos", f"p{i}") for i in range(5)]

customer_row = st.tuples(st.sampled_from(RECORDS), st.sampled_from(PHONES), st.sampled_from(UNIONIDS))
membership_row = st.tuples(st.sampled_from(["M1", "M2", "M3"]), st.sampled_from(RECORDS))
batch = st.tuples(st.lists(customer_row, min_size=1, max_size=6), st.lists(membership_row, max_size=2))


def _write(folder: Path, customers: list[tuple], memberships: list[tuple]) -> None:
    folder.mkdir()
    last = {record: (phone, unionid) for record, phone, unionid in customers}  # one row per key in a file
    lines = ["brand,source,source_customer_id,phone,unionid"]
    lines += [f"demo,{s},{sid},{phone},{unionid}" for (s, sid), (phone, unionid) in sorted(last.items())]
    (folder / "customers.csv").write_text("\n".join(lines) + "\n")
    if memberships:
        moved = {member_no: record for member_no, record in memberships}
        rows = ["brand,source,member_no,source_customer_id,joined_at"]
        # memberships of one source ("club"), so the record holding a member_no can change
        rows += [f"demo,club,{no},{sid},2024-01-01 10:00:00" for no, (_, sid) in sorted(moved.items())]
        (folder / "memberships.csv").write_text("\n".join(rows) + "\n")


def _sorted(table: pa.Table, columns: list[str]) -> list[tuple]:
    return sorted(tuple(r[c] for c in columns) for r in table.to_pylist())


MAP = ["brand", "source", "source_customer_id", "customer_id"]
MERGE = ["brand", "survivor_id", "merged_id", "id_type", "id_value", "id_hash"]


def _lake(app: App, name: str, columns: list[str]) -> list[tuple]:
    table = app.engine.table(name)
    return [] if table is None else _sorted(app.engine.to_arrow(table), columns)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(batch, min_size=2, max_size=3))
def test_incremental_runs_equal_the_full_run(batches: list[tuple[list[tuple], list[tuple]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        app = bootstrap(Settings(home=home, database_url=f"sqlite:///{tmp}/siyu.db", identity_max_share=3))
        try:
            for n, (customers, memberships) in enumerate(batches):
                folder = Path(tmp) / f"batch{n}"
                _write(folder, customers, memberships)
                import_path(app, folder)
                expected, _, _ = full_result(app)
                merges_before = _lake(app, MERGES_TABLE, MERGE)
                outcome = run_incremental(app)
                assert _lake(app, MAP_TABLE, MAP) == _sorted(expected.identity_map, MAP)
                assert _lake(app, MERGES_TABLE, MERGE) == sorted(merges_before + _sorted(expected.merges, MERGE))
                assert outcome.new_customers == expected.stats["new_customers"]
                assert outcome.customers == expected.stats["customers"]
                assert app.lake.exists(INDEX_TABLE)
        finally:
            app.store.engine.dispose()


def _identify(app: App, message_id: str, user: str, phone: str) -> None:
    message = {"type": "identify", "userId": user, "messageId": message_id, "traits": {"phone": phone}}
    inbox.record(app.store, "acme", "app", "segment", [inbox.Message(message_id, json.dumps(message))], utc_now())


def test_the_loader_resolves_incrementally_and_the_worker_in_full(sqlite_app: App) -> None:
    app = sqlite_app
    loader = Loader(app, handlers=[], full_resolve_every=3600.0)
    _identify(app, "m1", "u1", "13911112222")
    loader.drain()  # the first run has no index yet: a full one
    _identify(app, "m2", "u2", "+86 139 1111 2222")
    loader.drain()
    ids = {
        r["source_customer_id"]: r["customer_id"] for r in app.engine.to_arrow(app.engine.table(MAP_TABLE)).to_pylist()
    }
    assert ids["u2"] == ids["u1"]  # joined the existing customer by its phone
    index = app.engine.table(INDEX_TABLE)
    assert index is not None
    markers = index.filter(index.id_type.isnull())
    # Only an incremental run appends a re-indexed record's marker row.
    assert app.engine.to_arrow(markers.select("source_customer_id"))["source_customer_id"].to_pylist() == ["u2"]

    assert not loader.resolve_full_if_due()  # not due for an hour
    loader.full_resolve_every = 0.0
    assert loader.resolve_full_if_due()
    index = app.engine.table(INDEX_TABLE)
    assert index is not None
    assert app.engine.scalar(index.filter(index.id_type.isnull()).count()) == 0  # rebuilt by the full run


def test_a_second_incremental_run_compiles_nothing(sqlite_app: App) -> None:
    """The run's queries are compiled once per process (siyu.engine.steps); a later run over lake tables of
    the same schemas only re-runs them, and still joins a new record to its customer."""
    app = sqlite_app
    loader = Loader(app, handlers=[], full_resolve_every=3600.0)
    _identify(app, "m1", "u1", "13911112222")
    loader.drain()  # the full run that builds the index
    _identify(app, "m2", "u2", "13911113333")
    loader.drain()  # the first incremental run: compiles
    _identify(app, "m3", "u3", "+86 139 1111 2222")
    loader.drain()  # joins u1: a second labelling round, whose variant compiles once too
    steps = incremental_steps(app.engine)
    compiled = steps.compilations
    assert compiled > 20
    _identify(app, "m4", "u4", "+86 139 1111 3333")
    loader.drain()
    assert steps.compilations == compiled
    ids = {
        r["source_customer_id"]: r["customer_id"] for r in app.engine.to_arrow(app.engine.table(MAP_TABLE)).to_pylist()
    }
    assert ids["u3"] == ids["u1"] != ids["u2"] == ids["u4"]
