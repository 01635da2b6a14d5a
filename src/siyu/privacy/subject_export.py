"""`siyu subject export`: everything siyu holds about one person (PIPL art. 45, 查阅复制权), as a zip
of readable JSON (`subject.json`) plus one CSV per table (`store/<table>.csv`, `lake/<table>.csv`),
field names in Chinese and English. Audited (`subject.export`), the file itself is the person's.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.output import atomic_output, check_output
from siyu.privacy.holdings import lake_rows, store_keys, store_rows
from siyu.privacy.inventory import LAKE, STORE, Holding
from siyu.privacy.labels import field_label
from siyu.privacy.lake_columns import open_rows
from siyu.privacy.subject import Subject, find_subject


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def collect(app: App, subject: Subject) -> dict[str, tuple[Holding, list[dict[str, Any]]]]:
    """`store/<table>` and `lake/<table>` → the person's rows, for every table of the inventory."""
    out: dict[str, tuple[Holding, list[dict[str, Any]]]] = {}
    with app.store.unit_of_work() as session:
        keys = store_keys(session, subject)
        for holding in STORE:
            rows = store_rows(session, holding, subject, keys)
            out[f"store/{holding.table}"] = (holding, [{k: _text(v) for k, v in r.items()} for r in rows])
    for holding in LAKE:
        expr = lake_rows(app, holding, subject)
        rows = [] if expr is None else app.engine.to_arrow(expr).to_pylist()
        rows = open_rows(app.settings.pii_keyring, holding.table, rows)  # the person's own copy, in clear
        out[f"lake/{holding.table}"] = (holding, [{k: _text(v) for k, v in r.items()} for r in rows])
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else []
    writer = csv.writer(buffer)
    writer.writerow([field_label(c) for c in columns])
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return buffer.getvalue()


def write_zip(target: io.BytesIO, subject: Subject, found: dict[str, Any], exported_at: str) -> None:
    tables = {
        name: {
            "name_zh": holding.name_zh,
            "name_en": holding.name_en,
            "fields 字段": {c: field_label(c) for c in (rows[0] if rows else {})},
            "rows": rows,
        }
        for name, (holding, rows) in found.items()
    }
    document = {
        "subject 主体": {"customer_ids": subject.customer_ids, "brands": subject.brands},
        "exported_at 导出时间": exported_at,
        "tables 数据表": tables,
    }
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("subject.json", json.dumps(document, ensure_ascii=False, indent=2))
        for name, (_, rows) in found.items():
            # UTF-8 with BOM so spreadsheet programs show the Chinese headers.
            archive.writestr(f"{name}.csv", "\ufeff" + _csv(rows))


def export_bytes(
    app: App, key: str, *, actor: Actor, brand: str | None = None
) -> tuple[Subject, dict[str, int], bytes]:
    """The person's zip in memory (one person's data is small), audited as `subject.export`."""
    subject = find_subject(app, key, brand)
    found = collect(app, subject)
    counts = {name: len(rows) for name, (_, rows) in found.items()}
    with app.store.begin(actor) as uow:
        for customer_id in subject.customer_ids:
            uow.audit("subject.export", "data_subject", customer_id, after={"rows": sum(counts.values())})
        exported_at = uow.now.isoformat()
    buffer = io.BytesIO()
    write_zip(buffer, subject, found, exported_at)
    return subject, counts, buffer.getvalue()


def export_subject(
    app: App, key: str, out: Path, *, actor: Actor, brand: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Write the person's zip to `out` (replacing a file only with `force`); returns rows per table."""
    check_output(out, force=force)
    subject, counts, data = export_bytes(app, key, actor=actor, brand=brand)
    with atomic_output(out, force=force) as tmp:
        tmp.write_bytes(data)
    return {"customer_ids": subject.customer_ids, "file": str(out), "tables": counts}
