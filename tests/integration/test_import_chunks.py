"""Streaming import (分块导入): a file read a few rows at a time lands the same rows and the same
quarantine as the file read whole, finds a key repeated across chunks, and commits once or never."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.errors import UnreadableFileError
from siyu.ingest.importer import import_path, quarantine
from siyu.ingest.views import latest
from siyu.store.models import ImportJob

HEADER = ["brand", "source", "order_id", "source_customer_id", "status", "paid_at", "amount_fen", "refund_fen"]
ROWS = [
    ["demo", "pos", "o1", "c1", "completed", "2024-06-01 10:00:00", "1000", "0"],  # line 2
    ["demo", "pos", "o2", "c1", "completed", "2024-05-01 10:00:00", "500", "0"],  # 3: superseded by 9
    ["demo", "pos", "o3", "c2", "completed", "2024-13-45 10:00", "1000", "0"],  # 4: bad timestamp
    ["demo", "pos", "o4", "c2", "paid", "2024-04-01 08:00:00", "12.50", "0"],  # 5: decimal money
    ["demo", "pos", "o5", "c3", "completed", "2024-03-01 09:00:00", "700", "0"],  # 6
    ["demo", "pos", "o6", "c3", "completed", "2024-02-01 09:00:00", "800", "0"],  # 7: superseded by 8
    ["demo", "pos", "o6", "c3", "completed", "2024-02-01 09:00:00", "900", "0"],  # 8: wins (same chunk)
    ["demo", "pos", "o2", "c1", "completed", "2024-05-01 10:00:00", "600", "0"],  # 9: wins (a later chunk)
    ["demo", "pos", "o7", "c4", "teleported", "2024-01-01 09:00:00", "100", "0"],  # 10: unknown status
    ["demo", "pos", "o8", "c4", "completed", "2024-07-01 09:00:00", "100", "0"],  # 11
]


def _write(folder: Path, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"orders.{fmt}"
    if fmt == "csv":
        path.write_text("\n".join(",".join(r) for r in [HEADER, *ROWS]) + "\n")
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(dict(zip(HEADER, r, strict=True))) for r in ROWS) + "\n")
    else:
        pq.write_table(pa.table({h: [r[i] for r in ROWS] for i, h in enumerate(HEADER)}), path)
    return path


def _workspace(home: Path, chunk_rows: int) -> App:
    return bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}", import_chunk_rows=chunk_rows))


def _landed(app: App) -> list[dict[str, object]]:
    table = latest(app.engine, "orders")
    assert table is not None
    rows = app.engine.to_arrow(table.drop("ingested_at", "_import_id", "_file")).to_pylist()
    return sorted(rows, key=lambda r: str(r["order_id"]))


def _quarantined(app: App) -> list[tuple[object, ...]]:
    return [(r["line"], r["field"], r["reason"], json.dumps(r["raw"], sort_keys=True)) for r in quarantine(app)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_chunks_land_what_the_whole_file_lands(tmp_path: Path, fmt: str) -> None:
    whole = _workspace(tmp_path / "whole", 1_000_000)
    chunked = _workspace(tmp_path / "chunked", 3)  # o2 on line 3 (chunk 1) and line 9 (chunk 3)
    first = import_path(whole, _write(tmp_path / "in", fmt))
    second = import_path(chunked, _write(tmp_path / "in", fmt))
    assert first.as_json() == second.as_json()
    assert second.as_json()["orders"] == {"accepted": 5, "updated": 0, "unchanged": 0, "quarantined": 5}
    assert _landed(whole) == _landed(chunked)
    assert {r["order_id"]: r["amount_fen"] for r in _landed(chunked)}["o2"] == 600  # the later chunk won
    assert _quarantined(whole) == _quarantined(chunked)
    first_line = 2 if fmt == "csv" else 1  # lines as the comments count them: CSV has a header line
    reasons = {line - first_line + 2: reason for line, _, reason, _ in _quarantined(chunked)}  # type: ignore[operator]
    assert reasons[3] == f"duplicate key in file; superseded by line {9 + first_line - 2}"
    assert reasons[7] == f"duplicate key in file; superseded by line {8 + first_line - 2}"
    assert not list((tmp_path / "chunked" / "tmp").iterdir())  # the staged chunks are gone


def test_a_failure_between_chunks_commits_nothing(tmp_path: Path) -> None:
    app = _workspace(tmp_path / "home", 3)
    path = _write(tmp_path / "in", "csv")
    with path.open("a") as f:  # line 12, in the fourth chunk: one column too many
        f.write("demo,pos,o9,c5,completed,2024-07-02 09:00:00,100,0,surprise\n")
    with pytest.raises(UnreadableFileError, match="cannot read as CSV"):
        import_path(app, path)
    assert app.lake.version("orders") is None  # no commit: the chunks before it were only staged
    with app.store.unit_of_work() as session:
        assert session.query(ImportJob).count() == 0
    assert not list((tmp_path / "home" / "tmp").iterdir())
