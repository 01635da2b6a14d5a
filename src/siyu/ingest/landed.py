"""What an import landed, collected while its rows stream to the lake (no second query): the brands,
row counts and keys that the `*Landed` domain events carry (siyu.events.catalogue)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from siyu.events.catalogue import LANDED_BY_ENTITY, MAX_KEYS, DomainEvent
from siyu.ingest.schema import Entity


class LandedKeys:
    """Wraps the batches going to the lake and keeps, per brand, the row count and (up to
    MAX_KEYS in all) the rows' keys: the key columns other than brand, joined with ':'."""

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.key_columns = [c for c in entity.key if c != "brand"]
        self.rows: dict[str, int] = {}
        self.keys: dict[str, list[str]] = {}
        self.complete = True
        self._kept = 0

    def watch(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(reader.schema, self._through(reader))

    def _through(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            self._note(batch)
            yield batch

    def _note(self, batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch])
        counts = table.group_by("brand").aggregate([("brand", "count")])
        for brand, n in zip(counts["brand"].to_pylist(), counts["brand_count"].to_pylist(), strict=True):
            self.rows[brand] = self.rows.get(brand, 0) + int(n)
        if not self.complete:
            return
        if self._kept + batch.num_rows > MAX_KEYS:
            self.complete, self.keys = False, {}
            return
        parts = [pc.cast(table[c], pa.string()) for c in self.key_columns]
        joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, ":")
        for brand, key in zip(table["brand"].to_pylist(), joined.to_pylist(), strict=True):
            self.keys.setdefault(brand, []).append(key)
        self._kept += batch.num_rows

    def events(self, import_id: str) -> list[DomainEvent]:
        cls = LANDED_BY_ENTITY.get(self.entity.name)
        if cls is None:
            return []
        return [
            cls(brand, import_id, tuple(self.keys.get(brand, ())) if self.complete else (), self.complete, n)
            for brand, n in sorted(self.rows.items())
        ]
