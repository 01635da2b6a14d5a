"""Imported tags (导入标签): a CSV from another system (a DMP, a survey, a guide's spreadsheet)
gives one tag's values. Rows name the customer by `customer_id`, or by `source` +
`source_customer_id` (resolved through the identity map). The file is the tag's full state: an
import replaces the tag's previous imported values, in one unit of work, with one history row and
one audit row. Reading and matching the file (`read_tag_file`) comes first, outside the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import delete, insert

from siyu.audiences.errors import TagError
from siyu.audiences.models import TagAssignment, TagHistory
from siyu.audiences.tags import FLAG, find_tag, subject
from siyu.bootstrap import App
from siyu.core.errors import UnreadableFileError
from siyu.identity.service import MAP_TABLE
from siyu.store.uow import UnitOfWork


@dataclass(frozen=True)
class TagFile:
    """A tag file matched to the brand's customers (made by `read_tag_file`): one row per customer
    found, the last row winning; `value` is null where the file has no value column."""

    brand: str
    path: Path
    rows: int  # rows in the file
    found: pa.Table  # customer_id, value


def read_tag_file(app: App, brand: str, path: Path) -> TagFile:
    """Read a tag CSV and match its rows to customers through the identity map (a lake read, done
    before the unit of work opens)."""
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
    if "value" not in names:  # a file of ids only: a flag tag's customers (checked against the tag later)
        rows = rows.append_column("value", pa.nulls(rows.num_rows, pa.string()))
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
    try:
        data = app.engine.to_arrow(found.distinct(on="customer_id", keep="last"))
    finally:
        app.engine.release(table)
    return TagFile(brand, path, rows.num_rows, data)


def do_import_tags(uow: UnitOfWork, code: str, file: TagFile, *, reason: str | None = None) -> dict[str, Any]:
    """Replace an imported tag's values with the file's. Audited with one row of counts
    (`tag.import`), never one per customer."""
    brand, path, data = file.brand, file.path, file.found
    definition = find_tag(uow.session, brand, code)
    if definition["kind"] != "imported":
        raise TagError(f"tag {code!r} is a {definition['kind']} tag; only imported tags take a file (仅导入标签可导入)")
    texts = data["value"].to_pylist()
    if definition["value_type"] == "flag":
        texts = [FLAG if v is None else v for v in texts]
    values = set(definition["values"])
    bad = sorted({v for v in texts if definition["value_type"] == "enum" and v not in values}, key=str)
    if bad:
        raise TagError(f"{path}: values not allowed for tag {code!r}: {', '.join(map(str, bad[:5]))} (标签取值无效)")
    numbers: list[float | None] = [None] * len(texts)
    if definition["value_type"] == "number":
        try:
            numbers = [float(v) for v in texts]
        except (TypeError, ValueError) as exc:
            raise TagError(f"{path}: tag {code!r} is numeric: {exc} (需要数值)") from exc
    actor = str(uow.actor)
    records = [
        {"brand": brand, "tag_code": code, "customer_id": c, "value": v, "number": n, "origin": "import",
         "set_by": actor, "set_at": uow.now, "reason": reason}
        for c, v, n in zip(data["customer_id"].to_pylist(), texts, numbers, strict=True)
    ]  # fmt: skip
    session = uow.session
    replaced = int(
        session.execute(
            delete(TagAssignment).where(TagAssignment.brand == brand, TagAssignment.tag_code == code)
        ).rowcount  # type: ignore[attr-defined]
        or 0
    )
    if records:
        session.execute(insert(TagAssignment), records)
    session.add(
        TagHistory(
            brand=brand, tag_code=code, action="import", new_value=f"{len(records)} customers", actor=actor,
            at=uow.now, reason=reason or str(path),
        )
    )  # fmt: skip
    out = {"brand": brand, "tag": code, "rows": file.rows, "customers": len(records),
           "unmatched": file.rows - len(records)}  # fmt: skip
    after = {"file": path.name, "rows": file.rows, "customers": len(records), "unmatched": out["unmatched"],
             "reason": reason}  # fmt: skip
    uow.audit("tag.import", "tag", subject(brand, code), brand=brand, before={"customers": replaced}, after=after)
    return out
