"""`siyu metrics …`, `siyu brand …` and `siyu report` through the real CLI: the JSON keys written in
issue 3 are a contract, and errors are one clear line with a non-zero exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.fast_brand import write_brand
from siyu.cli.app import app

runner = CliRunner()


@pytest.fixture
def fx_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    assert runner.invoke(app, ["import", str(write_brand(tmp_path / "fx"))]).exit_code == 0
    assert runner.invoke(app, ["resolve"]).exit_code == 0
    return tmp_path


def run_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_metrics_fast_json_contract(fx_home: Path) -> None:
    r = run_json("metrics", "fast", "--brand", "fx", "--period", "2024-06")
    assert {"brand", "period", "timezone", "capital", "layers", "capital_by_field", "conversion", "connection",
            "clv"} <= set(r)  # fmt: skip
    assert set(r["layers"]) == {"basic", "member_no_purchase", "purchased", "repurchase", "koc"}
    assert {"rate", "deepened", "base", "new_entrants", "new_member_entrants", "transitions"} <= set(r["conversion"])
    assert set(r["conversion"]["transitions"][0]) == {"from", "to", "customers"}
    assert {"visitors", "holders", "rate"} <= set(r["connection"]["tmall_store"])
    assert {"window_days", "average_fen", "by_layer", "transaction_fen", "propagation_fen"} <= set(r["clv"])
    assert (r["capital"], r["clv"]["average_fen"]) == (10, 12500)


def test_metrics_fast_terminal_report_is_bilingual(fx_home: Path) -> None:
    result = runner.invoke(app, ["metrics", "fast", "--brand", "fx", "--period", "2024-06"])
    assert result.exit_code == 0, result.output
    for text in ("Capital", "可持续运营私域关系数", "Conversion", "2024-05", "KOC"):
        assert text in result.stdout


def test_trend_clv_matrix_rfm_json(fx_home: Path) -> None:
    trend = run_json("metrics", "trend", "--brand", "fx", "--from", "2024-04", "--to", "2024-06")
    assert [p["period"] for p in trend["periods"]] == ["2024-04", "2024-05", "2024-06"]
    matrix = run_json("metrics", "clv-matrix", "--brand", "fx", "--period", "2024-06")
    assert sum(c["customers"] for c in matrix["cells"]) == 10
    rfm = run_json("metrics", "rfm", "--brand", "fx", "--as-of", "2024-06-30", "--window-days", "365")
    assert rfm["customers"] == 9 and len(rfm["groups"]) == 8


def test_brand_settings_change_the_numbers(fx_home: Path) -> None:
    settings = run_json("brand", "set", "fx", "--no-koc-reviews")
    assert settings["koc_reviews"] is False
    r = run_json("metrics", "fast", "--brand", "fx", "--period", "2024-06")
    assert r["layers"]["koc"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "fast", "--brand", "nope", "--period", "2024-06"], "unknown brand"),
        (["metrics", "fast", "--brand", "fx", "--period", "2024-13"], "invalid period"),
        (["metrics", "fast", "--brand", "fx", "--period", "2024-06", "--grain", "day"], "unknown grain"),
        (["metrics", "trend", "--brand", "fx", "--from", "2024-06", "--to", "2024-01"], "before"),
        (["metrics", "rfm", "--brand", "fx", "--as-of", "June"], "YYYY-MM-DD"),
        (["brand", "set", "fx", "--timezone", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_errors_are_clear(fx_home: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output


def test_report_writes_one_offline_html_file(fx_home: Path) -> None:
    out = fx_home / "report.html"
    result = runner.invoke(app, ["report", "--brand", "fx", "--period", "2024-06", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    # Outside the inlined scripts (plotly.js mentions map-tile URLs it never loads here), nothing
    # refers to the network: no script/link/img sources.
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", html, flags=re.DOTALL)
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*(src|href)=", markup)
    assert "FAST+" in html and "可持续运营私域关系数" in html
