"""The lake: Delta Lake tables under `$SIYU_HOME/lake/<name>` (or `$SIYU_LAKE_URI/<name>`: a local folder,
`file://…`, or object storage such as `s3://bucket/prefix`), written with `deltalake`.

Raw entity tables are append-only; every version of a row carries `_row_hash`, `_import_id` and
`ingested_at`, and "latest version per key" is a view built by `siyu.ingest.views`. Derived tables
(identity map, merges) are replaced whole by one atomic overwrite commit.

Readers never ask an engine to understand Delta: `files()` gives the table's current Parquet files,
which the compute engine reads directly (no DuckDB extension to download for a local lake).

A lake given as a URI takes `deltalake`'s storage options (endpoint, region, credentials, allow-http,
the S3 locking provider: docs/deploy.md); a local lake needs none.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError


def sql_text(text: str) -> str:
    """A string value quoted for a `replace` predicate."""
    return "'" + text.replace("'", "''") + "'"


def local_path(uri: str) -> Path | None:
    """The folder a lake location names on this machine (a plain path or `file://`), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme or len(parsed.scheme) == 1:  # a path (one letter: a Windows drive)
        return Path(uri)
    return None


class Lake:
    """A folder of Delta tables: a local path, or a URI `deltalake` understands (`file://`, `s3://`, …)."""

    def __init__(self, root: Path | str, storage_options: Mapping[str, str] | None = None) -> None:
        self.uri = str(root).rstrip("/")
        self.local = local_path(self.uri)  # None on object storage
        self.storage_options = dict(storage_options or {})

    @property
    def root(self) -> Path:
        """The lake's folder on this machine (a lake on object storage has none)."""
        if self.local is None:
            raise ValueError(f"the lake {self.uri} is not a local folder")
        return self.local

    def location(self, name: str) -> str:
        """Where table `name` lives, as `deltalake` takes it (a path or a URI)."""
        return str(self.local / name) if self.local is not None else f"{self.uri}/{name}"

    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return DeltaTable.is_deltatable(self.location(name), storage_options=self.storage_options or None)

    def _table(self, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.location(name), storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None

    def _prepare(self) -> None:
        if self.local is not None:  # object storage has no folders to make
            self.local.mkdir(parents=True, exist_ok=True)

    def append(
        self, name: str, data: pa.Table | pa.RecordBatchReader, *, metadata: dict[str, str] | None = None
    ) -> int:
        """Append rows in one atomic commit; returns the new table version."""
        return self._write(name, data, "append", metadata)

    def overwrite(self, name: str, data: pa.Table, *, metadata: dict[str, str] | None = None) -> int:
        """Replace the table's contents in one atomic commit (older versions stay for time travel)."""
        return self._write(name, data, "overwrite", metadata)

    def replace(
        self, name: str, data: pa.Table, predicate: str, partition_by: list[str] | None = None, *, merge: bool = False
    ) -> int:
        """Replace the rows matching `predicate` (SQL, e.g. "brand = 'demo' AND period = '2024-06'")
        with `data`, in one atomic commit. When the predicate names only partition columns, the
        replacement drops whole files instead of rewriting them."""
        self._prepare()
        options = self.storage_options or None
        if not self.exists(name):
            write_deltalake(
                self.location(name), data, mode="append", partition_by=partition_by, storage_options=options
            )
        else:
            write_deltalake(
                self.location(name), data, mode="overwrite", predicate=predicate, storage_options=options,
                schema_mode="merge" if merge else None,  # merge: `data` may add columns (lake_rotation)
            )  # fmt: skip
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
        self._prepare()
        write_deltalake(
            self.location(name),
            data,
            mode=mode,
            storage_options=self.storage_options or None,
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
        """The Parquet files that make up the table's current version: absolute paths for a local lake,
        URIs (`s3://…`) on object storage, for the engine to read."""
        table = self._table(name)
        if table is None:
            return []
        uris = [uri.removeprefix("file://") for uri in table.file_uris()]
        if self.local is None:
            return uris
        # deltalake percent-encodes the table's own location in these URIs (a space is %20) but not the
        # partition folders below it, which are named so on disk: put the real folder back in front.
        encoded = table.table_uri.removeprefix("file://").rstrip("/") + "/"
        folder = f"{self.local / name}/"
        return [folder + uri.removeprefix(encoded) if uri.startswith(encoded) else uri for uri in uris]

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

    def optimize(self, name: str, z_order: list[str], *, row_group_rows: int | None = None) -> dict[str, object]:
        """Rewrite the table's files into few large ones, z-ordered by `z_order` (compaction only when
        empty), in one commit that changes no row (`dataChange = false`): readers and concurrent appends
        are unaffected, and older versions stay readable until `vacuum`."""
        table = self._table(name)
        if table is None:
            return {}
        props = WriterProperties(max_row_group_size=row_group_rows) if row_group_rows else None
        if z_order:
            marker = CommitProperties(custom_metadata={Z_ORDER: ",".join(z_order)})
            return dict(table.optimize.z_order(z_order, writer_properties=props, commit_properties=marker))
        return dict(table.optimize.compact(writer_properties=props))

    def z_ordered(self, name: str) -> bool:
        """Whether the commit history still held (the log's retention, 30 days) has a z-order."""
        table = self._table(name)
        return table is not None and any(Z_ORDER in commit for commit in table.history())

    def changed_since_optimize(self, name: str) -> bool:
        """Whether a commit other than an optimize or a vacuum came after the table's last optimize."""
        table = self._table(name)
        if table is None:
            return False
        for commit in table.history():  # newest first
            operation = str(commit.get("operation", ""))
            if operation == "OPTIMIZE":
                return False
            if not operation.startswith("VACUUM"):
                return True
        return True

    def vacuum(self, name: str, retain_hours: int) -> list[str]:
        """Delete the files no version of the last `retain_hours` needs: time travel keeps working
        within that period (versions older than it can no longer be read)."""
        table = self._table(name)
        if table is None:
            return []
        removed = table.vacuum(retention_hours=retain_hours, enforce_retention_duration=False, dry_run=False)
        return [str(f) for f in removed]

    def tables(self) -> list[str]:
        """Names of the Delta tables in the lake."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "_delta_log").is_dir())


LOG_RETENTION = "delta.logRetentionDuration"
Z_ORDER = "siyu.z_order"  # commit metadata of a z-order rewrite: the columns
DEFAULT_LOG_RETENTION = "interval 30 days"  # Delta's default
