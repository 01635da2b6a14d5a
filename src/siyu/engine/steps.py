"""Named query steps compiled to SQL once per process, re-run over stable table names.

Building Ibis expressions and compiling them to SQL costs tens to hundreds of milliseconds each,
whatever the data's size, so a job of some forty small queries (an incremental One-ID run, a loader
batch) paid seconds before reading a row. With `Steps`, each step is named, reads only stable names
(inputs bound with `bind`, earlier steps' tables through `table`) and is built and compiled the
first time it runs; later runs only run its SQL. `start(key)` begins a run: a different key (the
inputs' schemas, settings written into the SQL) compiles again, once.

On an engine without `prepared_queries` the steps are built and run as plain expressions every time
(the same results, without the saving).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.engine.base import Engine

Build = Callable[[], ir.Table]


class Steps:
    def __init__(self, engine: Engine, *, compile_once: bool = True) -> None:
        self.engine = engine
        # compile_once=False: a one-off run (its inputs may be in-memory tables, which compiled SQL cannot name)
        self.prepared = compile_once and engine.capabilities.prepared_queries
        self.compilations = 0  # how many steps were compiled: each once per process and key
        self._sql: dict[str, str] = {}
        self._tables: dict[str, ir.Table] = {}
        self._key: Hashable = None
        self._inputs: set[str] = set()

    def start(self, key: Hashable) -> None:
        """Begin a run whose steps' SQL depends on `key` (schemas, settings); a new key recompiles."""
        if key != self._key:
            self._sql.clear()
            self._tables = {n: t for n, t in self._tables.items() if n in self._inputs}
            self._key = key

    def bind(self, name: str, data: pa.Table | ir.Table) -> ir.Table:
        """Point the input `name` at Arrow data, or (not compiling once) at any table."""
        if isinstance(data, ir.Table):
            if self.prepared:
                raise TypeError(f"bind {name}: compiled SQL can only name bound data, not an expression")
            table = data
        elif self.prepared:
            table = self.engine.bind(name, data)
        else:
            table = ibis.memtable(data)
        self._tables[name] = table
        self._inputs.add(name)
        return table

    def bind_lake(self, name: str, lake_table: str) -> ir.Table | None:
        """Point the input `name` at a lake table's current version (None if there is no such table)."""
        if self.prepared:
            files = self.engine.lake.files(lake_table)
            if files:
                table = self.engine.bind(name, files)
            else:  # a table without rows has no files: its schema, empty
                schema = self.engine.lake.schema(lake_table)
                table = None if schema is None else self.engine.bind(name, schema.empty_table())
        else:
            table = self.engine.table(lake_table)
        if table is not None:
            self._tables[name] = table
            self._inputs.add(name)
        return table

    def table(self, name: str) -> ir.Table:
        """The input or step `name` as a table, for building later steps (called only while compiling)."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = self.engine.con.table(name)
        return table

    def keep(self, name: str, build: Build, *, step: str | None = None) -> None:
        """Run the step into the temporary table `name`. `step` names the step when several steps write
        the same table (each has its own SQL)."""
        if self.prepared:
            self.engine.run_sql(self._compiled(step or name, build), into=name)
            self._tables.pop(name, None)  # its schema is read again when a later step compiles
        else:
            self._tables[name] = self.engine.materialise(build(), name)

    def rows(self, name: str, build: Build) -> pa.Table:
        """The step's result as Arrow."""
        if self.prepared:
            result = self.engine.run_sql(self._compiled(name, build))
            assert result is not None
            return result
        return self.engine.to_arrow(build())

    def scalar(self, name: str, build: Callable[[], ir.Scalar]) -> Any:
        """A one-value step (a count)."""
        return self.rows(name, lambda: build().name("value").as_table())[0][0].as_py()

    def _compiled(self, name: str, build: Build) -> str:
        sql = self._sql.get(name)
        if sql is None:
            sql = self._sql[name] = self.engine.compile(build())
            self.compilations += 1
        return sql
