"""`siyu serve` and `siyu worker` refuse the published development PII key unless SIYU_ENV=dev."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from api.conftest import free_port
from siyu.cli.app import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A workspace with no SIYU_PII_KEY and no SIYU_ENV, as on a fresh server."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    for name in [k for k in os.environ if k.startswith("SIYU_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return clean | {"SIYU_HOME": str(tmp_path / "home")}


def test_worker_once_refuses_the_default_pii_key(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["worker", "--once"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "default_pii_key" in lines[0] and "SIYU_PII_KEY" in lines[0]
    assert "secrets.token_hex(32)" in lines[0] and "SIYU_ENV=dev" in lines[0]


def test_worker_runs_with_a_key_or_in_dev(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_ENV", "dev")
    assert runner.invoke(app, ["worker", "--once", "--json"]).exit_code == 0
    monkeypatch.delenv("SIYU_ENV")
    monkeypatch.setenv("SIYU_PII_KEY", "0f" * 32)
    assert runner.invoke(app, ["worker", "--once", "--json"]).exit_code == 0


@pytest.mark.parametrize("setting", [{"SIYU_PII_KEY": "0f" * 32}, {"SIYU_ENV": "dev"}])
def test_serve_starts_with_a_key_or_in_dev(env: dict[str, str], tmp_path: Path, setting: dict[str, str]) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "siyu", "serve", "--port", str(port), "--no-loader", "--log-level", "warning"]
    server = subprocess.Popen(cmd, env=env | setting, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not become healthy")
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("command", [["serve", "--port", "free"], ["worker"]])
def test_servers_refuse_without_a_key_as_processes(env: dict[str, str], tmp_path: Path, command: list[str]) -> None:
    """The real processes: they exit at once with one line (they used to start and run on)."""
    cmd = [sys.executable, "-m", "siyu", *(str(free_port()) if a == "free" else a for a in command)]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "SIYU_PII_KEY" in done.stderr, done.stderr
