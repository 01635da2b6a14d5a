"""The compute engine: an Ibis backend (DuckDB in-process by default) plus lake readers.

Engine differences live in `siyu.engine.adapter` as data; nothing else names a backend.
"""

from __future__ import annotations

import itertools

import ibis
import pyarrow as pa

from siyu.lake.tables import Lake

_names = itertools.count()


class Engine:
    """Reads lake tables as Ibis tables and runs expressions."""

    def __init__(self, con: ibis.BaseBackend, lake: Lake) -> None:
        self.con = con
        self.lake = lake

    def table(self, name: str, empty_schema: pa.Schema | None = None) -> ibis.Table | None:
        """The lake table's current version, or an empty table of `empty_schema` (None if neither)."""
        files = self.lake.files(name)
        if files:
            # By name: files written before a column was added (schema evolution) lack it; they read as NULL.
            return self.con.read_parquet(files, table_name=f"lake_{name}_{next(_names)}", union_by_name=True)
        schema = self.lake.schema(name) or empty_schema
        if schema is None:
            return None
        return ibis.memtable(schema.empty_table())

    def to_arrow(self, expr: ibis.Expr) -> pa.Table:
        result = self.con.to_pyarrow(expr)
        assert isinstance(result, pa.Table)
        return result

    def batches(self, expr: ibis.Table, rows: int = 1_000_000) -> pa.RecordBatchReader:
        """Stream a result as Arrow record batches (DuckDB's own reader: Ibis 12's batch API calls a
        method DuckDB 2 removed)."""
        self.con.to_pyarrow(expr.limit(0))  # registers the expression's in-memory tables
        sql = ibis.to_sql(expr, dialect="duckdb")
        reader = self.con.con.sql(sql).to_arrow_reader(rows)
        assert isinstance(reader, pa.RecordBatchReader)
        return reader

    def release(self, *memtables: ibis.Table) -> None:
        """Unregister in-memory tables once done: DuckDB otherwise keeps their Arrow data alive
        for the life of the connection, and imports of several large files would add up."""
        for table in memtables:
            self.con.con.unregister(table.op().name)

    def interrupt(self) -> None:
        """Stop the statement running on this engine's connection now (from another thread); it
        fails with the engine's interrupt error and the connection stays usable. A no-op when idle."""
        self.con.con.interrupt()

    def materialise(self, expr: ibis.Table, name: str) -> ibis.Table:
        """Compute `expr` once into a temporary table so later steps reuse it."""
        return self.con.create_table(name, expr, temp=True, overwrite=True)


def connect(kind: str, lake: Lake, *, memory_limit: str = "4GB", temp_directory: str | None = None) -> Engine:
    """Open the configured engine. DuckDB runs in-process with no extension downloads."""
    if kind == "duckdb":
        con = ibis.duckdb.connect()
        con.raw_sql(f"SET memory_limit = '{memory_limit}'")
        if temp_directory:
            con.raw_sql(f"SET temp_directory = '{temp_directory}'")
        # Everything is computed in UTC; brand time zones are applied explicitly.
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql("SET autoinstall_known_extensions = false")
        con.raw_sql("SET autoload_known_extensions = false")
        con.raw_sql("SET enable_progress_bar = false")
        return Engine(con, lake)
    raise ValueError(f"unknown engine {kind!r}: supported engines are: duckdb")
