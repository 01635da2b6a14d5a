"""Parity on Apache Spark (issue 18): the hand-computed tests of the engine port, layers and FAST+ metrics,
grains, trend, the CLV matrix and RFM, One-ID, audiences (with event-property conditions), tag rules, the CLV
summary and loyalty earning run here on `SIYU_ENGINE=pyspark`, unchanged (the list: docs/engines.md).

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
from dataclasses import replace
from pathlib import Path

import pytest

import integration.test_audience_brand as audience_tests
import integration.test_clv_cdnow as clv_tests
import integration.test_engine as engine_tests
import integration.test_fast_metrics as fast_tests
import integration.test_identity_stable as stable_tests
import integration.test_loyalty_sync as loyalty_tests
import integration.test_tags_store as tag_tests
import unit.test_identity_resolve as one_id_tests
from fixtures.audience_brand import AS_OF
from fixtures.audience_brand import write_brand as write_au
from fixtures.cdnow import write_canonical as write_cdnow
from fixtures.fast_brand import write_brand as write_fx
from fixtures.loyalty_brand import SYNC_AT
from fixtures.loyalty_brand import build as build_loyalty
from siyu.bootstrap import App, bootstrap
from siyu.cli.app import app as cli
from siyu.clv.service import lifecycle
from siyu.config import Settings
from siyu.engine.base import Engine
from siyu.engine.connect import connect
from siyu.engine.pyspark import PySparkEngine
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.lake.tables import Lake
from siyu.loyalty.sync import sync
from siyu.metrics.materialise import materialise_layers, materialise_rfm

# Tiny inputs: generating and compiling code for each query costs more than it saves, and adaptive planning adds
# a re-plan per shuffle (measured on One-ID's graphs: 1.3–1.5× faster without both). The interpreted path computes
# the same results; production keeps Spark's defaults.
SPARK_CONF = (
    "spark.ui.enabled=false,spark.sql.shuffle.partitions=2,spark.default.parallelism=2,"
    "spark.sql.codegen.wholeStage=false,spark.sql.codegen.factoryMode=NO_CODEGEN,spark.sql.adaptive.enabled=false"
)


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


@pytest.fixture
def builtin_engine(engine: Engine) -> Engine:
    return engine


test_json_text_reads_top_level_values_and_null_for_what_is_not_json = (
    engine_tests.test_json_text_reads_top_level_values_and_null_for_what_is_not_json
)
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

# -- One-ID --------------------------------------------------------------------------------------------------
# Every hand-made graph of the unit file: the transitive chain (several propagation rounds, two identifier types),
# links through identities rows, junk values (blocklisted placeholders, values shared past the limit), weak
# identifiers, brands kept apart, deterministic ids and the survivor rule across runs, and a split. The label
# propagation materialises a table per round: on Spark each is computed and cut from its lineage
# (`localCheckpoint`, siyu.engine.pyspark), else every round re-plans all earlier ones.


@pytest.fixture
def one_id_engine(spark_session: None, tmp_path: Path) -> Engine:
    return spark_engine(tmp_path / "lake")


test_transitive_chain_is_one_customer = one_id_tests.test_transitive_chain_is_one_customer
test_identities_rows_link_too = one_id_tests.test_identities_rows_link_too
test_placeholder_and_over_limit_values_are_junk_not_links = (
    one_id_tests.test_placeholder_and_over_limit_values_are_junk_not_links
)
test_weak_identifiers_never_link = one_id_tests.test_weak_identifiers_never_link
test_brands_never_merge = one_id_tests.test_brands_never_merge
test_from_scratch_ids_are_deterministic_and_previous_ids_kept = (
    one_id_tests.test_from_scratch_ids_are_deterministic_and_previous_ids_kept
)
test_split_keeps_id_on_the_side_with_the_smallest_record = (
    one_id_tests.test_split_keeps_id_on_the_side_with_the_smallest_record
)


@pytest.fixture
def sqlite_app(spark_session: None, tmp_path: Path) -> Iterator[App]:
    """A workspace whose imports and One-ID runs are all on Spark (the store stays SQLite)."""
    app = on_spark(tmp_path / "home")
    yield app
    app.store.engine.dispose()


# Stable ids across runs and later imports, the merge recorded with its survivor and cause (run_resolve end to
# end: lake reads, the previous map, writes through deltalake).
test_ids_stay_stable_and_merges_are_recorded = stable_tests.test_ids_stay_stable_and_merges_are_recorded

# -- audiences ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def au(spark_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """Brand `au` imported, resolved, its layers, RFM and lifecycle computed by DuckDB (as the DuckDB suite's
    fixture does); the audiences are compiled and run on Spark."""
    root = tmp_path_factory.mktemp("au_spark")
    duck = on_duckdb(root / "home")
    assert import_path(duck, write_au(root / "data")).as_json()["total"]["quarantined"] == 0
    run_resolve(duck)
    materialise_layers(duck, "au", "2024-05", "2024-06")
    materialise_rfm(duck, "au", AS_OF)
    lifecycle(duck, "au", AS_OF, store=True)
    duck.store.engine.dispose()
    app = on_spark(root / "home")
    yield app
    app.store.engine.dispose()


# One rule of each family of the DuckDB suite's 60 (`test_audience`), with its hand-worked answer there: each
# costs a few Spark jobs, and the families share their compilers.
AUDIENCE_FAMILIES = [
    ("not attribute.city = 上海", "BCDFG"),
    ("has phone", "ABCDE"),
    ("points >= 300", "AB"),
    ("relation any in douyin_store", "G"),
    ("did visit in mini_program from 2024-06-01 to 2024-06-30", "ABD"),
    ("spent >= ¥500 in last 91 days", "BDE"),
    ("bought category 面霜 from 2024-06-01 to 2024-06-30", "AB"),
    ("consent sms unknown", "BCDFG"),
    ("layer deepened at 2024-06", "A"),
    ("rfm.f >= 2", "B"),
    ("lifecycle = new", "AH"),
]


@pytest.mark.parametrize(("rule", "expected"), AUDIENCE_FAMILIES)
def test_audience(au: App, rule: str, expected: str) -> None:
    audience_tests.test_audience(au, rule, expected)


def test_audience_families_are_cases_of_the_duckdb_suite() -> None:
    cases = {tuple(c) for mark in audience_tests.test_audience.pytestmark for c in mark.args[1]}
    assert set(AUDIENCE_FAMILIES) <= cases


test_json_and_text_agree = audience_tests.test_json_and_text_agree
# Event-property conditions read each property with `json_text` (get_json_object on Spark), not Ibis's JSON type.
test_event_property_conditions = audience_tests.test_event_property_conditions
test_reach_counts = audience_tests.test_reach_counts

# -- tag rules ---------------------------------------------------------------------------------------------
# The rule tags of `test_tags_store.py` (price band, top category, first-matching case, a measure) computed on
# Spark into the lake, then used in audiences. They run on the module's `au` workspace after the audience tests,
# which read no tags; the tags they define are new to it.

test_rule_tags_computed_by_hand = tag_tests.test_rule_tags_computed_by_hand
test_rule_tag_errors = tag_tests.test_rule_tag_errors

# -- the CLV summary ----------------------------------------------------------------------------------------


@pytest.fixture
def cdnow_home(spark_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CDNOW imported and resolved by DuckDB through the CLI (as the DuckDB suite's fixture does); then every
    command of the test runs on Spark (the CLI's engine comes from SIYU_ENGINE; the session is shared)."""
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    monkeypatch.delenv("SIYU_ENGINE", raising=False)
    result = clv_tests.runner.invoke(cli, ["import", str(write_cdnow(tmp_path / "cdnow")), "--json"])
    assert result.exit_code == 0, result.output
    assert clv_tests.runner.invoke(cli, ["resolve"]).exit_code == 0
    monkeypatch.setenv("SIYU_ENGINE", "pyspark")
    monkeypatch.setenv("SIYU_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("SIYU_SPARK_CONF", SPARK_CONF)
    return tmp_path


test_clv_fit_reproduces_the_paper = clv_tests.test_clv_fit_reproduces_the_paper

# -- loyalty earning ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synced(spark_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[loyalty_tests.Synced]:
    """The loyalty group imported and resolved by DuckDB, the program applied; the sync (which orders earn,
    their earn-rule multipliers and bonuses: `siyu.loyalty.earn`) runs on Spark."""
    root = tmp_path_factory.mktemp("lg_spark")
    duck = build_loyalty(root, f"sqlite:///{root / 'store.db'}")
    app = replace(duck, engine=spark_engine(duck.settings.lake_dir))
    result = sync(app, "lg_club", at=SYNC_AT, actor="test")
    yield app, result, root
    app.store.engine.dispose()


test_first_sync_counts = loyalty_tests.test_first_sync_counts
test_base_points_rules_and_edges = loyalty_tests.test_base_points_rules_and_edges
test_tier_and_birthday_month_in_local_time = loyalty_tests.test_tier_and_birthday_month_in_local_time
