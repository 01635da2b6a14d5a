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
from deltalake import CommitProperties, DeltaTable, write_deltalake
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

    def replace(self, name: str, data: pa.Table, predicate: str, partition_by: list[str] | None = None) -> int:
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
            write_deltalake(self.location(name), data, mode="overwrite", predicate=predicate, storage_options=options)
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
