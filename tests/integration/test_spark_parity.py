"""Parity on Apache Spark (issue 18): the hand-computed tests of the engine port, layers and FAST+ metrics,
grains, trend, the CLV matrix and RFM run here on `SIYU_ENGINE=pyspark`, unchanged (what is not yet here,
and why: docs/engines.md).

The test functions are the DuckDB ones, imported from their modules (as Ibis runs one suite against
every backend): pytest collects them again here, where their fixtures (`fx`, `engine`, `lake`) hand
them a Spark engine over the same kind of workspace. So every expected number is the
one worked out by hand in the original file, and a test changed there changes here.

Cost: Spark is one JVM per test process. Every Spark test lives in this one file (CI distributes whole
files to workers, `--dist loadfile`), and one SparkSession (`spark_session`) serves them all, with two
shuffle partitions and no UI. The lake files are written by DuckDB's import where a fixture says so:
what is under test here is the computation, and reading a lake another engine wrote.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import integration.test_engine as engine_tests
import integration.test_fast_metrics as fast_tests
from fixtures.fast_brand import write_brand as write_fx
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.engine.base import Engine
from siyu.engine.connect import connect
from siyu.engine.pyspark import PySparkEngine
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.lake.tables import Lake

SPARK_CONF = "spark.ui.enabled=false,spark.sql.shuffle.partitions=2,spark.default.parallelism=2"


@pytest.fixture(scope="session")
def spark_session() -> Iterator[None]:
    """Start the process's one SparkSession (local mode, two threads) before the first Spark test."""
    engine = spark_engine(Path("/nonexistent-lake"))
    yield
    engine._session.stop()


def spark_engine(lake_dir: Path) -> PySparkEngine:
    engine = connect("pyspark", Lake(lake_dir), memory_limit="1GB", spark_master="local[2]", spark_conf=SPARK_CONF)
    assert isinstance(engine, PySparkEngine)
    return engine


def on_spark(home: Path) -> App:
    """The workspace at `home` (store `home/siyu.db`) with a Spark engine."""
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}", engine="pyspark")
    return bootstrap(settings, engine=spark_engine(settings.lake_dir))


def on_duckdb(home: Path) -> App:
    return bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}"))


# -- the engine port ---------------------------------------------------------------------------------------


@pytest.fixture
def engine(spark_session: None, tmp_path: Path) -> Engine:
    return spark_engine(tmp_path / "lake")


@pytest.fixture
def lake(engine: Engine) -> Lake:
    return engine.lake


test_batches_stream_in_chunks_on_every_capability = engine_tests.test_batches_stream_in_chunks_on_every_capability
test_materialise_and_drop_temporary = engine_tests.test_materialise_and_drop_temporary
test_scalar = engine_tests.test_scalar
test_lake_table_reads_files_from_before_a_column_was_added = (
    engine_tests.test_lake_table_reads_files_from_before_a_column_was_added
)

# -- FAST+: layers, FAST+ metrics, grains, trend, CLV matrix, RFM ------------------------


@pytest.fixture(scope="module")
def fx_workspace(spark_session: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Brand `fx` imported and resolved by DuckDB; each test gets a copy (some change settings)."""
    root = tmp_path_factory.mktemp("fx_spark")
    duck = on_duckdb(root / "home")
    assert import_path(duck, write_fx(root / "data")).as_json()["total"]["quarantined"] == 0
    run_resolve(duck)
    duck.store.engine.dispose()
    return root / "home"


@pytest.fixture
def fx(fx_workspace: Path, tmp_path: Path) -> Iterator[App]:
    home = tmp_path / "home"
    shutil.copytree(fx_workspace, home)
    app = on_spark(home)
    yield app
    app.store.engine.dispose()


test_layers_follow_every_rule = fast_tests.test_layers_follow_every_rule
test_fast_json_for_june = fast_tests.test_fast_json_for_june
test_attribution_window_last_click_and_self_purchase = fast_tests.test_attribution_window_last_click_and_self_purchase
test_review_koc_is_a_brand_setting = fast_tests.test_review_koc_is_a_brand_setting
test_shorter_attribution_window_drops_late_purchases = fast_tests.test_shorter_attribution_window_drops_late_purchases
test_first_period_has_no_conversion_rate = fast_tests.test_first_period_has_no_conversion_rate
test_week_quarter_year_grains = fast_tests.test_week_quarter_year_grains
test_trend_reuses_layers_and_matches_single_periods = fast_tests.test_trend_reuses_layers_and_matches_single_periods
test_clv_matrix_cells = fast_tests.test_clv_matrix_cells
test_rfm_scores_and_groups = fast_tests.test_rfm_scores_and_groups
test_declared_relation_types_count_for_the_basic_layer_when_they_are_connections = (
    fast_tests.test_declared_relation_types_count_for_the_basic_layer_when_they_are_connections
)
