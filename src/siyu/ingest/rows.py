"""Canonical rows posted to the API (`POST /api/v1/ingest/{entity}`): validated exactly like a
file, answered row by row, and recorded in the inbox before the answer.

Each valid row is classified against the lake now (accepted / updated / unchanged) and, unless
unchanged, recorded in the inbox under a message id derived from its key and content, so posting
the same rows again records nothing new. The loader later imports them with the file importer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.ingest import inbox
from siyu.ingest.importer import check, classify
from siyu.ingest.readers import RawFile
from siyu.ingest.schema import ENTITIES

OUTCOMES = ("accepted", "updated", "unchanged", "rejected")


@dataclass
class RowsReport:
    entity: str
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for row in self.rows:
            counts[row["outcome"]] += 1
        return {"entity": self.entity, "counts": counts, "rows": self.rows, "warnings": self.warnings}


def _text(value: Any) -> str | None:
    """A JSON value as the text a canonical file would hold."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def accept_rows(app: App, entity_name: str, rows: list[dict[str, Any]], brand: str, source: str | None) -> RowsReport:
    """Validate, classify and durably record `rows` of `entity_name` for `brand` (the caller's key)."""
    entity = ENTITIES[entity_name]
    names = entity.column_names
    report = RowsReport(entity_name, [])
    unknown = sorted({k for row in rows for k in row} - set(names))
    if unknown:
        report.warnings.append(f"ignored unknown field(s): {', '.join(unknown)} (忽略未知字段)")
    columns: dict[str, list[str | None]] = {n: [_text(row.get(n)) for row in rows] for n in names}
    if "brand" in columns:
        columns["brand"] = [b or brand for b in columns["brand"]]
    if source and "source" in columns:
        columns["source"] = [s or source for s in columns["source"]]
    table = pa.table({n: pa.array(v, pa.string()) for n, v in columns.items()})
    table = table.append_column("_line", pa.array(range(len(rows)), pa.int64()))
    checked = check(app, RawFile(Path("api"), entity_name, "api", "utf-8", table), brand)
    try:
        outcomes = app.engine.to_arrow(classify(app, entity, checked.good).select("_line", "_outcome", "_row_hash"))
    finally:
        checked.release(app.engine)
    result: list[dict[str, Any]] = [{"index": i, "outcome": "rejected"} for i in range(len(rows))]
    for bad in checked.bad.to_pylist():
        entry = result[bad["_line"]]
        entry.setdefault("errors", []).append({"field": bad["_error_field"], "reason": bad["_error_reason"]})
    by_source: dict[tuple[str, str], list[inbox.Message]] = {}
    for line, outcome, digest in zip(
        outcomes["_line"].to_pylist(), outcomes["_outcome"].to_pylist(), outcomes["_row_hash"].to_pylist(), strict=True
    ):
        result[line] = {"index": line, "outcome": outcome}
        if outcome == "unchanged":
            continue
        row = {n: columns[n][line] for n in names}
        key = "\x1f".join(str(row[k]) for k in entity.key)
        message_id = hashlib.sha256(f"{key}\x1e{digest}".encode()).hexdigest()
        by_source.setdefault((str(row["brand"]), str(row["source"])), []).append(
            inbox.Message(message_id, orjson.dumps(row).decode())
        )
    received = utc_now()
    for (row_brand, row_source), messages in by_source.items():
        inbox.record(app.store, row_brand, row_source, entity_name, messages, received)
    report.rows = result
    return report
