"""Imported tags (导入标签): a CSV from another system (a DMP, a survey, a guide's spreadsheet)
gives one tag's values. Rows name the customer by `customer_id`, or by `source` +
`source_customer_id` (resolved through the identity map). The file is the tag's full state: an
import replaces the tag's previous imported values, in one unit of work, with one history row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import delete, insert

from siyu.audiences.errors import TagError
from siyu.audiences.models import TagAssignment, TagHistory
from siyu.audiences.tags import FLAG, tag_definition
from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.core.errors import UnreadableFileError
from siyu.identity.service import MAP_TABLE


def import_tags(
    app: App, brand: str, code: str, path: Path, *, actor: str, reason: str | None = None
) -> dict[str, Any]:
    definition = tag_definition(app, brand, code)
    if definition["kind"] != "imported":
        raise TagError(f"tag {code!r} is a {definition['kind']} tag; only imported tags take a file (仅导入标签可导入)")
    try:
        rows = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True,
                column_types={c: pa.string() for c in ("customer_id", "source", "source_customer_id", "value")},
            ),
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise UnreadableFileError(f"{path}: cannot read the CSV: {exc} (无法读取文件)") from exc
    names = set(rows.column_names)
    if "value" not in names and definition["value_type"] != "flag":
        rows = rows.append_column("value", pa.nulls(rows.num_rows, pa.string()))
    if "value" not in names:
        rows = rows.append_column("value", pa.array([FLAG] * rows.num_rows, pa.string()))
    idmap = app.engine.table(MAP_TABLE)
    if idmap is None:
        raise TagError("no identity map yet: run `siyu resolve` first (尚未运行 One-ID)")
    idmap = idmap.filter(idmap.brand == brand)
    table = ibis.memtable(rows)
    if "customer_id" in names:
        found = table.select("customer_id", "value").semi_join(idmap, "customer_id")
    elif {"source", "source_customer_id"} <= names:
        found = table.join(idmap, ["source", "source_customer_id"]).select("customer_id", "value")
    else:
        raise TagError(f"{path}: needs a customer_id column, or source and source_customer_id (缺少客户列)")
    data = app.engine.to_arrow(found.distinct(on="customer_id", keep="last"))
    app.engine.release(table)
    values = set(definition["values"])
    bad = sorted(
        {v for v in data["value"].to_pylist() if definition["value_type"] == "enum" and v not in values}, key=str
    )
    if bad:
        raise TagError(f"{path}: values not allowed for tag {code!r}: {', '.join(map(str, bad[:5]))} (标签取值无效)")
    numbers: list[float | None] = [None] * data.num_rows
    if definition["value_type"] == "number":
        try:
            numbers = [float(v) for v in data["value"].to_pylist()]
        except (TypeError, ValueError) as exc:
            raise TagError(f"{path}: tag {code!r} is numeric: {exc} (需要数值)") from exc
    now = utc_now()
    records = [
        {
            "brand": brand,
            "tag_code": code,
            "customer_id": c,
            "value": v,
            "number": n,
            "origin": "import",
            "set_by": actor,
            "set_at": now,
            "reason": reason,
        }
        for c, v, n in zip(data["customer_id"].to_pylist(), data["value"].to_pylist(), numbers, strict=True)
    ]
    with app.store.unit_of_work() as session:
        session.execute(delete(TagAssignment).where(TagAssignment.brand == brand, TagAssignment.tag_code == code))
        if records:
            session.execute(insert(TagAssignment), records)
        session.add(
            TagHistory(
                brand=brand,
                tag_code=code,
                action="import",
                new_value=f"{len(records)} customers",
                actor=actor,
                at=now,
                reason=reason or str(path),
            )
        )
    return {
        "brand": brand,
        "tag": code,
        "rows": rows.num_rows,
        "customers": len(records),
        "unmatched": rows.num_rows - len(records),
    }
