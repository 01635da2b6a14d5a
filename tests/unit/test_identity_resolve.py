"""One-ID clustering on small hand-made graphs (DuckDB in memory; tests/integration/test_spark_parity.py runs
these same tests on Spark through the `one_id_engine` fixture)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import ibis
import pyarrow as pa
import pytest

from siyu.engine.connect import Engine, connect
from siyu.identity.normalise import load_blocklist
from siyu.identity.resolve import extract_identifiers, resolve
from siyu.lake.tables import Lake

NODE = ["brand", "source", "source_customer_id"]


def tmp_lake() -> Path:
    """An empty lake folder: resolve() reads nothing from it, it only needs an engine."""
    return Path(tempfile.mkdtemp()) / "lake"


@pytest.fixture
def one_id_engine() -> Engine:
    return connect("duckdb", Lake(tmp_lake()))


def _run(
    engine: Engine,
    rows: list[dict[str, str | None]],
    previous: pa.Table | None = None,
    max_share: int = 50,
    extra=(),
):
    columns = ["brand", "source", "source_customer_id", "phone", "unionid", "openid", "email"]
    customers = ibis.memtable(pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in columns}))
    identities = ibis.memtable(
        pa.table(
            {c: pa.array([e[i] for e in extra], pa.string()) for i, c in enumerate([*NODE, "id_type", "id_value"])}
        )
    )
    memberships = ibis.memtable(pa.table({c: pa.array([], pa.string()) for c in [*NODE, "member_no"]}))
    ids = extract_identifiers(customers, identities, memberships)
    nodes = customers.select(*NODE)
    prev = ibis.memtable(previous) if previous is not None else None
    result = resolve(engine, nodes, ids, prev, blocklist=load_blocklist(), max_share=max_share)
    cid = {r["source_customer_id"]: r["customer_id"] for r in result.identity_map.to_pylist()}
    return result, cid


def r(scid: str, brand: str = "b", **ids: str) -> dict[str, str | None]:
    return {"brand": brand, "source": scid[0], "source_customer_id": scid, **ids}


def test_transitive_chain_is_one_customer(one_id_engine: Engine) -> None:
    result, cid = _run(one_id_engine,
        [r("a1", phone="13811112222"), r("b1", phone="+86 138 1111 2222", unionid="U1"), r("c1", unionid="U1"),
         r("d1", phone="13933334444")]
    )  # fmt: skip
    assert cid["a1"] == cid["b1"] == cid["c1"] != cid["d1"]
    assert result.stats["source_customers"] == 4 and result.stats["customers"] == 2


def test_identities_rows_link_too(one_id_engine: Engine) -> None:
    _, cid = _run(one_id_engine, [r("w1"), r("m1", unionid="U7")], extra=[("b", "w", "w1", "unionid", "U7")])
    assert cid["w1"] == cid["m1"]


def test_placeholder_and_over_limit_values_are_junk_not_links(one_id_engine: Engine) -> None:
    rows = [r("p1", phone="13800000000"), r("p2", phone="13800000000")]
    rows += [r(f"x{i}", email="shared@corp.cn") for i in range(4)]
    result, cid = _run(one_id_engine, rows, max_share=3)
    assert len(set(cid.values())) == 6
    reasons = {(j["id_type"], j["reason"], j["source_customers"]) for j in result.junk}
    assert reasons == {("phone", "blocklist", 2), ("email", "over_limit", 4)}
    # At the limit it still links.
    _, cid = _run(one_id_engine, [r(f"x{i}", email="shared@corp.cn") for i in range(3)], max_share=3)
    assert len(set(cid.values())) == 1


def test_weak_identifiers_never_link(one_id_engine: Engine) -> None:
    _, cid = _run(one_id_engine, [r("a1", openid="o1", phone="138****5678"), r("b1", openid="o1", phone="138****5678")])
    assert cid["a1"] != cid["b1"]


def test_brands_never_merge(one_id_engine: Engine) -> None:
    _, cid = _run(one_id_engine, [r("a1", brand="b1", phone="13811112222"), r("a2", brand="b2", phone="13811112222")])
    assert cid["a1"] != cid["a2"]


def test_from_scratch_ids_are_deterministic_and_previous_ids_kept(one_id_engine: Engine) -> None:
    rows = [r("a1", phone="13811112222"), r("b1", phone="13811112222"), r("c1", unionid="U3")]
    first, cid1 = _run(one_id_engine, rows)
    _, cid2 = _run(one_id_engine, list(reversed(rows)))
    assert cid1 == cid2
    previous = first.identity_map
    again, cid3 = _run(one_id_engine, rows, previous=previous)
    assert cid3 == cid1 and again.stats["merged"] == 0 and again.stats["new_customers"] == 0


def test_split_keeps_id_on_the_side_with_the_smallest_record(one_id_engine: Engine) -> None:
    rows = [r("a1", email="x@corp.cn"), r("b1", email="x@corp.cn"), r("c1", email="x@corp.cn")]
    first, cid = _run(one_id_engine, rows)
    assert len(set(cid.values())) == 1
    # Now the shared value is junk (over the limit): the customer splits.
    _, after = _run(one_id_engine, rows, previous=first.identity_map, max_share=2)
    assert after["a1"] == cid["a1"]
    assert len({after["a1"], after["b1"], after["c1"]}) == 3
