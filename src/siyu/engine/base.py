"""The compute engine port: what domain code may ask of an engine, and a capability table per backend.

Domain code builds portable Ibis expressions and hands them to an `Engine` to read lake tables, run
results into Arrow, stream them, keep intermediate results, and let go of what it registered. How a
backend does each of those is decided here from its `Capabilities` (data, not `if backend == …`):
where a backend lacks something, the generic path below stands in. Backend calls live in one adapter
module per backend (`siyu.engine.duckdb`, `siyu.engine.pyspark`); nothing outside them names a backend's
own connection. Builtins that each backend spells its own way are rewritten into its spelling before an
expression runs (`siyu.engine.adapter`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.core.errors import SiyuError
from siyu.engine.adapter import Spelling, spell
from siyu.lake.tables import Lake

_names = itertools.count()


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. `Engine` takes its native or its generic path from these flags, so a new
    backend is an adapter plus one of these tables; domain code does not change."""

    name: str
    # Hands a result over as a stream of Arrow batches without holding all of it (else: computed
    # once into Arrow, then cut into batches).
    streams_batches: bool
    # In-memory tables stay registered on the connection until released (else: nothing to release).
    registers_memtables: bool
    # Session-scoped tables by name (CREATE TEMP TABLE); else `materialise` uses Ibis's cache.
    temp_tables: bool
    # A running query can be cancelled from another thread (else `interrupt` reports False).
    interrupts: bool
    # Passed to `read_parquet` for lake files: files written before a column was added must read it
    # as NULL (schema evolution), which each backend spells its own way.
    read_parquet_options: Mapping[str, Any] = field(default_factory=dict)
    # Compiles a query once and runs it again over a refilled input table (else: the expressions are
    # rebuilt over each new input and run as usual).
    prepared_queries: bool = False
    # How the backend spells each portable builtin of `siyu.engine.adapter` (name -> expression builder).
    # A builtin missing here fails with `UnspelledBuiltinError` naming it.
    builtins: Mapping[str, Spelling] = field(default_factory=dict)
    # Backend errors that mean the machinery failed (I/O, memory, a lost connection), not the data.
    transient_errors: tuple[type[BaseException], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The table as plain data (`siyu engine info --json`)."""
        return {
            "streams_batches": self.streams_batches,
            "registers_memtables": self.registers_memtables,
            "temp_tables": self.temp_tables,
            "interrupts": self.interrupts,
            "prepared_queries": self.prepared_queries,
            "read_parquet_options": dict(self.read_parquet_options),
            "builtins": sorted(self.builtins),
            "transient_errors": [f"{e.__module__}.{e.__qualname__}" for e in self.transient_errors],
        }


class QueryInterruptedError(SiyuError):
    """A running query was cancelled through `Engine.interrupt` (a timeout or a shutdown)."""

    code = "query_interrupted"


class Engine:
    """Reads lake tables as Ibis tables and runs expressions on one backend connection.

    `con` is the Ibis backend: code may use its portable Ibis API, never the backend's own connection
    underneath. A connection serves one thread at a time (`interrupt` excepted).
    """

    capabilities: ClassVar[Capabilities]

    def __init__(self, con: ibis.BaseBackend, lake: Lake) -> None:
        self.con = con
        self.lake = lake
        self._cached: dict[str, ir.Table] = {}  # materialised without temp tables: name -> Ibis cache

    # -- the port --------------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """The backend's version (DuckDB's, Spark's)."""
        return str(self.con.version)

    def info(self) -> dict[str, Any]:
        """The engine, its version and its capability table (`siyu engine info`)."""
        return {"engine": self.capabilities.name, "version": self.version, "capabilities": self.capabilities.as_dict()}

    def table(self, name: str, empty_schema: pa.Schema | None = None) -> ir.Table | None:
        """The lake table's current version, or an empty table of `empty_schema` (None if neither)."""
        files = self.lake.files(name)
        if files:
            return self._read_parquet(files, f"lake_{name}_{next(_names)}", self.lake.location(name))
        schema = self.lake.schema(name) or empty_schema
        if schema is None:
            return None
        return ibis.memtable(schema.empty_table())

    def parquet(self, files: list[str]) -> ir.Table:
        """Parquet files outside the lake (an import's staged chunks) as one table, read where they lie."""
        return self._read_parquet(files, f"files_{next(_names)}", files[0].rsplit("/", 1)[0])

    def to_arrow(self, expr: ir.Expr) -> pa.Table:
        """The result of a table expression as one Arrow table."""
        with self._query():
            result = self._to_arrow(self.spelled(expr))
        assert isinstance(result, pa.Table)
        return result

    def scalar(self, expr: ir.Scalar) -> Any:
        """One value, e.g. a count, as a Python value."""
        with self._query():
            return self._scalar(self.spelled(expr))

    def batches(self, expr: ir.Table, rows: int = 1_000_000) -> pa.RecordBatchReader:
        """The result as a stream of Arrow record batches of up to `rows` rows."""
        with self._query():
            if self.capabilities.streams_batches:
                return self._stream(self.spelled(expr), rows)
            table = self.to_arrow(expr)
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=rows))

    def release(self, *memtables: ir.Table) -> None:
        """Let go of in-memory tables once done: a backend that registers them would otherwise keep their
        Arrow data alive for the life of the connection, and imports of several large files add up."""
        if self.capabilities.registers_memtables:
            for table in memtables:
                self._unregister(table.op().name)

    def materialise(self, expr: ir.Table, name: str) -> ir.Table:
        """Compute `expr` once into a temporary table `name` so later steps reuse it; `drop_temporary`
        lets it go (a long-running process would otherwise keep every one)."""
        expr = self.spelled(expr)
        with self._query():
            if self.capabilities.temp_tables:
                return self.con.create_table(name, expr, temp=True, overwrite=True)
            self.drop_temporary(name)
            # Ibis's `Table.cache()` on this engine's backend: the public method would pick Ibis's default
            # backend for an expression made of in-memory tables only.
            cached = self._cache(expr)
            self._cached[name] = cached
            return cached

    def drop_temporary(self, name: str) -> None:
        """Drop a table made by `materialise` (nothing happens if there is none of that name)."""
        if self.capabilities.temp_tables:
            self.con.drop_table(name, force=True)
        elif (cached := self._cached.pop(name, None)) is not None:
            cached.release()

    def temporary_tables(self) -> list[str]:
        """The names of the temporary tables the connection holds, sorted (to check nothing leaks)."""
        if self.capabilities.temp_tables:
            return sorted(self._temporary_table_names())
        return sorted(self._cached)

    def interrupt(self) -> bool:
        """Ask the query running on this engine, if any, to stop: it then raises `QueryInterruptedError` in
        the thread that runs it (a stream already handed out by `batches` fails from its reader instead).
        Safe to call from another thread, and when nothing runs. False when the backend cannot cancel
        (the query runs to its end)."""
        if not self.capabilities.interrupts:
            return False
        self._interrupt()
        return True

    @contextmanager
    def reusable(
        self, build: Callable[[ir.Table], Iterable[ir.Table]], schema: pa.Schema
    ) -> Iterator[Callable[[pa.Table], None]]:
        """A probe: `run(data)` runs the expressions `build` makes over an input table of `schema` holding
        `data`, for their errors only (results are dropped). With `prepared_queries` the expressions are
        built and compiled once and re-run over a refilled table; else they are rebuilt for each input."""
        if self.capabilities.prepared_queries:
            with self._prepared(build, schema) as run:
                yield run
            return

        def rebuild(data: pa.Table) -> None:
            table = ibis.memtable(data)
            try:
                for expr in build(table):
                    self.to_arrow(expr)
            finally:
                self.release(table)

        yield rebuild

    # -- statements compiled once (prepared_queries): SQL over stable names, re-run per input ------------

    def bind(self, name: str, data: pa.Table | list[str]) -> ir.Table:
        """Point the stable name `name` at Arrow data or at Parquet files (a lake table's current
        version) and return it as a table. SQL compiled over it (`compile`) stays valid for the next
        binding of the same schema, so a per-batch plan is compiled once per process."""
        if not self.capabilities.prepared_queries:
            raise NotImplementedError(f"{self.capabilities.name}: bind needs prepared_queries")
        self._bind(name, data)
        return self.con.table(name)

    def compile(self, expr: ir.Expr) -> str:
        """`expr` as this backend's SQL (portable builtins spelled)."""
        return str(self.con.compile(self.spelled(expr)))

    def run_sql(self, sql: str, into: str | None = None) -> pa.Table | None:
        """Run compiled SQL: its result as Arrow, or, with `into`, into a temporary table of that name."""
        with self._query():
            return self._run_sql(sql, into)

    def spelled(self, expr: ir.Expr) -> Any:
        """`expr` with the portable builtins in this backend's spelling (done before anything compiles)."""
        return spell(expr, self.capabilities.builtins, self.capabilities.name)

    # -- what an adapter provides for the capabilities it claims ---------------------------------------

    def _read_parquet(self, files: list[str], name: str, root: str) -> ir.Table:
        # `root`: the table's folder, under which partition folders (`brand=…/period=…`) name column values.
        return self.con.read_parquet(files, table_name=name, **self.capabilities.read_parquet_options)

    def _cache(self, expr: ir.Table) -> ir.Table:
        return self.con._cached_table(expr)

    def _to_arrow(self, expr: ir.Expr) -> pa.Table:
        return self.con.to_pyarrow(expr)

    def _scalar(self, expr: ir.Scalar) -> Any:
        return self.con.execute(expr)

    def _prepared(
        self, build: Callable[[ir.Table], Iterable[ir.Table]], schema: pa.Schema
    ) -> Any:  # a context manager yielding run(data)
        raise NotImplementedError(f"{self.capabilities.name}: prepared_queries without _prepared")

    def _bind(self, name: str, data: pa.Table | list[str]) -> None:
        raise NotImplementedError(f"{self.capabilities.name}: prepared_queries without _bind")

    def _run_sql(self, sql: str, into: str | None) -> pa.Table | None:
        raise NotImplementedError(f"{self.capabilities.name}: prepared_queries without _run_sql")

    def _stream(self, expr: ir.Table, rows: int) -> pa.RecordBatchReader:
        raise NotImplementedError(f"{self.capabilities.name}: streams_batches without _stream")

    def _unregister(self, name: str) -> None:
        raise NotImplementedError(f"{self.capabilities.name}: registers_memtables without _unregister")

    def _temporary_table_names(self) -> list[str]:
        raise NotImplementedError(f"{self.capabilities.name}: temp_tables without _temporary_table_names")

    def _interrupt(self) -> None:
        raise NotImplementedError(f"{self.capabilities.name}: interrupts without _interrupt")

    def _is_interruption(self, error: Exception) -> bool:
        """Whether a backend error means "cancelled by `interrupt`"."""
        return False

    @contextmanager
    def _query(self) -> Iterator[None]:
        try:
            yield
        except QueryInterruptedError:
            raise
        except Exception as exc:
            if self._is_interruption(exc):
                raise QueryInterruptedError(
                    "the query was cancelled (a timeout or a shutdown); try again, or narrow it · "
                    "查询已取消（超时或关闭），请重试或缩小范围"
                ) from exc
            raise
