"""The PySpark adapter: every call to Spark's own session, and its capability table, in one place.

`SIYU_ENGINE=pyspark` runs the same Ibis expressions on Apache Spark: in-process (`SIYU_SPARK_MASTER`
`local[*]`, the default) or on a cluster (`spark://host:7077`, `yarn`, …), with `SIYU_SPARK_CONF` for
further settings. Nothing is downloaded at run time: the `pyspark` wheel ships Spark, and the lake is
read as the Parquet files of each Delta table's current version (`Lake.files`), so Spark needs no
Delta jars. Results come back to the driver as Arrow and are committed by `deltalake`, so either engine
reads what the other wrote.

One SparkSession serves the process (Spark allows one per JVM); each `PySparkEngine` is an Ibis backend
over it with its own job group, so `interrupt` cancels only that engine's jobs.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
from ibis.backends.pyspark import Backend as IbisPySpark
from ibis.formats.pyarrow import PyArrowData
from py4j.protocol import Py4JNetworkError
from pyspark.sql import SparkSession

from siyu.core.errors import SiyuError
from siyu.engine.adapter import SPARK_BUILTINS
from siyu.engine.base import Capabilities, Engine
from siyu.lake.tables import Lake

# Loading Ibis's PySpark backend through `ibis` registers its options (`ibis.options.pyspark`), which its
# compiler reads; the subclass below alone would not.
ibis.pyspark  # noqa: B018

SPARK = Capabilities(
    name="pyspark",
    # The result is collected to the driver as one Arrow table, then cut into batches.
    streams_batches=False,
    # In-memory tables become session temporary views until dropped.
    registers_memtables=True,
    # Ibis's PySpark backend has no temporary tables: `materialise` caches (DataFrame.cache + a view).
    temp_tables=False,
    # Each engine runs its jobs in its own job group, which `interrupt` cancels.
    interrupts=True,
    # Parquet schema merging: files written before a column was added read it as NULL.
    read_parquet_options={"mergeSchema": "true"},
    prepared_queries=False,
    builtins=SPARK_BUILTINS,
    transient_errors=(Py4JNetworkError,),  # the driver lost its JVM / cluster
)

# siyu's defaults; SIYU_SPARK_CONF overrides any of them.
DEFAULT_CONF: Mapping[str, str] = {
    "spark.app.name": "siyu",
    # Everything is computed in UTC; brand time zones are applied explicitly (as on DuckDB).
    "spark.sql.session.timeZone": "UTC",
    # NULL for a failed cast or a division by zero, as DuckDB and Ibis's other backends answer
    # (Spark 4 raises under ANSI mode).
    "spark.sql.ansi.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


class SparkConfError(SiyuError):
    code = "bad_spark_conf"
    exit_code = 2


def parse_conf(text: str) -> dict[str, str]:
    """`SIYU_SPARK_CONF`: `key=value` pairs separated by commas (`spark.executor.memory=8g,spark.ui.enabled=false`)."""
    conf: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SparkConfError(
                f"SIYU_SPARK_CONF: {pair!r} is not key=value; write pairs like spark.executor.memory=8g,"
                "spark.sql.shuffle.partitions=64 · SIYU_SPARK_CONF 应为逗号分隔的 key=value"
            )
        conf[key.strip()] = value.strip()
    return conf


def _spark_size(limit: str) -> str:
    """DuckDB-style sizes ("4GB", "512MiB") in Spark's spelling ("4g", "512m")."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt])i?b?\s*", limit, re.IGNORECASE)
    return f"{match.group(1)}{match.group(2).lower()}" if match else limit


def session(master: str, conf: Mapping[str, str]) -> SparkSession:
    """The process's SparkSession, started on first use. Settings read at JVM start (driver memory) apply
    to the first call only; SQL settings apply to every call."""
    # Python workers run Ibis's few Python UDFs (JSON unwrapping) with this interpreter unless told
    # otherwise, so they find the same packages (on a cluster: PYSPARK_PYTHON = the executors' Python).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("spark.log.level", "ERROR"))
    for key, value in conf.items():
        if key.startswith("spark.sql."):
            spark.conf.set(key, value)
    return spark


class _IbisBackend(IbisPySpark):  # type: ignore[misc]
    """Ibis's PySpark backend, handing in-memory tables to Spark as Arrow (Spark 4 takes Arrow directly;
    Ibis goes through pandas for older Sparks, which loses integer types of columns holding NULLs)."""

    def _register_in_memory_table(self, op: ops.InMemoryTable) -> None:
        data = op.data.to_pyarrow(op.schema)
        self._session.createDataFrame(data).createOrReplaceTempView(op.name)

    def _create_cached_table(self, name: str, expr: ir.Table) -> ir.Table:
        # Computed now and cut from its lineage (`localCheckpoint`), where Ibis's `cache()` is lazy and keeps
        # the whole plan: an iterative job (One-ID's label propagation materialises a table per round) would
        # otherwise re-plan every earlier round in each new one, and its planning time grows with the rounds.
        frame = self._session.sql(self.compile(expr)).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)
        self._cached_dataframes[name] = frame
        return self.table(name)

    def _drop_cached_table(self, name: str) -> None:
        self._session.catalog.dropTempView(name)
        self._cached_dataframes.pop(name).unpersist()


class PySparkEngine(Engine):
    capabilities = SPARK

    def __init__(self, con: Any, lake: Lake) -> None:
        super().__init__(con, lake)
        self._group = f"siyu-{uuid.uuid4().hex}"

    @classmethod
    def open(
        cls,
        lake: Lake,
        *,
        memory_limit: str = "4GB",
        temp_directory: str | None = None,
        spark_master: str = "local[*]",
        spark_conf: str = "",
        **_: object,
    ) -> PySparkEngine:
        """An engine on the process's SparkSession (started with siyu's defaults and `spark_conf`)."""
        conf = dict(DEFAULT_CONF)
        conf["spark.driver.memory"] = _spark_size(memory_limit)
        if temp_directory:
            conf["spark.local.dir"] = temp_directory
        conf.update(parse_conf(spark_conf))
        spark = session(spark_master, conf)
        return cls(_IbisBackend().connect(spark), lake)

    @property
    def _session(self) -> SparkSession:
        return self.con._session  # type: ignore[no-any-return]

    def _read_parquet(self, files: list[str], name: str, root: str) -> ir.Table:
        # A partitioned table's partition columns (layers: brand, grain, period) are only in the folder names:
        # Spark reads them from the paths below `basePath` (DuckDB does so by itself, hive partitioning).
        reader = self._session.read.options(**self.capabilities.read_parquet_options).option("basePath", root)
        reader.parquet(*files).createOrReplaceTempView(name)
        return self.con.table(name)

    def _to_arrow(self, expr: ir.Expr) -> Any:
        # Spark's own Arrow collection (Ibis's goes through pandas); then Ibis's types for the columns.
        table = expr.as_table()
        self.con._run_pre_execute_hooks(table)
        result = self._session.sql(self.con.compile(table)).toArrow()
        return expr.__pyarrow_result__(PyArrowData.convert_table(result, table.schema()))

    def _cache(self, expr: ir.Table) -> ir.Table:
        self.con._run_pre_execute_hooks(expr)  # Ibis's PySpark cache does not register in-memory tables
        return super()._cache(expr)

    def _unregister(self, name: str) -> None:
        self._session.catalog.dropTempView(name)

    @contextmanager
    def _query(self) -> Iterator[None]:
        # Job groups are per thread: set it in the thread that runs the query.
        self._session.sparkContext.setJobGroup(self._group, "siyu", interruptOnCancel=True)
        with super()._query():
            yield

    def _interrupt(self) -> None:
        self._session.sparkContext.cancelJobGroup(self._group)

    def _is_interruption(self, error: Exception) -> bool:
        text = str(error)
        return "cancel" in text.lower() and self._group in text
