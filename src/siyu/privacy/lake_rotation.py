"""The lake half of `siyu keys rotate-pii`: re-seal the envelopes of the raw tables' PII columns
(siyu.privacy.lake_columns) under the keyring's current key.

One Delta commit per table, replacing only the rows of the imports that hold a stale envelope
(predicate on `_import_id`), so imports landing meanwhile are neither lost nor rewritten (they are
sealed under the current key already). Keyed hashes and masks do not change: the hash key is never
rotated. Older Delta versions keep the old envelopes until their files are vacuumed (the operator's choice,
as for any rewrite); the old key must stay in the key file until then if time travel must read them.
"""

from __future__ import annotations

import ibis
import pyarrow as pa

from siyu.bootstrap import App
from siyu.privacy.crypto import PREFIX, Keyring, reseal
from siyu.privacy.lake_columns import PURPOSE, SEALED, clear_rows, context, prepare, seal_table, sealed_columns

TABLES = {"customers": list(SEALED["customers"]), "identities": ["id_value"]}


def rotate_lake(app: App) -> dict[str, int]:
    """Rows re-sealed (or sealed for the first time) per raw table (0 when all are current)."""
    ring = app.settings.pii_keyring
    current = f"{PREFIX}:{ring.current}:"
    done: dict[str, int] = {}
    for entity, columns in TABLES.items():
        done[entity] = _seal_clear(app, ring, entity) if app.settings.pii_encryption else 0
        table = app.engine.table(entity)
        sealed = [c for c in columns if table is not None and f"{c}_enc" in table.columns]
        if table is None or not sealed:
            continue
        stale = ibis.or_(*(table[f"{c}_enc"].notnull() & ~table[f"{c}_enc"].startswith(current) for c in sealed))
        imports = app.engine.to_arrow(table.filter(stale).select("_import_id").distinct())["_import_id"].to_pylist()
        if not imports:
            continue
        rows = app.engine.to_arrow(table.filter(table._import_id.isin(imports)))
        for col in sealed:
            name, ctx = f"{col}_enc", context(entity, col)
            cells = [None if v is None else reseal(ring, PURPOSE, v, ctx) or v for v in rows[name].to_pylist()]
            rows = rows.set_column(rows.column_names.index(name), name, pa.array(cells, pa.string()))
        done[entity] += rows.num_rows
        app.lake.replace(entity, rows, _of_imports(imports))
    return done


def _of_imports(imports: list[str]) -> str:
    return "_import_id IN (" + ", ".join("'" + str(i).replace("'", "''") + "'" for i in imports) + ")"


def _seal_clear(app: App, ring: Keyring, entity: str) -> int:
    """Seal the rows a lake from before encryption (or with it off) holds in clear: the imports holding
    them are rewritten sealed, their clear columns left empty (the table's schema keeps them)."""
    table = app.engine.table(entity)
    if table is None:
        return 0
    columns = [c for c in sealed_columns(entity) if c in table.columns]
    clear = clear_rows(table, entity)
    if clear is None:
        return 0
    imports = app.engine.to_arrow(table.filter(clear).select("_import_id").distinct())["_import_id"].to_pylist()
    if not imports:
        return 0
    part = table.filter(table._import_id.isin(imports))
    helpers = [f"{c}_{k}" for c in columns for k in ("enc", "hash", "mask") if f"{c}_{k}" in part.columns]
    rows = seal_table(ring, ring.hash_key, entity, app.engine.to_arrow(prepare(entity, part.drop(*helpers))))
    if entity == "customers":  # the clear columns stay in the schema, empty
        for c in columns:
            rows = rows.append_column(c, pa.nulls(rows.num_rows, pa.string()))
    app.lake.replace(entity, rows, _of_imports(imports), merge=True)  # adds the sealed columns
    return int(rows.num_rows)
