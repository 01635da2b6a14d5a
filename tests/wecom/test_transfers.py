"""Customer inheritance (客户继承): one transfer succeeds and rebinds, one is refused; on-job and resigned."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from siyu.bootstrap import bootstrap
from siyu.cli.wecom import transfer_command, transfer_status_command
from siyu.fakes.wecom import FakeWeCom
from siyu.ingest.inbox import open_payload
from siyu.store.models import InboxMessage
from siyu.wecom.models import WecomRelation
from wecom.conftest import configure

runner = CliRunner()
guides = typer.Typer()  # how `siyu guides` mounts them
guides.command("transfer")(transfer_command)
guides.command("transfer-status")(transfer_status_command)
ADDED = datetime(2024, 11, 1, 8, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_served: tuple[FakeWeCom, str]) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    monkeypatch.setenv("SIYU_WECOM_API_BASE", fake_served[1])
    app = bootstrap()
    configure(app)
    with app.store.unit_of_work() as s:
        for ext in ("wmOK", "wmNO", "wmLEFT"):
            staff = "lisi" if ext == "wmLEFT" else "zhangsan"
            s.add(WecomRelation(brand="wc", kind="friend", external_userid=ext, counterpart=staff, started_at=ADDED))
    app.store.engine.dispose()
    return tmp_path


def test_one_succeeds_and_rebinds_one_is_refused(env: Path, fake: FakeWeCom) -> None:
    started = runner.invoke(guides, ["transfer", "--brand", "wc", "--from", "zhangsan", "--to", "wangwu", "--json"])
    assert started.exit_code == 0, started.output
    assert json.loads(started.stdout) == {"requested": 2, "failed": {}}
    waiting = json.loads(runner.invoke(guides, ["transfer-status", "--brand", "wc", "--json"]).stdout)
    assert waiting["counts"] == {"waiting": 2}

    fake.clock = lambda: 1_733_212_800.0  # WeCom's takeover time: 2024-12-03T08:00:00Z
    fake.finish_transfer("wmOK", "succeeded")
    fake.finish_transfer("wmNO", "refused")
    done = json.loads(runner.invoke(guides, ["transfer-status", "--brand", "wc", "--json"]).stdout)
    assert done["counts"] == {"succeeded": 1, "refused": 1}
    by_customer = {t["external_userid"]: t for t in done["transfers"]}
    assert by_customer["wmOK"]["takeover_at"] == "2024-12-03T08:00:00+00:00"

    app = bootstrap()
    with app.store.unit_of_work() as s:
        history = sorted((r.external_userid, r.counterpart, r.ended_by) for r in s.scalars(select(WecomRelation)))
        stored = s.scalars(select(InboxMessage.payload).where(InboxMessage.kind == "relations"))
        inbox = [json.loads(open_payload(app.settings.pii_keyring, p)) for p in stored]  # sealed at rest
    assert history == [
        ("wmLEFT", "lisi", None),
        ("wmNO", "zhangsan", None),
        ("wmOK", "wangwu", None),
        ("wmOK", "zhangsan", "transfer"),
    ]
    # the rebinding, effective at the takeover: the old relation ends and the new one starts at the same instant
    assert sorted((r["staff_code"], r["started_at"], r["ended_at"], r["ended_by"]) for r in inbox) == [
        ("wangwu", "2024-12-03T08:00:00+00:00", None, None),
        ("zhangsan", ADDED.isoformat(), "2024-12-03T08:00:00+00:00", "transfer"),
    ]
    again = json.loads(runner.invoke(guides, ["transfer-status", "--brand", "wc", "--json"]).stdout)
    assert again["counts"] == {"succeeded": 1, "refused": 1}  # polling again changes nothing
    assert fake.calls.count("transfer_customer") == 1 and "resigned/transfer_customer" not in fake.calls


def test_resigned_staff_uses_the_resigned_api(env: Path, fake: FakeWeCom) -> None:
    result = runner.invoke(
        guides, ["transfer", "--brand", "wc", "--from", "lisi", "--to", "wangwu", "--resigned", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert fake.calls == ["resigned/transfer_customer"]
    fake.finish_transfer("wmLEFT", "limit_exceeded")
    status = json.loads(runner.invoke(guides, ["transfer-status", "--brand", "wc", "--json"]).stdout)
    assert status["counts"] == {"limit_exceeded": 1} and fake.calls[-1] == "resigned/transfer_result"
    same = runner.invoke(guides, ["transfer", "--brand", "wc", "--from", "lisi", "--to", "lisi"])
    assert same.exit_code == 2
