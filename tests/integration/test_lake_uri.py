"""The lake given as a URI (`SIYU_LAKE_URI`, issue 18 item 6) rather than as `$SIYU_HOME/lake`: import,
One-ID, FAST+ and the Delta reads work the same. Tested with a `file://` URI (object storage goes through the
same `deltalake` calls with storage options; docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from fixtures.fast_brand import write_brand
from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.lake.tables import Lake, local_path
from siyu.metrics.fast import FastMetrics


def test_local_path_of_a_lake_location(tmp_path: Path) -> None:
    assert local_path("/data/lake") == Path("/data/lake")
    assert local_path("file:///data/my%20lake") == Path("/data/my lake")
    assert local_path("s3://bucket/lake") is None


def test_lake_tables_through_a_file_uri(tmp_path: Path) -> None:
    folder = tmp_path / "a lake"  # a space: the URI spells it %20
    lake = Lake(folder.as_uri())
    assert lake.local == folder and not lake.exists("t")
    assert lake.append("t", pa.table({"k": ["a", "b"]})) == 0
    assert lake.append("t", pa.table({"k": ["c"], "n": [1]})) == 1  # a column added later
    assert lake.exists("t") and (folder / "t" / "_delta_log").is_dir()
    assert all(Path(f).is_file() and f.startswith(str(folder)) for f in lake.files("t"))
    assert lake.schema("t") == pa.schema([("k", pa.string()), ("n", pa.int64())])
    assert lake.replace("t", pa.table({"k": ["a"], "n": [2]}), "k = 'a'") == 2
    assert lake.version("t") == 2


def test_import_resolve_and_fast_with_the_lake_as_a_uri(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared" / "lake"
    settings = Settings(
        home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'siyu.db'}", lake_uri=elsewhere.as_uri()
    )
    assert settings.lake_dir == elsewhere
    app = bootstrap(settings)
    report = import_path(app, write_brand(tmp_path / "fx"))
    assert report.as_json()["total"]["quarantined"] == 0
    run_resolve(app)
    m = FastMetrics(app, "fx")
    r = m.fast(m.period("2024-06"))
    # The numbers of tests/integration/test_fast_metrics.py::test_fast_json_for_june, worked out there.
    assert r["capital"] == 10
    assert r["layers"] == {"basic": 4, "member_no_purchase": 0, "purchased": 2, "repurchase": 2, "koc": 2}
    # Everything went to the URI, nothing to $SIYU_HOME/lake.
    assert (elsewhere / "orders" / "_delta_log").is_dir() and (elsewhere / "identity_map" / "_delta_log").is_dir()
    assert not (tmp_path / "home" / "lake").exists()
    app.store.engine.dispose()
