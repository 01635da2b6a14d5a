"""The lake: Delta Lake tables under `$SIYU_HOME/lake/<name>`, written with `deltalake`.

Raw entity tables are append-only; every version of a row carries `_row_hash`, `_import_id` and
`ingested_at`, and "latest version per key" is a view built by `siyu.ingest.views`. Derived tables
(identity map, merges) are replaced whole by one atomic overwrite commit.

Readers never ask an engine to understand Delta: `files()` gives the table's current Parquet files,
which the compute engine reads directly (no DuckDB extension to download).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError


def sql_text(text: str) -> str:
    """A string value quoted for a `replace` predicate."""
    return "'" + text.replace("'", "''") + "'"


class Lake:
    """A folder of Delta tables."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return (self.path(name) / "_delta_log").is_dir()

    def _table(self, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(str(self.path(name)))
        except TableNotFoundError:
            return None

    def append(
        self, name: str, data: pa.Table | pa.RecordBatchReader, *, metadata: dict[str, str] | None = None
    ) -> int:
        """Append rows in one atomic commit; returns the new table version."""
        return self._write(name, data, "append", metadata)

    def overwrite(self, name: str, data: pa.Table, *, metadata: dict[str, str] | None = None) -> int:
        """Replace the table's contents in one atomic commit (older versions stay for time travel)."""
        return self._write(name, data, "overwrite", metadata)

    def replace(self, name: str, data: pa.Table, predicate: str, partition_by: list[str] | None = None) -> int:
        """Replace the rows matching `predicate` (SQL, e.g. "brand = 'demo' AND period = '2024-06'")
        with `data`, in one atomic commit. When the predicate names only partition columns, the
        replacement drops whole files instead of rewriting them."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.exists(name):
            write_deltalake(str(self.path(name)), data, mode="append", partition_by=partition_by)
        else:
            write_deltalake(str(self.path(name)), data, mode="overwrite", predicate=predicate)
        table = self._table(name)
        assert table is not None
        return int(table.version())

    def _write(
        self,
        name: str,
        data: pa.Table | pa.RecordBatchReader,
        mode: Literal["append", "overwrite"],
        metadata: dict[str, str] | None,
    ) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(self.path(name)),
            data,
            mode=mode,
            schema_mode="merge" if mode == "append" else "overwrite",
            commit_properties=CommitProperties(custom_metadata=metadata) if metadata else None,
        )
        table = self._table(name)
        assert table is not None
        return int(table.version())

    def upsert(self, name: str, data: pa.Table, key: list[str], delete: pa.Table | None = None) -> int:
        """Insert `data`, replacing the rows with the same `key`, and remove the rows whose key is in
        `delete`, in one atomic commit: only the files holding a changed row are rewritten (a small
        change to a big table stays small)."""
        table = self._table(name)
        if table is None:
            return self._write(name, data, "append", None)
        source = data.append_column("_delete", pa.array([False] * data.num_rows))
        if delete is not None and delete.num_rows:
            gone = pa.table(
                {
                    c: delete[c] if c in key else pa.nulls(delete.num_rows, data.schema.field(c).type)
                    for c in data.column_names
                }
            ).append_column("_delete", pa.array([True] * delete.num_rows))
            source = pa.concat_tables([source, gone.cast(source.schema)])
        columns = {c: f"s.{c}" for c in data.column_names}
        (
            table.merge(source, " AND ".join(f"t.{k} = s.{k}" for k in key), source_alias="s", target_alias="t")
            .when_matched_delete(predicate="s._delete")
            .when_matched_update(columns, predicate="NOT s._delete")
            .when_not_matched_insert(columns, predicate="NOT s._delete")
            .execute()
        )
        return int(table.version())

    def files(self, name: str) -> list[str]:
        """Absolute paths of the Parquet files that make up the table's current version."""
        table = self._table(name)
        if table is None:
            return []
        return [uri.removeprefix("file://") for uri in table.file_uris()]

    def schema(self, name: str) -> pa.Schema | None:
        table = self._table(name)
        if table is None:
            return None
        return pa.schema(table.schema().to_arrow())

    def version(self, name: str) -> int | None:
        table = self._table(name)
        return None if table is None else int(table.version())

    def delete(self, name: str, predicate: str) -> int:
        """Delete the rows matching `predicate` in one commit; returns how many. Older versions
        still hold them until `purge_history`."""
        table = self._table(name)
        if table is None:
            return 0
        return int(table.delete(predicate)["num_deleted_rows"])

    def update(self, name: str, values: dict[str, str], predicate: str) -> int:
        """Set columns to constant text values on the rows matching `predicate`, in one commit."""
        table = self._table(name)
        if table is None:
            return 0
        updates = {column: sql_text(value) for column, value in values.items()}
        return int(table.update(updates=updates, predicate=predicate)["num_updated_rows"])

    def purge_history(self, name: str) -> list[str]:
        """Forget every older version of the table: its unreferenced Parquet files (vacuum with
        retention 0) and the commit log before a fresh checkpoint, whose file statistics hold
        column minima and maxima of removed files. Time travel on the table starts again here.
        A reader still scanning an older version at that moment loses its files."""
        table = self._table(name)
        if table is None:
            return []
        removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        table.alter.set_table_properties({LOG_RETENTION: "interval 0 seconds"})
        table.create_checkpoint()
        table.cleanup_metadata()
        table.alter.set_table_properties({LOG_RETENTION: DEFAULT_LOG_RETENTION})
        return [str(f) for f in removed]

    def tables(self) -> list[str]:
        """Names of the Delta tables in the lake."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "_delta_log").is_dir())


LOG_RETENTION = "delta.logRetentionDuration"
DEFAULT_LOG_RETENTION = "interval 30 days"  # Delta's default
