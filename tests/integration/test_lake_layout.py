"""Lake layout (湖表整理): imports write time-sorted files, `siyu lake optimize` z-orders events by time
so a window's row groups are few, results stay the same, and time travel survives the vacuum."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from siyu.bootstrap import App, bootstrap
from siyu.cli.app import app as cli
from siyu.config import Settings
from siyu.ingest.importer import import_path
from siyu.lake import layout
from siyu.lake.tables import Lake

START = datetime(2025, 1, 1, tzinfo=UTC)
WINDOW = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
FILES, ROWS = 4, 20000


def _events(path: Path, part: int) -> Path:
    """One events file, its rows in random time order over 2025."""
    rng = np.random.default_rng(part)
    seconds = rng.integers(0, 365 * 86400, ROWS)
    lines = ["brand,source,event_id,type,source_customer_id,occurred_at"]
    for i, s in enumerate(seconds):
        at = (START + timedelta(seconds=int(s))).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"demo,app,e{part}-{i},visit,c{i % 3000},{at}")
    path.mkdir(parents=True, exist_ok=True)
    (path / "events.csv").write_text("\n".join(lines) + "\n")
    return path / "events.csv"


def _row_groups(files: list[str], column: str) -> tuple[int, int]:
    """(row groups whose min/max of `column` overlap WINDOW, all row groups): what a windowed read
    must open, as DuckDB decides it from the Parquet statistics."""
    hit = total = 0
    lo, hi = WINDOW
    for f in files:
        meta = pq.ParquetFile(f).metadata
        index = meta.schema.to_arrow_schema().get_field_index(column)
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index).statistics
            total += 1
            hit += stats.max >= lo and stats.min < hi
    return hit, total


def _window_count(files: list[str], profile: Path | None = None) -> int:
    con = duckdb.connect()
    if profile is not None:
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{profile}'")
    row = con.execute(
        "SELECT count(*) FROM read_parquet(?, union_by_name = true) WHERE occurred_at >= ? AND occurred_at < ?",
        [files, *WINDOW],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _bytes_read(files: list[str], profile: Path) -> int:
    """What DuckDB itself read from disk for the windowed count (its profiling output)."""
    _window_count(files, profile)
    return int(json.loads(profile.read_text())["io"]["total_bytes_read"])


@pytest.fixture(scope="module")
def lake_app(tmp_path_factory: pytest.TempPathFactory) -> App:
    home = tmp_path_factory.mktemp("layout")
    app = bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}"))
    for part in range(FILES):
        import_path(app, _events(home / f"in{part}", part))
    return app


def test_an_import_writes_its_rows_sorted_by_time(lake_app: App) -> None:
    for f in lake_app.lake.files("events"):
        times = pq.read_table(f, columns=["occurred_at"])["occurred_at"].to_pylist()
        assert times == sorted(times)


def test_optimize_clusters_by_time_keeps_results_and_time_travel(lake_app: App, tmp_path: Path) -> None:
    lake = lake_app.lake
    before_files = lake.files("events")
    before_version = lake.version("events")
    assert len(before_files) == FILES
    hit_before, total_before = _row_groups(before_files, "occurred_at")
    assert hit_before == total_before == FILES  # each import's file spans the year: a window reads them all
    count_before = _window_count(before_files)
    read_before = _bytes_read(before_files, tmp_path / "before.json")

    done = layout.optimize_table(lake, "events", retain_hours=168, row_group_rows=4000)

    after_files = lake.files("events")
    assert done.z_order == ["occurred_at"] and not done.skipped
    assert (done.files_before, done.files_after, done.files_vacuumed) == (FILES, len(after_files), 0)
    hit_after, total_after = _row_groups(after_files, "occurred_at")
    assert total_after == FILES * ROWS // 4000
    assert hit_after <= total_after // 6  # one month of twelve: a handful of row groups, not all of them
    assert _window_count(after_files) == count_before
    assert _bytes_read(after_files, tmp_path / "after.json") < read_before / 2  # DuckDB skipped row groups
    # Time travel within the retention: the version before optimize still reads, row for row.
    old = DeltaTable(lake.location("events"), version=before_version).to_pyarrow_table()
    assert old.num_rows == FILES * ROWS
    # Nothing written since: the next pass only vacuums; a vacuum with no retention removes the old files.
    assert layout.optimize_table(lake, "events", retain_hours=168).skipped
    assert len(lake.vacuum("events", 0)) == FILES
    with pytest.raises(FileNotFoundError):  # its files are gone
        DeltaTable(lake.location("events"), version=before_version).to_pyarrow_table()
    assert _window_count(lake.files("events")) == count_before
    # New rows: the next pass merges small files only; the table's z-order stands (no second rewrite).
    import_path(lake_app, _events(tmp_path / "more", FILES))
    again = layout.optimize_table(lake, "events", retain_hours=168)
    assert (again.z_order, again.skipped, again.files_after) == ([], False, 1)


def test_lake_optimize_command(lake_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_HOME", str(lake_app.settings.home))
    monkeypatch.setenv("SIYU_DATABASE_URL", str(lake_app.settings.database_url))
    runner = CliRunner()
    result = runner.invoke(cli, ["lake", "optimize", "--table", "events", "--force", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["z_order"] == ["occurred_at"]
    result = runner.invoke(cli, ["lake", "optimize", "--table", "nope"])
    assert result.exit_code == 2 and "nope" in result.output


def test_the_worker_schedule_optimizes_until_stopped(lake_app: App) -> None:
    stop, runs = threading.Event(), []
    worker = threading.Thread(
        target=layout.run_schedule, args=(lake_app, stop, timedelta(seconds=0.1), lambda a: runs.append(a) or [])
    )
    worker.start()
    deadline = time.monotonic() + 30
    while len(runs) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive()


def test_which_tables_a_pass_optimizes(lake_app: App) -> None:
    assert "events" in layout.default_tables(lake_app.lake)
    # Object storage has no folder listing here: the time-clustered tables (lake.tables() would raise).
    assert layout.default_tables(Lake("s3://bucket/lake")) == ["orders", "events", "relations"]
