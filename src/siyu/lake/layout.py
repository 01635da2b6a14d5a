"""How the lake's tables are laid out for windowed reads (`siyu lake optimize`, 湖表整理).

Orders and events are read by brand and a time window (audiences, FAST+). DuckDB skips a Parquet
row group whose minimum and maximum miss the window, so rows are kept in time order: imports sort
each file's new rows by brand and time before the commit, and `optimize` rewrites a table's many
small files (the loader's micro-batches, one file per import) into a few files z-ordered by time.

The z-order is on the time column alone: `deltalake` interleaves the bits of every z-order column,
and a brand string's bytes then push the time bits down so far that each row group spans most of
the table's months (measured: a 5,000-row group covered 7 of 12 months with `brand, occurred_at`,
three weeks with `occurred_at`). Brands still prune by file statistics once each brand's imports
are sorted on write, and a brand's windows prune by time either way.

Optimizing is a rewrite with `dataChange = false`: the rows, and so every result, are the same; older
versions stay readable (time travel) until `vacuum` removes their files after the retention.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from siyu.lake.tables import Lake

if TYPE_CHECKING:
    from siyu.bootstrap import App

log = logging.getLogger(__name__)

# Table -> the time column its windows filter on. Other tables are compacted only.
TIME_COLUMNS: dict[str, str] = {
    "orders": "paid_at",
    "events": "occurred_at",
    "relations": "started_at",
}


def sort_keys(table: str, columns: list[str]) -> list[str]:
    """The columns an import sorts a table's new rows by before the commit (brand, then time)."""
    time = TIME_COLUMNS.get(table)
    if time is None or time not in columns:
        return []
    return [c for c in ("brand", time) if c in columns]


@dataclass
class Optimized:
    table: str
    z_order: list[str]
    files_before: int
    files_after: int
    files_vacuumed: int
    skipped: bool = False  # nothing was written since the last optimize

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "z_order": self.z_order,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "files_vacuumed": self.files_vacuumed,
            "skipped": self.skipped,
        }


def optimize_table(
    lake: Lake, name: str, retain_hours: int, *, row_group_rows: int | None = None, force: bool = False
) -> Optimized:
    """Compact `name`, then vacuum the files no version younger than `retain_hours` still needs. A table
    with a time column is z-ordered by it (a rewrite of the whole table) when its kept history has no
    z-order yet — so about once per log retention (30 days) — or with `force`; otherwise only its small
    files are merged, which keeps the clustering: imports are sorted and new rows are recent. A table
    unchanged since its last optimize is only vacuumed."""
    before = len(lake.files(name))
    schema = lake.schema(name)
    time = TIME_COLUMNS.get(name)
    has_time = bool(time and schema is not None and time in schema.names)
    columns = [time] if time and has_time and (force or not lake.z_ordered(name)) else []
    skipped = not force and not lake.changed_since_optimize(name)
    if not skipped:
        lake.optimize(name, columns, row_group_rows=row_group_rows)
    vacuumed = lake.vacuum(name, retain_hours)
    return Optimized(name, columns, before, len(lake.files(name)), len(vacuumed), skipped)


def optimize_lake(
    lake: Lake, retain_hours: int, tables: list[str] | None = None, *, force: bool = False
) -> list[Optimized]:
    """`optimize_table` for each named table, or for every table of the lake."""
    names = tables if tables is not None else default_tables(lake)
    return [optimize_table(lake, name, retain_hours, force=force) for name in names if lake.exists(name)]


def default_tables(lake: Lake) -> list[str]:
    """Every table of a local lake; on object storage, which has no folder listing here, the
    time-clustered ones (orders, events, relations)."""
    return lake.tables() if lake.local is not None else list(TIME_COLUMNS)


def run_schedule(
    app: App,
    stop: threading.Event,
    every: timedelta,
    run: Callable[[App], Any] | None = None,
) -> None:
    """Optimize the lake every `every` until `stop` (the worker's thread); the first after one interval."""
    while not stop.wait(every.total_seconds()):
        try:
            done = (run or _scheduled)(app)
            log.info("lake optimize: %d tables", len(done))
        except Exception as error:  # a failed pass (e.g. a conflicting commit) must not end the schedule
            log.error("scheduled lake optimize failed (%s)", type(error).__name__)


def _scheduled(app: App) -> list[Optimized]:
    return optimize_lake(app.lake, app.settings.lake_vacuum_retain_hours)
