"""The DuckDB adapter: every call to DuckDB's own connection, and its capability table, in one place.

DuckDB runs in-process. Ibis 12 drives it for everything portable; the few things done on the DuckDB
connection directly are here because Ibis 12's versions of them call methods DuckDB 2 removed
(`fetch_record_batch`, `fetch_arrow_table`) or because Ibis has no portable form (unregistering an
in-memory table, interrupting a query).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.engine.adapter import DUCKDB_BUILTINS
from siyu.engine.base import Capabilities, Engine
from siyu.lake.tables import Lake

DUCKDB = Capabilities(
    name="duckdb",
    streams_batches=True,
    registers_memtables=True,
    temp_tables=True,
    interrupts=True,
    read_parquet_options={"union_by_name": True},
    prepared_queries=True,
    builtins=DUCKDB_BUILTINS,
    transient_errors=(duckdb.OperationalError,),  # DuckDB I/O and out-of-memory
)


class DuckDBEngine(Engine):
    capabilities = DUCKDB

    @classmethod
    def open(
        cls, lake: Lake, *, memory_limit: str = "4GB", temp_directory: str | None = None, **_: object
    ) -> DuckDBEngine:
        """An in-process DuckDB that computes in UTC and never downloads extensions."""
        con = ibis.duckdb.connect()
        con.raw_sql(f"SET memory_limit = '{memory_limit}'")
        if temp_directory:
            con.raw_sql(f"SET temp_directory = '{temp_directory}'")
        # Everything is computed in UTC; brand time zones are applied explicitly.
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql("SET autoinstall_known_extensions = false")
        con.raw_sql("SET autoload_known_extensions = false")
        con.raw_sql("SET enable_progress_bar = false")
        return cls(con, lake)

    @property
    def _duckdb(self) -> Any:
        """DuckDB's own connection under the Ibis backend."""
        return self.con.con

    def _stream(self, expr: ir.Table, rows: int) -> pa.RecordBatchReader:
        self.con.to_pyarrow(expr.limit(0))  # registers the expression's in-memory tables
        reader = self._duckdb.sql(ibis.to_sql(expr, dialect="duckdb")).to_arrow_reader(rows)
        assert isinstance(reader, pa.RecordBatchReader)
        return reader

    @contextmanager
    def _prepared(
        self, build: Callable[[ir.Table], Iterable[ir.Table]], schema: pa.Schema
    ) -> Iterator[Callable[[pa.Table], None]]:
        # A temporary table that each run refills, and the expressions over it compiled to SQL once.
        name = f"probe_{uuid.uuid4().hex}"
        table = self.con.create_table(name, schema.empty_table(), temp=True, overwrite=True)
        try:
            queries = [self.con.compile(self.spelled(expr)) for expr in build(table)]

            def run(data: pa.Table) -> None:
                self.con.create_table(name, data, temp=True, overwrite=True)
                for query in queries:
                    self._duckdb.sql(query).fetchall()

            yield run
        finally:
            self.con.drop_table(name, force=True)

    def _bind(self, name: str, data: pa.Table | list[str]) -> None:
        if isinstance(data, pa.Table):
            self._duckdb.register(name, data)
            return
        files = ", ".join("'" + f.replace("'", "''") + "'" for f in data)
        self._duckdb.execute(
            f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM read_parquet([{files}], union_by_name = true)'
        )

    def _run_sql(self, sql: str, into: str | None) -> pa.Table | None:
        if into is not None:
            self._duckdb.execute(f'CREATE OR REPLACE TEMP TABLE "{into}" AS {sql}')
            return None
        result = self._duckdb.sql(sql).to_arrow_reader(1_000_000).read_all()
        assert isinstance(result, pa.Table)
        return result

    def _unregister(self, name: str) -> None:
        self._duckdb.unregister(name)

    def _temporary_table_names(self) -> list[str]:
        rows = self._duckdb.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        return [str(r[0]) for r in rows]

    def _interrupt(self) -> None:
        self._duckdb.interrupt()

    def _is_interruption(self, error: Exception) -> bool:
        return isinstance(error, duckdb.InterruptException)
