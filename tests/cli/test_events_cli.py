"""`siyu events status`: the backlog a handler has not passed yet, and what it handled."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from typer.testing import CliRunner

from siyu.bootstrap import bootstrap
from siyu.cli.app import app as cli
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.events.catalogue import EventsLanded, OrdersLanded
from siyu.events.dispatch import Handler, run_handler

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _status(env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, ["events", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_status_shows_backlog_then_what_a_handler_handled(tmp_path: Path) -> None:
    env = {"SIYU_HOME": str(tmp_path)}
    app = bootstrap(Settings(home=tmp_path))
    with app.store.begin(Actor.system("test"), now=AT) as uow:
        uow.emit(OrdersLanded.of("b", "j1", ["o1"], 1))
        uow.emit(EventsLanded.of("b", "j2", ["e1"], 1))
        uow.emit(OrdersLanded.of("b", "j3", ["o2"], 1))
    before = _status(env)
    assert before["outbox_events"] == 3
    # a handler that never ran owes the whole outbox
    assert {h["handler"]: (h["handled"], h["backlog"]) for h in before["handlers"]}["loyalty_posting"] == (0, 3)

    got: list[object] = []
    assert run_handler(app.store, Handler("probe", frozenset({"OrdersLanded"}), got.extend), clock=lambda: AT) == 2
    after = {h["handler"]: h for h in _status(env)["handlers"]}
    assert (after["probe"]["handled"], after["probe"]["backlog"]) == (2, 0)  # passed all 3, handled its 2
    assert after["probe"]["leased_by"] is None  # released after the run
    app.store.engine.dispose()
