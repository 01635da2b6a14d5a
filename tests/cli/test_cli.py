"""The commands and JSON keys written in the issue, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli.app import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def _exports(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text(
        "source,source_customer_id,phone,unionid,name\n"
        "tmall,t1,+86 138 1234 5678,,王五\n"
        "mini_program,m1,,U1,\n"
        "wecom,w1,13812345678,U1,\n"
        "pos,p1,13800000000,,\n"
        "pos,p2,13800000000,,\n"
    )
    (folder / "memberships.csv").write_text(
        "source,member_no,source_customer_id,joined_at,tier\nmini_program,M001,m1,2024-01-01 10:00:00,金卡\n"
    )
    (folder / "orders.csv").write_text(
        "source,order_id,source_customer_id,status,paid_at,amount_fen,refund_fen\n"
        "tmall,o1,t1,completed,2024-06-18 20:00:00,10000,0\n"
        "mini_program,o2,m1,partially_refunded,2024-11-11 00:10:00,5000,1000\n"
        "tmall,o3,t1,created,,999,0\n"
        "tmall,o4,t1,completed,2024-06-18 20:00:00,-1,0\n"
    )
    return folder


def test_import_resolve_show_quarantine(env: Path) -> None:
    folder = _exports(env / "exports")
    code, out = run("import", str(folder), "--brand", "acme", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["customers"] == {"accepted": 5, "updated": 0, "unchanged": 0, "quarantined": 0}
    assert data["orders"] == {"accepted": 3, "updated": 0, "unchanged": 0, "quarantined": 1}
    assert data["total"] == {"accepted": 9, "updated": 0, "unchanged": 0, "quarantined": 1}

    code, out = run("import", str(folder), "--brand", "acme", "--json")
    assert json.loads(out)["total"] == {"accepted": 0, "updated": 0, "unchanged": 9, "quarantined": 1}

    code, out = run("quarantine", "list", "--json")
    rows = json.loads(out)
    assert [(Path(r["file"]).name, r["line"], r["field"]) for r in rows] == [("orders.csv", 5, "amount_fen")]

    code, out = run("resolve", "--json", "--export", str(env / "idmap.csv"))
    assert code == 0, out
    res = json.loads(out)
    # t1, m1, w1 are one person (phone variants + unionid); p1, p2 share only a placeholder phone.
    assert res["source_customers"] == 5 and res["customers"] == 3
    assert set(res) >= {"source_customers", "customers", "merged", "junk_identifiers"}
    assert any(j["reason"] == "blocklist" for j in res["junk_identifiers"])
    header = (env / "idmap.csv").read_text().splitlines()[0].replace('"', "")
    assert header.startswith("source,source_customer_id,customer_id")

    code, out = run("customer", "show", "138-1234-5678", "--json")
    assert code == 0, out
    view = json.loads(out)
    assert {s["source_customer_id"] for s in view["sources"]} == {"t1", "m1", "w1"}
    assert view["orders"]["count"] == 2 and view["orders"]["amount_fen"] == 10000 + 5000 - 1000
    phones = [i["value"] for i in view["identifiers"] if i["type"] == "phone"]
    assert phones and all("****" in p and "12345678" not in p for p in phones)
    assert [m["tier"] for m in view["memberships"]] == ["金卡"]

    _, by_member = run("customer", "show", "M001", "--json")
    _, by_id = run("customer", "show", view["customer_id"], "--json")
    assert json.loads(by_member)["customer_id"] == json.loads(by_id)["customer_id"] == view["customer_id"]

    code, _ = run("customer", "show", "13999999999")
    assert code == 3


def test_garbage_file_exits_non_zero_without_traceback(env: Path) -> None:
    bad = env / "orders.csv"
    bad.write_bytes(b"\x00\x01\x02garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "siyu", "import", str(bad), "--brand", "acme"],
        capture_output=True,
        text=True,
        env={"SIYU_HOME": str(env / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert "binary" in proc.stderr and "Traceback" not in proc.stderr
    assert not (env / "home" / "lake" / "orders").exists()


def test_help_explains_with_examples(env: Path) -> None:
    for command in (["import"], ["resolve"], ["demo"], ["customer", "show"], ["quarantine", "list"]):
        code, out = run(*command, "--help")
        assert code == 0 and "Example" in out, command


def test_resolve_waits_for_the_loader_lock(env: Path) -> None:
    """`siyu resolve` and a worker's loader both write the identity map: the CLI takes the loader
    lock, and says so when a loader holds it rather than racing it."""
    from siyu.bootstrap import bootstrap
    from siyu.ingest.loader import _exclusive

    folder = _exports(env / "exports")
    assert run("import", str(folder), "--brand", "acme", "--json")[0] == 0
    with _exclusive(bootstrap()) as mine:  # a loader at work
        assert mine
        result = runner.invoke(app, ["resolve", "--json", "--lock-wait", "0.5"])
        assert result.exit_code == 4, result.output
        assert "another loader" in result.output
    code, out = run("resolve", "--json", "--lock-wait", "0.5")  # the loader is done
    assert code == 0, out
    assert json.loads(out)["customers"] == 3
