"""`siyu quarantine list [--reveal PURPOSE]` and `siyu keys rotate-pii` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli.app import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    monkeypatch.delenv("SIYU_PII_KEY", raising=False)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"current": "a", "keys": {"a": "first-key"}}))
    monkeypatch.setenv("SIYU_PII_KEY_FILE", str(keys))
    return tmp_path


def test_masked_listing_audited_reveal_and_rotation(env: Path) -> None:
    data = env / "customers.csv"
    data.write_text("brand,source,source_customer_id,phone,birthday\nacme,pos,c1,13912345678,1990/01/01\n")
    assert runner.invoke(app, ["import", str(data), "--json"]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["quarantine", "list", "--json"]).stdout)
    assert listed[0]["raw"]["phone"] == "139****5678"
    revealed = runner.invoke(app, ["quarantine", "list", "--json", "--reveal", "fix the birthday"])
    assert json.loads(revealed.stdout)[0]["raw"]["phone"] == "13912345678"
    no_purpose = runner.invoke(app, ["quarantine", "list", "--reveal", " "])
    assert no_purpose.exit_code == 2 and "reveal_purpose_required" in no_purpose.output

    (env / "keys.json").write_text(json.dumps({"current": "b", "hash": "a", "keys": {"a": "first-key", "b": "k2"}}))
    rotated = runner.invoke(app, ["keys", "rotate-pii", "--json"])
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.stdout) == {
        "key": "b",
        "store": {"quarantine_rows": 1, "inbox": 0, "outbound_messages": 0, "wecom_configs": 0},
        "lake": {"customers": 0, "identities": 0},  # the one row was quarantined: nothing landed
    }
    audit = json.loads(runner.invoke(app, ["audit", "list", "--json"]).stdout)
    assert {"pii.reveal", "pii.rotate"} <= {a["action"] for a in audit}
