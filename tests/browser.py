"""Headless Chromium (Debian's /usr/bin/chromium, installed by scripts/chromium.sh) for the tests
that check what a real browser renders: the HTML report's charts, the API's /docs page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        # Not a skip: an unchecked browser rendering must not look like a pass.
        pytest.fail("chromium is not installed: run `bash scripts/chromium.sh`")
    return found


def browser(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile; `--virtual-time-budget` lets scripts finish."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result
