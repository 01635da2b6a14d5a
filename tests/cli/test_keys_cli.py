"""`siyu keys create|list|revoke` exactly as the API issue writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.api.keys import digest
from siyu.cli.app import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    return tmp_path


def test_create_json_list_revoke(tmp_path: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--brand", "demo", "--scope", "ingest", "--source", "app", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"key", "id"}
    assert created["key"].startswith("sk_siyu_") and len(created["key"]) > 40

    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    assert [(k["id"], k["scopes"], k["source"], k["revoked_at"]) for k in listed] == [
        (created["id"], ["ingest"], "app", None)
    ]
    assert created["key"] not in json.dumps(listed)  # the secret is shown once only
    store = b"".join(f.read_bytes() for f in (tmp_path / "home").glob("siyu.db*"))  # with the WAL
    assert created["key"].encode() not in store and digest(created["key"]).encode() in store

    assert runner.invoke(app, ["keys", "revoke", created["id"]]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    assert listed[0]["revoked_at"] is not None


def test_scopes_and_errors() -> None:
    result = runner.invoke(app, ["keys", "create", "--brand", "demo", "--scope", "read", "--scope", "pii", "--json"])
    assert result.exit_code == 0
    result = runner.invoke(app, ["keys", "create", "--brand", "demo", "--scope", "superuser"])
    assert result.exit_code == 2 and "superuser" in result.output
    result = runner.invoke(app, ["keys", "create", "--brand", "demo", "--scope", "pii"])
    assert result.exit_code == 2  # pii alone grants nothing to read or write
    result = runner.invoke(app, ["keys", "revoke", "no-such-id"])
    assert result.exit_code == 3 and "no-such-id" in result.output
