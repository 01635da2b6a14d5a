"""`siyu loyalty …` end to end on the group of tests/fixtures/loyalty_brand.py (SQLite workspace):
apply → sync → member show → points history → adjust (idempotent with --key) → expire --at →
tiers evaluate → report settlement, with the numbers worked out in the fixture's docstring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fixtures.loyalty_brand import FIRST_SYNC, share, write_group, write_program
from siyu.bootstrap import bootstrap
from siyu.cli.app import app as siyu_cli
from siyu.config import Settings
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    return tmp_path


def run(*args: str) -> Any:
    result = runner.invoke(siyu_cli, ["loyalty", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_loyalty_cli_end_to_end(tmp_path: Path) -> None:
    workspace = bootstrap(Settings())
    import_path(workspace, write_group(tmp_path / "data"))
    run_resolve(workspace)
    share(workspace, "lb", "p2", granted=True)  # P shares across brands (tests/fixtures/loyalty_brand.py)
    workspace.store.engine.dispose()
    program = write_program(tmp_path / "lg_club.yaml")

    assert run("apply", str(program)) == {"program": "lg_club", "version": 1, "status": "created"}
    assert run("apply", str(program))["status"] == "unchanged"

    # the same first sync as tests/integration/test_loyalty_sync.py::test_first_sync_counts
    assert run("sync", "--program", "lg_club", "--at", "2026-04-15T00:00:00Z") == FIRST_SYNC
    # S1 used 500 points with a balance of 0: posted (earned its points), the redemption is listed
    problems = run("problems", "--program", "lg_club")
    assert [(p["key"], p["problem"].split(":")[0]) for p in problems] == [("order:lb:crm:S1", "insufficient_points")]

    member = run("member", "show", "--program", "lg_club", "--member-no", "LA003")
    # R: 1,600 + 50 + 138 + 50 + 200 − 200 = 1,838 points; growth 1,150 → silver since the sync,
    # protected until 2026-04-15 + 3 months
    assert (member["tier"], member["tier_name_zh"], member["growth"], member["points"]["balance"]) == (
        "silver",
        "银卡",
        1_150,
        1_838,
    )
    assert member["tier_protected_until"] == "2026-07-15T00:00:00+00:00"
    assert member["tier_history"][0]["reason"] == "upgrade: growth 成长值 1150 ≥ silver 1000"
    # open lots first-to-expire (all expire 2028-01-01 00:00 local; ties in earning order):
    # R1 1,600, R4 50, R2 138, R3 50 (R5's lot was emptied by its refund)
    assert [lot["points"] for lot in member["points"]["lots"]] == [1_600, 50, 138, 50]
    # the shared member is found from either brand's customer
    p = run("member", "show", "--program", "lg_club", "--member-no", "LA001")
    assert sorted(c["brand"] for c in p["customers"]) == ["la", "lb"] and p["points"]["balance"] == 425

    history = run("points", "history", "--program", "lg_club", "--member-no", "LA003", "--limit", "2")
    assert [(h["kind"], h["points"], h["balance_after"], h["order_id"]) for h in history] == [
        ("reverse", -200, 1_838, "R5"),  # newest first
        ("earn", 200, 2_038, "R5"),
    ]
    assert history[0]["reverses_id"] == history[1]["id"]

    adjust = ("points", "adjust", "--program", "lg_club", "--member-no", "LA003", "--points", "-38")
    first = run(*adjust, "--reason", "对账 correction", "--key", "adj-1")
    assert (first["points"], first["balance"], first["replayed"]) == (-38, 1_800, False)
    again = run(*adjust, "--reason", "对账 correction", "--key", "adj-1")
    assert (again["txn_id"], again["balance"], again["replayed"]) == (first["txn_id"], 1_800, True)

    # everything was earned in 2026 → expires at 2028-01-01 00:00 local = 2027-12-31T16:00Z
    assert run("points", "expire", "--program", "lg_club", "--at", "2027-12-31T15:59:59Z") == {
        "accounts": 0,
        "points": 0,
        "lots": 0,
    }
    # P 425 (lots 275 + 150), Q 600 (480 + 120), R 1,800 (1,562 + 50 + 138 + 50: the −38 came
    # from R1's lot), S 100 → 4 accounts, 2,925 points, 9 lots
    assert run("points", "expire", "--program", "lg_club", "--at", "2027-12-31T16:00:00Z") == {
        "accounts": 4,
        "points": 2_925,
        "lots": 9,
    }
    assert run("points", "expire", "--program", "lg_club", "--at", "2027-12-31T16:00:00Z")["points"] == 0

    # 2028-01-01: every order has left the 12-month window → growth 0; Q (gold, protected until
    # 2026-07-15) and R (silver, until 2026-07-15) go down to regular; P and S already are
    assert run("tiers", "evaluate", "--program", "lg_club", "--at", "2028-01-01T00:00:00Z") == {
        "evaluated": 4,
        "upgraded": 0,
        "downgraded": 2,
    }
    assert run("member", "show", "--program", "lg_club", "--member-no", "LA003")["tier_history"][0]["reason"] == (
        "periodic downgrade: growth 成长值 0 < silver 1000"
    )

    # B1 (lb, 2026-04-01 10:00 local) spent 300 la points, 75 restored: 225 × 0.5 fen = 112.5 → 113
    line = {"earned_brand": "la", "spent_brand": "lb", "points": 225, "value_fen": 113}
    assert run("report", "settlement", "--program", "lg_club") == [line]
    assert run("report", "settlement", "--program", "lg_club", "--from", "2026-04-01", "--to", "2026-04-01") == [line]
    assert run("report", "settlement", "--program", "lg_club", "--from", "2026-04-02") == []
    assert run("report", "settlement", "--program", "lg_club", "--to", "2026-03-31") == []


def test_cli_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nprogram: x\nlevel: brand\nbrands: [a]\ntimezone: Mars/Base\n"
        "tiers: {levels: [{code: r, threshold: 0}]}\n"
    )
    result = runner.invoke(siyu_cli, ["loyalty", "apply", str(bad)])
    assert result.exit_code == 2 and "bad.yaml:5" in result.output and "unknown timezone" in result.output
    result = runner.invoke(siyu_cli, ["loyalty", "member", "show", "--program", "nope", "--member-no", "1"])
    assert result.exit_code == 3 and "nope" in result.output
