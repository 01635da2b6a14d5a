"""`siyu wecom configure|show|welcome set` and `siyu qrcodes create|list` through the CLI, against the fake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures import wecom_wire as wire
from siyu.cli.app import app
from siyu.fakes.wecom import FakeWeCom

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_served: tuple[FakeWeCom, str]) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    monkeypatch.setenv("SIYU_WECOM_API_BASE", fake_served[1])
    monkeypatch.setenv("SIYU_PII_KEY", "a-test-pii-key")
    return tmp_path


def configure() -> None:
    args = ["--brand", "wc", "--corp-id", wire.CORP_ID, "--token", wire.TOKEN, "--aes-key", wire.AES_KEY]
    result = runner.invoke(app, ["wecom", "configure", *args, "--secret", wire.SECRET])
    assert result.exit_code == 0, result.output


def test_configure_stores_secrets_sealed_and_show_masks(env: Path) -> None:
    configure()
    shown = runner.invoke(app, ["wecom", "show", "--brand", "wc", "--json"])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert view["corp_id"] == wire.CORP_ID and view["secret"].endswith("(19 chars)")
    store = b"".join(f.read_bytes() for f in (env / "home").glob("siyu.db*"))
    for secret in (wire.SECRET, wire.TOKEN, wire.AES_KEY):
        assert secret not in shown.stdout and secret.encode() not in store
    bad = runner.invoke(
        app,
        [
            "wecom",
            "configure",
            "--brand",
            "wc",
            "--corp-id",
            "x",
            "--token",
            "t",
            "--aes-key",
            "short",
            "--secret",
            "s",
        ],
    )
    assert bad.exit_code == 2 and "43" in bad.output


def test_qrcode_create_json_poster_and_list(env: Path, fake: FakeWeCom) -> None:
    configure()
    args = [
        "qrcodes",
        "create",
        "--brand",
        "wc",
        "--state",
        "sh01_counter",
        "--staff",
        "zhangsan,lisi",
        "--store",
        "SH01",
    ]
    created = runner.invoke(app, [*args, "--channel", "counter", "--campaign", "spring", "--exclusive", "--json"])
    assert created.exit_code == 0, created.output
    result = json.loads(created.stdout)
    assert {"state", "config_id", "qr_code", "png"} <= set(result) and result["state"] == "sh01_counter"
    assert Path(result["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [way] = fake.contact_ways.values()
    assert (way["type"], way["scene"], way["state"], way["user"]) == (2, 2, "sh01_counter", ["zhangsan", "lisi"])
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 2 and "already exists" in again.output
    too_long = runner.invoke(app, ["qrcodes", "create", "--brand", "wc", "--state", "s" * 31, "--staff", "zhangsan"])
    assert too_long.exit_code == 2 and "30" in too_long.output
    assert len(fake.contact_ways) == 1  # refused before WeCom was called
    listed = json.loads(runner.invoke(app, ["qrcodes", "list", "--brand", "wc", "--json"]).stdout)
    assert [(c["state"], c["staff"], c["store_code"], c["exclusive"]) for c in listed] == [
        ("sh01_counter", ["zhangsan", "lisi"], "SH01", True)
    ]
    welcome = runner.invoke(
        app, ["wecom", "welcome", "set", "--brand", "wc", "--state", "sh01_counter", "--text", "欢迎 {name}"]
    )
    assert welcome.exit_code == 0, welcome.output
