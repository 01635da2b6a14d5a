"""`siyu audience …` and `siyu tags …` through the real CLI on the hand-made brand `au`
(tests/fixtures/audience_brand.py): the commands named in issue 6 exist, print JSON for scripts,
bilingual tables for people, and one clear error line with the offending rule node."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.audience_brand import write_brand
from siyu.cli.app import app

runner = CliRunner()
AS_OF = ["--as-of", "2024-06-30"]


@pytest.fixture
def au_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    assert runner.invoke(app, ["import", str(write_brand(tmp_path / "au"))]).exit_code == 0
    assert runner.invoke(app, ["resolve"]).exit_code == 0
    return tmp_path


def run_json(*args: str) -> object:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_audience_commands(au_home: Path) -> None:
    created = run_json(
        "audience",
        "create",
        "twice",
        "--brand",
        "au",
        "--rule",
        "did visit in mini_program >= 2 times in last 30 days",
        "--by",
        "op1",
    )
    assert created["rule"] == {"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30}
    run_json("audience", "create", "phones", "--brand", "au", "--rule", '{"identifier": "phone"}')
    count = run_json("audience", "count", "twice", "--brand", "au", *AS_OF)
    assert {"brand", "audience", "as_of", "customers"} <= set(count) and count["customers"] == 2  # A and merged B
    preview = run_json("audience", "preview", "--brand", "au", "--rule", "has email", *AS_OF)
    assert preview["customers"] == 2 and {r["phone"] for r in preview["sample"]} == {"139****0001", "139****0005"}
    out = au_home / "twice.csv"
    exported = run_json("audience", "export", "twice", "--brand", "au", "--out", str(out), *AS_OF)
    assert exported["rows"] == 2 and "****" in out.read_text()
    aimless = runner.invoke(app, ["audience", "export", "twice", "--brand", "au", "--out", str(au_home / "x.csv"),
                                  "--unmasked", "--columns", "customer_id,phone"])  # fmt: skip
    assert aimless.exit_code == 2 and "purpose" in aimless.output and not (au_home / "x.csv").exists()
    diff = run_json("audience", "diff", "twice", "phones", "--brand", "au", *AS_OF)
    assert (diff["both"], diff["only_a"], diff["only_b"]) == (2, 0, 3)
    reach = run_json("audience", "reach", "phones", "--brand", "au", *AS_OF)
    assert reach["channels"]["sms"]["customers"] == 4  # E unsubscribed
    snap = run_json("audience", "snapshot", "twice", "--brand", "au", *AS_OF)
    assert snap["customers"] == 2

    table = runner.invoke(app, ["audience", "reach", "--brand", "au", *AS_OF])
    assert table.exit_code == 0 and "短信 SMS" in table.stdout and "any channel 任一渠道" in table.stdout
    shown = runner.invoke(app, ["audience", "count", "phones", "--brand", "au", *AS_OF])
    assert "5 customers 客户" in shown.stdout


def test_bad_rule_is_one_line_with_the_node(au_home: Path) -> None:
    bad = runner.invoke(
        app, ["audience", "count", "--brand", "au", "--rule", '{"all": [{"membership": "member"}, {"layer": "vip"}]}']
    )
    assert bad.exit_code == 2
    assert "invalid_rule" in bad.output and "all[1].layer" in bad.output and "Traceback" not in bad.output
    text = runner.invoke(app, ["audience", "count", "--brand", "au", "--rule", "member and and"])
    assert text.exit_code == 2 and "text:1:12" in text.output


def test_tags_commands(au_home: Path) -> None:
    rule = json.dumps(
        {
            "measure": "avg_item_price_fen",
            "last_days": 365,
            "bands": [{"value": "low", "below": 20000}, {"value": "mid", "below": 40000}, {"value": "high"}],
        }
    )
    run_json("tags", "define", "price_band", "--brand", "au", "--kind", "rule", "--rule", rule, "--name-zh", "价格带")
    computed = run_json("tags", "compute", "--brand", "au", *AS_OF)
    assert computed[0]["values"] == {"high": 2, "low": 1, "mid": 2}
    run_json("tags", "define", "interest", "--brand", "au", "--kind", "manual", "--values", "serum,mask")
    found = run_json("customer", "show", "13900000001")
    assert found["lights"]["sms"]["on"] is True
    set_out = run_json(
        "tags",
        "set",
        "interest",
        found["customer_id"],
        "serum",
        "--brand",
        "au",
        "--by",
        "guide007",
        "--reason",
        "asked in WeCom",
    )
    assert set_out["set_by"] == "user:guide007"
    view = run_json("customer", "show", "13900000001")
    assert {t["tag"]: t["value"] for t in view["tags"]} == {"price_band": "mid", "interest": "serum"}
    history = run_json("tags", "history", "--brand", "au", "interest")
    assert history[0]["actor"] == "user:guide007" and history[0]["reason"] == "asked in WeCom"
    listing = runner.invoke(app, ["tags", "list", "--brand", "au"])
    assert listing.exit_code == 0 and "规则标签" in listing.stdout and "price_band" in listing.stdout
    count = run_json("audience", "count", "--brand", "au", "--rule", "tag.price_band in [mid, high]", *AS_OF)
    assert count["customers"] == 4
    shown = runner.invoke(app, ["customer", "show", "13900000001"])
    assert "lights 亮灯" in shown.stdout and "interest = serum" in shown.stdout
    dry = runner.invoke(app, ["tags", "delete", "interest", "--brand", "au"])
    assert dry.exit_code == 0 and "--yes" in dry.stdout


def test_audience_changes_in_the_audit_list(au_home: Path) -> None:
    run_json("audience", "create", "phones", "--brand", "au", "--rule", "has phone", "--by", "op1")
    dry = runner.invoke(app, ["audience", "delete", "phones", "--brand", "au"])
    assert dry.exit_code == 0 and "--yes" in dry.stdout  # a dry run changes nothing and audits nothing
    assert runner.invoke(app, ["audience", "delete", "phones", "--brand", "au", "--yes"]).exit_code == 0
    rows = run_json("audit", "list", "--subject", "audience")
    assert isinstance(rows, list)
    definition = {"display_name": None, "description": None, "rule": {"identifier": "phone"}, "refresh_minutes": None}
    assert [(r["actor"], r["action"], r["subject_id"], r["brand"], r["before"], r["after"]) for r in rows] == [
        (f"user:{getpass.getuser()}", "audience.delete", "au/phones", "au", definition, None),
        ("user:op1", "audience.create", "au/phones", "au", None, definition),
    ]
    assert run_json("audit", "list", "--subject", "audience:au/phones", "--action", "audience.create") == rows[1:]
