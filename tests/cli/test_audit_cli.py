"""`siyu audit list` over changes made through the CLI: key create/revoke and brand settings, with
actor, subject, before → after, and filters."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path

from typer.testing import CliRunner

from siyu.cli.app import app as cli


def _run(env: dict[str, str], *args: str) -> object:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


def test_keys_and_brand_settings_are_audited(tmp_path: Path) -> None:
    env = {"SIYU_HOME": str(tmp_path / "home")}
    created = _run(env, "keys", "create", "--brand", "acme", "--scope", "read", "--name", "pos", "--json")
    assert isinstance(created, dict)
    _run(env, "keys", "revoke", created["id"], "--json")
    _run(env, "brand", "set", "acme", "--attribution-days", "3", "--json")

    rows = _run(env, "audit", "list", "--json")
    assert isinstance(rows, list)
    me = f"user:{getpass.getuser()}"
    assert [(r["action"], r["subject_type"], r["actor"]) for r in rows] == [
        ("brand.update", "brand", me),
        ("key.revoke", "api_key", me),
        ("key.create", "api_key", me),
    ]
    brand, revoke, create = rows
    assert (brand["before"]["attribution_days"], brand["after"]["attribution_days"]) == (7, 3)
    assert revoke["subject_id"] == create["subject_id"] == created["id"]
    assert revoke["before"]["revoked_at"] is None and revoke["after"]["revoked_at"] is not None
    # the secret and its hash never reach the trail
    trail = json.dumps(rows)
    assert created["key"] not in trail and "key_hash" not in trail
    assert create["after"]["scopes"] == ["read"] and create["after"]["label"] == "pos"

    only_keys = _run(env, "audit", "list", "--subject", f"api_key:{created['id']}", "--json")
    assert [r["action"] for r in only_keys] == ["key.revoke", "key.create"]  # type: ignore[union-attr]
    assert _run(env, "audit", "list", "--action", "key.", "--json") == only_keys
    assert _run(env, "audit", "list", "--actor", "system:nobody", "--json") == []
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert _run(env, "audit", "list", "--from", tomorrow, "--json") == []
    assert len(_run(env, "audit", "list", "--to", tomorrow, "--json")) == 3  # type: ignore[arg-type]


def test_a_refused_change_leaves_no_audit_row(tmp_path: Path) -> None:
    env = {"SIYU_HOME": str(tmp_path / "home")}
    _run(env, "keys", "create", "--brand", "acme", "--scope", "read", "--json")
    bad = CliRunner().invoke(cli, ["brand", "set", "acme", "--attribution-days", "365"], env=env)
    assert bad.exit_code != 0 and "1–90" in bad.output
    missing = CliRunner().invoke(cli, ["keys", "revoke", "no-such-key"], env=env)
    assert missing.exit_code == 3
    assert [r["action"] for r in _run(env, "audit", "list", "--json")] == ["key.create"]  # type: ignore[union-attr]


def test_bad_dates_are_one_line_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "list", "--from", "yesterday"], env={"SIYU_HOME": str(tmp_path)})
    assert result.exit_code == 2 and "--from 'yesterday'" in result.output and "Traceback" not in result.output


def test_seal_then_verify_and_a_tampered_row_exits_1(tmp_path: Path) -> None:
    from sqlalchemy import text

    from siyu.bootstrap import bootstrap
    from siyu.config import Settings

    env = {"SIYU_HOME": str(tmp_path)}
    _run(env, "keys", "create", "--brand", "acme", "--scope", "read", "--json")
    _run(env, "brand", "set", "acme", "--attribution-days", "3", "--json")
    assert _run(env, "audit", "seal", "--json") == {"sealed": 2}
    ok = _run(env, "audit", "verify", "--json")
    assert (ok["ok"], ok["sealed"], ok["unsealed"]) == (True, 2, 0)  # type: ignore[index]
    app = bootstrap(Settings(home=tmp_path))
    with app.store.unit_of_work() as s:
        s.execute(text("UPDATE audit_log SET actor_id = 'mallory' WHERE seq = 1"))
    broken = CliRunner().invoke(cli, ["audit", "verify"], env=env)
    assert broken.exit_code == 1
    assert "row 1" in broken.output and "审计链断裂" in broken.output
