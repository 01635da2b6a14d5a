"""Finding the messages that make a loader batch fail, without loading anything.

A load costs seconds whatever its size (the Segment mapping alone is a large Ibis expression to
compile, and every entity is a Delta commit), so bisecting by loading would take minutes for one
bad message in a big batch. A probe instead runs only the steps where a message's own values can
fail — parsing and the Segment mapping, compiled once, without the lake (what fails there is the
message itself) — over ever smaller halves: about 2·log2(n) cheap runs for one bad message in n.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pyarrow as pa
import pyarrow.json as pajson

from siyu.engine.connect import Engine
from siyu.ingest.dead_letters import LoadStepError
from siyu.ingest.inbox import Pending
from siyu.ingest.schema import ENTITIES
from siyu.ingest.segment import segment_to_canonical

Probe = Callable[[list[Pending]], None]  # raises LoadStepError when the messages fail


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the step a failure happened in: it goes into the dead letter's reason."""
    try:
        yield
    except Exception as exc:
        raise LoadStepError(name, exc) from exc


def messages_table(rows: list[Pending]) -> pa.Table:
    """Segment inbox messages as the input table of `segment_to_canonical`."""
    return pa.table(
        {
            "inbox_id": pa.array([r.id for r in rows], pa.int64()),
            "brand": pa.array([r.brand for r in rows], pa.string()),
            "source": pa.array([r.source for r in rows], pa.string()),
            "message_id": pa.array([r.message_id for r in rows], pa.string()),
            "payload": pa.array([r.payload for r in rows], pa.string()),
            "received_at": pa.array([r.received_at for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )


def canonical_table(entity: str, rows: list[Pending]) -> pa.Table:
    """Canonical rows (JSON objects of text values) → an Arrow table of string columns, one parse."""
    names = ENTITIES[entity].column_names
    schema = pa.schema([(n, pa.string()) for n in names])
    data = "\n".join(r.payload for r in rows).encode()
    table = pajson.read_json(
        pa.BufferReader(data),
        parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    return table.append_column("_line", pa.array([r.id for r in rows], pa.int64()))


def canonical_probe(rows: list[Pending]) -> None:
    for entity in sorted({r.kind for r in rows}):
        with stage(f"read {entity} rows"):
            canonical_table(entity, [r for r in rows if r.kind == entity])


@contextmanager
def segment_probe(engine: Engine) -> Iterator[Probe]:
    """The Segment mapping over the messages alone, compiled once where the engine can re-run a query
    (`Engine.reusable`)."""
    with stage("segment mapping"), ExitStack() as stack:
        run = stack.enter_context(
            engine.reusable(
                lambda table: segment_to_canonical(table, lambda _: None).values(), messages_table([]).schema
            )
        )
        stack = stack.pop_all()

    def probe(rows: list[Pending]) -> None:
        with stage("segment mapping"):
            run(messages_table(rows))

    with stack:
        yield probe


def culprits(probe: Probe, rows: list[Pending]) -> list[tuple[Pending, LoadStepError]]:
    """The single messages that fail `probe`, by bisection, in arrival order."""
    try:
        probe(rows)
    except LoadStepError as failure:
        if failure.transient:
            raise failure.cause from None
        if len(rows) == 1:
            return [(rows[0], failure)]
        middle = len(rows) // 2
        return culprits(probe, rows[:middle]) + culprits(probe, rows[middle:])
    return []
