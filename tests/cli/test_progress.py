"""Long commands report progress in one place (siyu.cli.common.progress): a rich bar on a terminal,
and where no bar can be drawn (CI logs, `| tee`, a scheduler) a line per step with its elapsed time,
instead of minutes of silence."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from siyu.cli import common

STEP = r"\[ *\d+\.\ds\] "


def _capture(monkeypatch: pytest.MonkeyPatch, terminal: bool) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=out, force_terminal=terminal, width=100))
    return out


def test_without_a_terminal_each_step_prints_its_start_and_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _capture(monkeypatch, terminal=False)
    monkeypatch.setattr(common.StepLines, "NOTE_EVERY", 0.0)  # every status line, for the test
    with common.progress() as bar:
        files = bar.add_task("import 导入", total=3)
        for _ in range(3):
            bar.advance(files)
        sync = bar.add_task("sync 同步", total=1)
        bar.update(sync, description="sync 同步: enrolled 10/20")
        bar.update(sync, description="sync 同步", completed=1)
        bar.add_task("model 模型", total=2)  # cut short: reported when the display stops
    lines = out.getvalue().splitlines()
    assert [re.sub(STEP, "", line) for line in lines] == [
        "import 导入 …",
        re.sub(STEP, "", lines[1]),
        "sync 同步 …",
        "sync 同步: enrolled 10/20",
        re.sub(STEP, "", lines[4]),
        "model 模型 …",
        re.sub(STEP, "", lines[6]),
    ]
    assert all(re.match(STEP, line) for line in lines)
    assert re.fullmatch(STEP + r"import 导入 done 完成 in \d+\.\ds", lines[1])
    assert re.fullmatch(STEP + r"sync 同步 done 完成 in \d+\.\ds", lines[4])
    assert re.fullmatch(STEP + r"model 模型 ended 结束 after \d+\.\ds", lines[6])


def test_on_a_terminal_a_bar_and_no_step_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _capture(monkeypatch, terminal=True)
    with common.progress() as bar:
        assert not isinstance(bar, common.StepLines)
        bar.advance(bar.add_task("import 导入", total=1))
    assert "import 导入" in out.getvalue() and "done 完成" not in out.getvalue()


def test_disabled_progress_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _capture(monkeypatch, terminal=False)
    with common.progress(enabled=False) as bar:  # --json
        bar.advance(bar.add_task("import 导入", total=1))
    assert out.getvalue() == ""


@pytest.mark.slow
def test_demo_piped_prints_a_line_per_step(tmp_path: Path) -> None:
    """`siyu demo | tee log`: stderr is a pipe, and every step shows up with its time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")} | {"SIYU_HOME": str(tmp_path / "h")}
    done = subprocess.run(
        [sys.executable, "-m", "siyu", "demo", "--customers", "100"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    finished = re.findall(STEP + r"(.+) done 完成 in \d+\.\ds", done.stderr)
    assert finished == ["generate 生成", "import 导入", "One-ID 身份识别", "CLV model 预测模型", "loyalty 会员中台",
                        "guides · WeCom 导购 · 企微", "report 报告", "journeys 营销旅程"], done.stderr  # fmt: skip
    # the month of WeCom callbacks went through the real receiver (rich wraps lines at 80 columns)
    assert re.search(r"7 channel codes 渠道活码, \d{2,} WeCom callbacks", done.stdout.replace("\n", " ")), done.stdout
    _journeys_ran(tmp_path / "h", done.stdout)


def _journeys_ran(home: Path, stdout: str) -> None:
    """Two shipped journeys ran over simulated time: each enrolled and sent, what the SMTP server and
    the SMS gateway received is what the reports count as sent, and no suppressed send lacks a reason."""
    result = json.loads((home / "demo" / "journeys" / "reports.json").read_text(encoding="utf-8"))
    reports = result["reports"]
    assert set(reports) == {"onboarding", "review_request"}
    sent = {channel: 0 for channel in ("sms", "email")}
    for code, report in reports.items():
        assert report["enrolled"] > 0 and report["active"] == 0, (code, report)  # every enrolment finished
        assert sum(s["sent"] for s in report["sends"].values()) > 0, (code, report["sends"])
        for channel, counts in report["sends"].items():
            sent[channel] += counts["sent"]
    assert reports["onboarding"]["goal"]["holdout_size"] > 0
    assert result["received"] == sent, result
    assert sent["sms"] > 0 and sent["email"] > 0
    suppressed = sum(c["suppressed"] for r in reports.values() for c in r["sends"].values())
    assert suppressed == sum(result["suppressed_reasons"].values()) > 0
    with sqlite3.connect(home / "siyu.db") as db:
        silent = db.execute(
            "SELECT count(*) FROM outbound_messages WHERE status = 'suppressed' AND coalesce(reason, '') = ''"
        ).fetchone()[0]
    assert silent == 0
    flat = " ".join(stdout.split())  # rich wraps lines at 80 columns
    assert "journeys 营销旅程: 2 shipped journeys" in flat and "onboarding: enrolled 进入" in flat, stdout
