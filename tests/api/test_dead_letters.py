"""A message the loader cannot load is dead-lettered, over real HTTP and the real CLI. The poison
order of the defect report (a total of 10²⁰ yuan, beyond int64 fen) used to stop every loader batch
of every brand while /ready said ready; the door now refuses it (400), and a message that still
cannot be loaded (here: one recorded before the door checks existed, that is not even JSON) is set
aside with a reason that quotes no value while the good messages of both brands load in the same
cycle; an operator can see, retry and drop it; /ready and /metrics report it."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from api.conftest import KeyMaker, bearer
from siyu.bootstrap import App
from siyu.cli.app import app as cli
from siyu.core.clock import utc_now
from siyu.ingest import inbox
from siyu.ingest.loader import Loader
from siyu.ingest.views import latest
from siyu.store.models import InboxMessage

runner = CliRunner()
POISON = {
    "userId": "u",
    "event": "Order Completed",
    "messageId": "p1",
    "properties": {"order_id": "X1", "total": 100000000000000000000},
}


@pytest.fixture
def cli_env(home: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI opens the same workspace and store as the server under test."""
    monkeypatch.setenv("SIYU_HOME", str(home))
    monkeypatch.setenv("SIYU_DATABASE_URL", store_url)
    monkeypatch.setenv("SIYU_ENV", "dev")  # `siyu worker` refuses the development PII key otherwise


def _siyu(*args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _dead_letters() -> list[dict[str, object]]:
    return json.loads(_siyu("inbox", "dead-letters", "--json"))  # type: ignore[no-any-return]


def _orders(app: App) -> list[tuple[object, ...]]:
    table = latest(app.engine, "orders")
    assert table is not None
    rows = app.engine.to_arrow(table.select("brand", "order_id", "amount_fen")).to_pylist()
    return sorted(tuple(r.values()) for r in rows)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


@pytest.mark.usefixtures("cli_env")
def test_poison_message_is_dead_lettered_and_every_brand_keeps_loading(
    app: App, client: httpx.Client, make_key: KeyMaker
) -> None:
    acme, beta = make_key("acme", "ingest", source="app"), make_key("beta", "ingest", source="app")
    refused = client.post("/v1/track", json=POISON, headers=bearer(acme))
    assert refused.status_code == 400 and "total" in refused.text  # refused at the door, naming the field
    # a message accepted before the door checked values, that the loader cannot read
    inbox.record(app.store, "acme", "app", "segment", [inbox.Message("p1", '{"type": "track", "total": 1e400')],
                 utc_now())  # fmt: skip
    good_acme = [
        {"type": "identify", "userId": "a1", "messageId": "a-1", "traits": {"phone": "13800000001"}},
        {"type": "track", "userId": "a1", "event": "Order Completed", "messageId": "a-2",
         "properties": {"order_id": "A1", "total": 12.5}},
    ]  # fmt: skip
    good_beta = [
        {"type": "track", "userId": "b1", "event": "Order Completed", "messageId": "b-1",
         "properties": {"order_id": "B1", "total": 99}},
    ]  # fmt: skip
    for key, batch in ((acme, good_acme), (beta, good_beta)):
        assert client.post("/v1/batch", json={"batch": batch}, headers=bearer(key)).status_code == 200
    rows = [{"source": "crm", "source_customer_id": "c1", "name": "Chen"}]  # another kind: a canonical row
    assert client.post("/api/v1/ingest/customers", json=rows, headers=bearer(beta)).status_code == 200
    assert client.get("/ready").json()["inbox_pending"] == 5

    # One loader cycle: the four good messages load, the poison one is dead-lettered.
    assert json.loads(_siyu("worker", "--once", "--json")) == {"messages": 4}
    assert _orders(app) == [("acme", "A1", 1250), ("beta", "B1", 9900)]
    [dead] = _dead_letters()
    assert {k: dead[k] for k in ("brand", "source", "kind", "message_id", "attempts")} == {
        "brand": "acme", "source": "app", "kind": "segment", "message_id": "p1", "attempts": 1,
    }  # fmt: skip
    reason = str(dead["reason"])
    assert reason.startswith("ConversionException in segment mapping: ") and "JSON" in reason
    assert not re.search(r"[0-9]{3,}", reason)  # the value (fen or yuan) is not quoted
    listing = _siyu("inbox", "dead-letters")
    assert "X1" not in listing and "X1" not in json.dumps(dead)  # no payload content

    ready = client.get("/ready")
    assert ready.status_code == 200  # dead letters do not hold the queue up
    assert {k: ready.json()[k] for k in ("inbox_pending", "inbox_dead_letters", "inbox_oldest_seconds")} == {
        "inbox_pending": 0, "inbox_dead_letters": 1, "inbox_oldest_seconds": 0,
    }  # fmt: skip
    metrics = client.get("/metrics").text
    assert _metric(metrics, "siyu_inbox_dead_letters") == 1
    assert _metric(metrics, "siyu_inbox_pending") == 0
    assert _metric(metrics, "siyu_inbox_oldest_pending_seconds") == 0

    # Retry: back in the queue; the loader takes it next cycle and, still bad, dead-letters it again.
    poison_id = str(dead["id"])
    assert "queued again" in _siyu("inbox", "retry", poison_id)
    assert _dead_letters() == []
    ready_body = client.get("/ready").json()
    assert (ready_body["inbox_pending"], ready_body["inbox_dead_letters"]) == (1, 0)
    assert _metric(client.get("/metrics").text, "siyu_inbox_oldest_pending_seconds") > 0
    assert json.loads(_siyu("worker", "--once", "--json")) == {"messages": 0}
    [again] = _dead_letters()
    assert (again["id"], again["attempts"], again["reason"]) == (dead["id"], 2, reason)

    # Drop: out of the queue for good, recorded with who dropped it.
    assert "dropped" in _siyu("inbox", "drop", poison_id)
    assert _dead_letters() == []
    ready_body = client.get("/ready").json()
    assert (ready_body["inbox_pending"], ready_body["inbox_dead_letters"]) == (0, 0)
    assert _metric(client.get("/metrics").text, "siyu_inbox_dead_letters") == 0
    with app.store.unit_of_work() as s:
        row = s.get(InboxMessage, int(poison_id))
        assert row is not None and row.dropped_at is not None and str(row.dropped_by).startswith("cli:")
        assert row.loaded_at is None
    assert Loader(app).drain() == 0
    assert _orders(app) == [("acme", "A1", 1250), ("beta", "B1", 9900)]


@pytest.mark.usefixtures("cli_env")
def test_inbox_commands_take_exact_ids_only(app: App) -> None:
    now = utc_now()
    inbox.record(app.store, "acme", "app", "segment", [inbox.Message("p1", "{not json")], now)
    inbox.record(app.store, "acme", "app", "segment", [inbox.Message("ok", '{"type":"identify","userId":"u"}')], now)
    assert Loader(app).drain() == 1
    [dead] = _dead_letters()
    assert str(dead["reason"]).startswith("ConversionException in segment mapping: Conversion Error: Malformed JSON")
    assert "not json" not in str(dead["reason"])
    loaded = int(str(dead["id"])) + 1
    for command in ("retry", "drop"):
        for bad, says in (
            ("999999", "no inbox message 999999"),
            (f"{dead['id']}x", "not an inbox message id"),
            (f" {dead['id']}", "not an inbox message id"),
            (str(loaded), "not a dead letter: loaded"),
        ):
            out = _siyu("inbox", command, bad, code=2)
            assert says in out and len(out.strip().splitlines()) == 1, out
    _siyu("inbox", "drop", str(dead["id"]))
    assert "was dropped by cli:" in _siyu("inbox", "retry", str(dead["id"]), code=2)
    assert "no dead letters" in _siyu("inbox", "dead-letters")


def test_ready_is_503_when_the_oldest_pending_message_waits_too_long(app: App, client: httpx.Client) -> None:
    ten_minutes_ago = utc_now() - timedelta(minutes=10)  # no loader runs in this server
    inbox.record(app.store, "acme", "app", "segment", [inbox.Message("m1", '{"type":"identify","userId":"u"}')],
                 ten_minutes_ago)  # fmt: skip
    r = client.get("/ready")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "inbox_stalled" and "SIYU_READY_MAX_PENDING_AGE = 300 s" in r.json()["detail"]
    assert _metric(client.get("/metrics").text, "siyu_inbox_oldest_pending_seconds") >= 600
    assert Loader(app).drain() == 1
    assert client.get("/ready").status_code == 200
