"""`siyu engine info`: the configured engine, its version and capability table (docs/engines.md)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from siyu.cli.app import app as cli


def test_engine_info_json_names_engine_version_and_capabilities(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["engine", "info", "--json"], env={"SIYU_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["engine"], info["version"]) == ("duckdb", duckdb.__version__)
    caps = info["capabilities"]
    assert caps["temp_tables"] is True and caps["streams_batches"] is True
    assert caps["builtins"] == ["siyu_json_text", "siyu_json_valid", "siyu_local_to_utc", "siyu_utc_to_local"]


def test_engine_info_table_and_an_unknown_engine(tmp_path: Path) -> None:
    shown = CliRunner().invoke(cli, ["engine", "info"], env={"SIYU_HOME": str(tmp_path)})
    assert shown.exit_code == 0 and "prepared_queries" in shown.output
    bad = CliRunner().invoke(cli, ["engine", "info"], env={"SIYU_HOME": str(tmp_path), "SIYU_ENGINE": "oracle"})
    assert bad.exit_code != 0 and "supported engines are: duckdb, pyspark" in bad.output
