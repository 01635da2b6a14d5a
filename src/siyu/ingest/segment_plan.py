"""The Segment mapping compiled once per process, re-run per loader batch.

Building the mapping's Ibis expressions and compiling them to SQL cost seconds per micro-batch, whatever
its size. Here they are built over stable names — the batch's messages (`seg_messages`), the lake
tables the mapping reads (`seg_lake_<entity>`: a view over the table's current files) and the parsed
batch (`seg_parsed`) — compiled once, and each batch only re-points the names and runs the SQL. A
changed lake schema (a new column merged in) compiles again, once.
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir
import pyarrow as pa

from siyu.engine.base import Engine
from siyu.ingest.bounds import TimeBounds
from siyu.ingest.segment import segment_to_canonical
from siyu.ingest.views import latest_of

LAKE_INPUTS = ("customers", "orders", "events")  # what `segment_to_canonical` asks `existing` for
PARSED = "seg_parsed"


class SegmentPlan:
    """`run(messages)` = `segment_to_canonical` over the batch and the lake, as Arrow tables per entity."""

    def __init__(self, engine: Engine, bounds: TimeBounds) -> None:
        self.engine = engine
        self.bounds = bounds
        self._compiled: dict[Any, tuple[str, dict[str, str]]] = {}
        self.compilations = 0  # how often the plan was (re)compiled: once per process and schema

    def run(self, messages: pa.Table) -> dict[str, pa.Table]:
        engine = self.engine
        inputs = {"messages": engine.bind("seg_messages", messages)}
        for entity in LAKE_INPUTS:
            files = engine.lake.files(entity)
            if files:
                inputs[entity] = engine.bind(f"seg_lake_{entity}", files)
        key = tuple((name, table.schema()) for name, table in inputs.items())
        if key not in self._compiled:
            self._compiled[key] = self._compile(inputs)
        parsed, outputs = self._compiled[key]
        engine.run_sql(parsed, into=PARSED)
        tables = {}
        for entity, sql in outputs.items():
            result = engine.run_sql(sql)
            assert result is not None
            tables[entity] = result
        return tables

    def _compile(self, inputs: dict[str, ir.Table]) -> tuple[str, dict[str, str]]:
        engine = self.engine
        parsed: list[str] = []

        def materialise(table: ir.Table) -> ir.Table:
            parsed.append(engine.compile(table))
            engine.run_sql(parsed[0], into=PARSED)  # outputs are built over its schema
            return engine.con.table(PARSED)

        def existing(entity: str) -> ir.Table | None:
            table = inputs.get(entity)
            return None if table is None else latest_of(table, entity)

        mapped = segment_to_canonical(inputs["messages"], existing, materialise=materialise, bounds=self.bounds)
        self.compilations += 1
        return parsed[0], {entity: engine.compile(expr) for entity, expr in mapped.items()}
