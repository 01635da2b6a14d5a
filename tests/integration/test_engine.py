"""The engine seam: the DuckDB adapter, and the generic paths that a backend's capability table selects.

`GenericEngine` is a hand-written fake backend: real DuckDB underneath (through Ibis only), but a
capability table that claims nothing, and no adapter hooks (the base class raises if one is called).
So everything it does goes through the generic paths a less capable backend would get.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pytest

from siyu.engine.adapter import UnspelledBuiltinError, is_valid_json, json_text, local_to_utc, utc_to_local
from siyu.engine.base import Capabilities, Engine, QueryInterruptedError
from siyu.engine.connect import connect
from siyu.engine.duckdb import DUCKDB, DuckDBEngine
from siyu.lake.tables import Lake


class GenericEngine(Engine):
    capabilities = Capabilities(
        name="generic",
        streams_batches=False,
        registers_memtables=False,
        temp_tables=False,
        interrupts=False,
        read_parquet_options=DUCKDB.read_parquet_options,
    )


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def duck(lake: Lake) -> DuckDBEngine:
    engine = connect("duckdb", lake, memory_limit="1GB")
    assert isinstance(engine, DuckDBEngine)
    return engine


@pytest.fixture
def generic(lake: Lake) -> GenericEngine:
    return GenericEngine(ibis.duckdb.connect(), lake)


@pytest.fixture(params=["duckdb", "generic"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue("duck" if request.param == "duckdb" else "generic")  # type: ignore[no-any-return]


def _numbers(n: int) -> ir.Table:
    return ibis.memtable(pa.table({"n": pa.array(range(n), pa.int64())}))


def test_batches_stream_in_chunks_on_every_capability(engine: Engine) -> None:
    expr = _numbers(10).mutate(double=ibis._.n * 2)
    reader = engine.batches(expr, rows=3)
    sizes = [b.num_rows for b in reader]
    # DuckDB streams its own vector-sized chunks (<= 3 rows asked for: 10 rows -> at least 4 batches);
    # the generic path cuts the computed table into 3 + 3 + 3 + 1.
    assert sum(sizes) == 10 and max(sizes) <= 3 and len(sizes) >= 4
    again = pa.Table.from_batches(list(engine.batches(expr, rows=3)))
    assert again.sort_by("n").to_pydict() == engine.to_arrow(expr).sort_by("n").to_pydict()
    assert again.column("double").to_pylist() == [2 * n for n in again.column("n").to_pylist()]


def test_generic_path_never_calls_an_adapter_hook(generic: GenericEngine) -> None:
    """The fake claims no capability: its hooks raise NotImplementedError, so passing tests above prove the
    generic paths ran; here the hooks are shown to be unreachable for each operation."""
    numbers = _numbers(5)
    assert generic.batches(numbers, rows=2).read_all().num_rows == 5
    generic.release(numbers)  # registers nothing: nothing to release
    assert generic.interrupt() is False
    with pytest.raises(NotImplementedError):
        generic._stream(numbers, 2)


def test_materialise_and_drop_temporary(engine: Engine) -> None:
    numbers = _numbers(4)
    kept = engine.materialise(numbers.filter(numbers.n >= 2), "keep_me")
    assert "keep_me" in engine.temporary_tables()
    assert sorted(engine.to_arrow(kept).column("n").to_pylist()) == [2, 3]
    again = engine.materialise(numbers.filter(numbers.n < 1), "keep_me")  # same name: replaced
    assert engine.to_arrow(again).column("n").to_pylist() == [0]
    assert engine.temporary_tables().count("keep_me") == 1
    engine.drop_temporary("keep_me")
    assert "keep_me" not in engine.temporary_tables()
    engine.drop_temporary("keep_me")  # dropping twice is harmless


def test_scalar(engine: Engine) -> None:
    numbers = _numbers(7)
    assert engine.scalar(numbers.count()) == 7
    assert engine.scalar(numbers.n.sum()) == 21


def test_lake_table_reads_files_from_before_a_column_was_added(engine: Engine, lake: Lake) -> None:
    lake.append("things", pa.table({"id": ["a"]}))
    lake.append("things", pa.table({"id": ["b"], "colour": ["red"]}))
    assert len(lake.files("things")) == 2
    table = engine.table("things")
    assert table is not None
    rows = engine.to_arrow(table.order_by("id")).to_pylist()
    assert rows == [{"id": "a", "colour": None}, {"id": "b", "colour": "red"}]
    assert engine.table("nothing") is None
    empty = engine.table("nothing", pa.schema({"id": pa.string()}))
    assert empty is not None and engine.to_arrow(empty).num_rows == 0


def test_duckdb_release_unregisters_in_memory_tables(duck: DuckDBEngine) -> None:
    numbers = _numbers(3)
    assert duck.to_arrow(numbers).num_rows == 3  # running it registers the Arrow data on DuckDB
    name = numbers.op().name
    assert duck._duckdb.execute(f'SELECT count(*) FROM "{name}"').fetchall() == [(3,)]
    duck.release(numbers)
    with pytest.raises(Exception, match=name):
        duck._duckdb.execute(f'SELECT count(*) FROM "{name}"')


def _big_count() -> ir.Scalar:
    """A join of 2 x 10^5 rows to 10^10 pairs: minutes of work, so only an interrupt ends it soon."""
    a = _numbers(100_000)
    b = _numbers(100_000).rename(m="n")
    return a.cross_join(b).filter(ibis._.n != ibis._.m).count()


def test_interrupt_cancels_the_running_query(duck: DuckDBEngine) -> None:
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(duck.scalar(_big_count()))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    started = time.monotonic()
    worker.start()
    # Interrupting before the query starts does nothing, so keep asking until it has stopped.
    while worker.is_alive() and time.monotonic() - started < 60:
        assert duck.interrupt() is True
        worker.join(0.1)
    assert not worker.is_alive()
    assert time.monotonic() - started < 30
    (error,) = outcome
    assert isinstance(error, QueryInterruptedError) and error.code == "query_interrupted"
    assert duck.scalar(_numbers(2).count()) == 2  # the connection is still usable
    assert duck.interrupt() is True  # with nothing running: harmless
    assert duck.scalar(_numbers(3).count()) == 3


def test_connect_names_the_supported_engines(lake: Lake) -> None:
    with pytest.raises(ValueError, match="supported engines are: duckdb, pyspark"):
        connect("spark", lake)


def test_portable_builtins_take_the_engine_spelling(duck: DuckDBEngine) -> None:
    """Domain code builds `local_to_utc` & co. without knowing the engine; the engine spells them."""
    t = ibis.memtable(pa.table({"ts": pa.array([dt.datetime(2024, 6, 1, 8, 0)], pa.timestamp("us")), "j": ["{}"]}))
    expr = t.select(
        utc=local_to_utc(t.ts, ibis.literal("Asia/Shanghai")),
        back=utc_to_local(local_to_utc(t.ts, ibis.literal("Asia/Shanghai")), "Asia/Shanghai"),
        ok=is_valid_json(t.j),
        bad=is_valid_json(ibis.literal("{no")),
    )
    (row,) = duck.to_arrow(expr).to_pylist()
    assert row["utc"] == dt.datetime(2024, 6, 1, 0, 0, tzinfo=dt.UTC)  # 08:00 in Shanghai is 00:00 UTC
    assert row["back"] == dt.datetime(2024, 6, 1, 8, 0)
    assert (row["ok"], row["bad"]) == (True, False)


@pytest.fixture
def builtin_engine(duck: DuckDBEngine) -> Engine:
    """An engine that spells every portable builtin (test_spark_parity.py hands in Spark)."""
    return duck


def test_json_text_reads_top_level_values_and_null_for_what_is_not_json(builtin_engine: Engine) -> None:
    docs = ['{"s": "x", "n": 10, "f": 2.5, "b": true, "o": {"k": 1}}', "not json", "", None]
    t = ibis.memtable(pa.table({"i": range(len(docs)), "j": pa.array(docs, pa.string())}))
    expr = t.select("i", *(json_text(t.j, key).name(key) for key in ("s", "n", "f", "b", "missing")))
    rows = builtin_engine.to_arrow(expr.order_by("i")).to_pylist()
    # Numbers as their digits, booleans as true / false; NULL for an absent key, for text that is not JSON
    # (DuckDB's json_extract_string raises there, failing the whole query: siyu checks json_valid first), and
    # for NULL. Both engines give exactly this.
    assert rows[0] == {"i": 0, "s": "x", "n": "10", "f": "2.5", "b": "true", "missing": None}
    assert all(set(row.values()) == {row["i"], None} for row in rows[1:])


def test_a_builtin_the_engine_cannot_spell_is_named(generic: GenericEngine) -> None:
    t = _numbers(1)
    with pytest.raises(UnspelledBuiltinError, match="generic engine has no spelling of siyu_json_valid"):
        generic.to_arrow(t.select(ok=is_valid_json(t.n.cast("string"))))
