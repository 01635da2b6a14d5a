"""Canonical rows posted to the API (`POST /api/v1/ingest/{entity}`): validated exactly like a
file, answered row by row, and recorded in the inbox before the answer.

JSON has types a file has not: money and counts (the file's integer columns) must be JSON
integers, checked first with pydantic in strict mode, so `true` is not 1 and `"7"` is not 7.
Each valid row is then classified against the lake (declarations — fields, relation types —
against the store) as accepted / updated / unchanged and, unless unchanged, recorded in the inbox
under a message id derived from its key and content, so posting the same rows again records
nothing new. The loader later imports them with the file importer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Strict, ValidationError, create_model

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.ingest import inbox, registry
from siyu.ingest.importer import check, classify
from siyu.ingest.readers import RawFile
from siyu.ingest.schema import DECLARATIONS, ENTITIES, Entity, Kind

OUTCOMES = ("accepted", "updated", "unchanged", "rejected")
DECLARATION_SOURCE = "api"  # declarations have no source column; the inbox needs one


def _typed_row_model(entity: Entity) -> type[BaseModel]:
    """The JSON types a row of `entity` must have: strict integers for fen and counts; anything
    else is read as text and checked by the validator like a file's value."""
    strict_int = Annotated[int | None, Strict()]
    fields: dict[str, Any] = {c.name: (strict_int, None) for c in entity.columns if c.kind in (Kind.FEN, Kind.INT)}
    return create_model(f"{entity.name}_row", __config__=ConfigDict(extra="allow"), **fields)


ROW_MODELS = {name: _typed_row_model(entity) for name, entity in ENTITIES.items()}


def _type_errors(entity_name: str, row: dict[str, Any]) -> list[dict[str, str]]:
    try:
        ROW_MODELS[entity_name].model_validate(row)
    except ValidationError as exc:
        return [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]
    return []


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
    result: list[dict[str, Any]] = [{"index": i, "outcome": "rejected"} for i in range(len(rows))]
    typed: list[int] = []
    for i, row in enumerate(rows):
        if errors := _type_errors(entity_name, row):
            result[i]["errors"] = errors
        else:
            typed.append(i)
    columns: dict[str, list[str | None]] = {n: [_text(rows[i].get(n)) for i in typed] for n in names}
    if "brand" in columns:
        columns["brand"] = [b or brand for b in columns["brand"]]
    if source and "source" in columns:
        columns["source"] = [s or source for s in columns["source"]]
    table = pa.table({n: pa.array(v, pa.string()) for n, v in columns.items()})
    table = table.append_column("_line", pa.array(typed, pa.int64()))
    checked = check(app, RawFile(Path("api"), entity_name, "api", "utf-8", table), brand)
    try:
        good = checked.good.select(*names, "_line", "_row_hash")
        if entity_name in DECLARATIONS:
            good_rows = app.engine.to_arrow(good).to_pylist()
            outcomes = registry.declaration_outcomes(app, entity_name, good_rows)
            classified = [(r["_line"], o, r["_row_hash"]) for r, o in zip(good_rows, outcomes, strict=True)]
        else:
            found = app.engine.to_arrow(classify(app, entity, good).select("_line", "_outcome", "_row_hash"))
            classified = list(zip(*(found[c].to_pylist() for c in ("_line", "_outcome", "_row_hash")), strict=True))
    finally:
        checked.release(app.engine)
    for bad in checked.bad.to_pylist():
        entry = result[bad["_line"]]
        entry.setdefault("errors", []).append({"field": bad["_error_field"], "reason": bad["_error_reason"]})
    by_source: dict[tuple[str, str], list[inbox.Message]] = {}
    position = {line: n for n, line in enumerate(typed)}
    for line, outcome, digest in classified:
        result[line] = {"index": line, "outcome": outcome}
        if outcome == "unchanged":
            continue
        row = {n: columns[n][position[line]] for n in names}
        key = "\x1f".join(str(row[k]) for k in entity.key)
        message_id = hashlib.sha256(f"{key}\x1e{digest}".encode()).hexdigest()
        row_source = str(row.get("source") or source or DECLARATION_SOURCE)
        by_source.setdefault((str(row["brand"]), row_source), []).append(
            inbox.Message(message_id, orjson.dumps(row).decode())
        )
    received = utc_now()
    for (row_brand, row_source), messages in by_source.items():
        inbox.record(app.store, row_brand, row_source, entity_name, messages, received, app.settings.pii_sealing_ring)
    report.rows = result
    return report
