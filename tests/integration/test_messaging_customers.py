"""Messaging over a real brand in the lake (the hand-made `au`, tests/fixtures/audience_brand.py):
the consent ledger fed by lake events, templates over the profile, addresses resolved through
One-ID, mini-program subscriptions consumed one per send, and the CLI (consent, policy, list)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from fixtures.audience_brand import ids_by_letter, write_brand
from fixtures.counting_engine import CountingEngine
from fixtures.messaging import wechat_api
from siyu.bootstrap import App, bootstrap
from siyu.cli.app import app as cli
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.customers.view import customer_view
from siyu.events.catalogue import ConsentChanged
from siyu.events.dispatch import run_handler
from siyu.events.outbox import after
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.messaging.address import CustomerFacts, customer_facts, customer_facts_many
from siyu.messaging.consent import blocked_by, consent_state
from siyu.messaging.consent_events import consent_ledger, land
from siyu.messaging.dispatch import Dispatcher
from siyu.messaging.enqueue import SendRequest, do_enqueue
from siyu.messaging.ledger_models import ConsentRecord, MiniProgramSubscription
from siyu.messaging.listing import list_messages
from siyu.messaging.settings import ChannelSettings
from siyu.messaging.templates import TemplateRenderError, render_content, render_for_customer

runner = CliRunner()
SUBSCRIBE = 'au,crm,s01,mini_program,subscribe_message,a1,2024-06-20T10:00:00+08:00,"{""template_id"": ""SUB1""}"\n'


@pytest.fixture(scope="module")
def au(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("au")
    brand = write_brand(folder / "au")
    with (brand / "events.csv").open("a", encoding="utf-8") as f:
        f.write(SUBSCRIBE)
    home = folder / "home"
    app = bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}"))
    import_path(app, brand)
    run_resolve(app)
    yield app, ids_by_letter(app)
    app.store.engine.dispose()


def test_lake_consent_events_fill_the_ledger_once(au: tuple[App, dict[str, str]]) -> None:
    app, ids = au
    # the handler the loader and `siyu worker` run, over the import's EventsLanded and One-ID's event
    assert run_handler(app.store, consent_ledger(app), clock=app.clock) >= 1
    with app.store.unit_of_work() as s:
        recorded = s.scalar(select(func.count()).select_from(ConsentRecord))
        subscriptions = s.scalar(select(func.count()).select_from(MiniProgramSubscription))
    # a1: sms withdrawn then granted; e1: sms unsubscribe + e-mail grant; g1: e-mail grant;
    # h1: unsubscribe from everything → the three channel purposes; one subscription (a1)
    assert (recorded, subscriptions) == (2 + 2 + 1 + 3, 1)
    assert land(app, {"au"}) == 0  # a re-delivered batch adds nothing
    with app.store.unit_of_work() as s:
        assert blocked_by(s, "au", ids["A"], "sms", "marketing") is None  # the latest (a grant) wins
        assert blocked_by(s, "au", ids["E"], "sms", "marketing") == "consent:marketing_sms withdrawn (event)"
        assert blocked_by(s, "au", ids["E"], "sms", "transactional") is None
        assert blocked_by(s, "au", ids["H"], "wecom", "transactional") == "consent:wecom withdrawn (event)"
        a = consent_state(s, "au", ids["A"])
        assert [(h["purpose"], h["granted"]) for h in a["history"]] == [
            ("marketing_sms", True),
            ("marketing_sms", False),
        ]
        assert a["history"][0]["evidence"]["event_id"] == "c02"
        emitted = [e.event for e in after(s, 0, 0, 100) if isinstance(e.event, ConsentChanged)]
    sms = [e for e in emitted if e.purpose == "marketing_sms"]
    assert len(sms) == 1 and set(sms[0].customer_ids) == {ids["A"], ids["E"], ids["H"]}  # one per purpose


def test_templates_and_addresses_from_the_profile(au: tuple[App, dict[str, str]]) -> None:
    app, ids = au
    content = {"template_code": "SMS_1", "params": {"name": "{{ customer.name }}"},
               "text": "{{ customer.name }}您好，{{ customer.city }}门店{{ store }}欢迎您"}  # fmt: skip
    out = render_for_customer(app, "au", ids["A"], "sms", content, {"store": "S01"})
    assert out["text"] == "张三您好，上海门店S01欢迎您拒收请回复R"
    assert (out["length"], out["segments"], out["encoding"]) == (len(out["text"]), 1, "ucs2")
    assert out["params"] == {"name": "张三"}
    nobody = CustomerFacts({"name": "李"}, None)
    with pytest.raises(TemplateRenderError, match="custmer"):  # a misspelt variable is an error, not ""
        render_content(nobody, "sms", {"text": "{{ custmer.name }}"}, {})
    with pytest.raises(TemplateRenderError):  # the sandbox refuses Python internals
        render_content(nobody, "email", {"text": "{{ ''.__class__.__mro__ }}"}, {})
    with app.store.begin(Actor.system("test")) as uow:
        a = do_enqueue(uow, SendRequest("au", ids["A"], "sms", "transactional", "t:a", content, {"store": "S01"}),
                       app=app)  # fmt: skip
        g = do_enqueue(uow, SendRequest("au", ids["G"], "sms", "transactional", "t:g", content, {"store": "x"}),
                       app=app)  # fmt: skip
        bad = do_enqueue(uow, SendRequest("au", ids["A"], "sms", "transactional", "t:bad", {"text": "{{ x.y }}"}),
                         app=app)  # fmt: skip
    assert a.status == "queued" and (g.status, g.reason) == ("suppressed", "no_address:sms")
    assert bad.status == "suppressed" and bad.reason.startswith("template_error")  # type: ignore[union-attr]
    with app.store.unit_of_work() as s:
        from siyu.messaging.models import OutboundMessage
        from siyu.messaging.sealing import open_payload

        payload = open_payload(app.settings.pii_keyring, s.get(OutboundMessage, a.message_id).payload)  # type: ignore[union-attr]
    assert payload["phone"].endswith("13900000001") and payload["text"].startswith("张三您好")


def test_the_facts_of_a_batch_are_each_customers_own_read_together(au: tuple[App, dict[str, str]]) -> None:
    """The dispatcher reads a claimed batch's customer facts at once: the same facts as one by one,
    in the same 3 lake queries whatever the batch's size (one by one, 3 per customer)."""
    app, ids = au
    who = [ids[k] for k in sorted(ids)] + ["no-such-customer"]
    counting = CountingEngine(app.engine)
    together = customer_facts_many(dataclasses.replace(app, engine=counting), "au", who)
    assert counting.queries == 3
    assert together == {c: customer_facts(app, "au", c) for c in who}
    assert together[ids["A"]].addresses["phone"].endswith("13900000001")
    assert together[ids["A"]].profile["name"] == "张三"
    assert together["no-such-customer"].addresses == {} and together["no-such-customer"].profile["name"] is None


def test_a_subscribe_message_needs_an_unused_subscription(au: tuple[App, dict[str, str]], tmp_path: Path) -> None:
    app, ids = au
    land(app, {"au"})
    with wechat_api() as (fake, url):
        fake.subscribe("oA1", "SUB1")
        fake.subscribe("oA1", "SUB1")  # WeChat would allow two: ours holds one, so only one goes
        settings = ChannelSettings(wechat_api_base=url, wechat_mp_appid="wx-mp", wechat_mp_secret="mp-secret")
        mp_app = bootstrap(app.settings.model_copy(update={"channels": settings}), store=app.store, lake=app.lake,
                           engine=app.engine)  # fmt: skip
        content = {"openid": "oA1", "template_id": "SUB1", "data": {"thing1": "{{ customer.name }}的积分提醒"}}
        with app.store.begin(Actor.system("test")) as uow:
            for i in (1, 2):
                do_enqueue(uow, SendRequest("au", ids["A"], "miniprogram", "transactional", f"mp:{i}", content),
                           app=mp_app)  # fmt: skip
        stats = Dispatcher(mp_app).run_once()
        assert (stats.sent, stats.suppressed) == (1, 1)
        assert fake.sent[-1]["data"] == {"thing1": {"value": "张三的积分提醒"}}
    with app.store.unit_of_work() as s:
        mine = list_messages(s, brand="au", customer_ids=[ids["A"]], ring=app.settings.pii_keyring)
    assert {m["reason"] or m["status"] for m in mine if m["channel"] == "miniprogram"} == {"sent", "no_subscription"}


@pytest.fixture
def cli_env(au: tuple[App, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> App:
    app, _ = au
    monkeypatch.setenv("SIYU_HOME", str(app.settings.home))
    monkeypatch.setenv("SIYU_DATABASE_URL", app.settings.store_url)
    return app


def test_cli_consent_policy_and_list(cli_env: App, au: tuple[App, dict[str, str]]) -> None:
    _, ids = au
    unknown = runner.invoke(cli, ["consent", "set", ids["B"], "--brand", "au", "--purpose", "survey", "--withdrawn"])
    assert unknown.exit_code == 2 and "siyu consent purpose add --brand au survey" in unknown.output
    assert (
        runner.invoke(cli, ["consent", "purpose", "add", "survey", "--brand", "au", "--name-zh", "问卷"]).exit_code == 0
    )
    done = runner.invoke(cli, ["consent", "set", ids["B"], "--brand", "au", "--purpose", "survey", "--withdrawn",
                               "--evidence", '{"form": "prefs", "ip": "10.0.0.1"}'])  # fmt: skip
    assert done.exit_code == 0, done.output
    shown = json.loads(runner.invoke(cli, ["consent", "show", ids["B"], "--brand", "au"]).stdout)
    assert shown["current"][0]["purpose"] == "survey" and shown["current"][0]["evidence"]["form"] == "prefs"

    policy = runner.invoke(cli, ["messages", "policy", "set", "--brand", "au", "--cap", "3/7", "--cap", "1/1:sms",
                                 "--quiet", "22:00-07:30", "--webhook-secret", "s3"])  # fmt: skip
    assert policy.exit_code == 0, policy.output
    shown = json.loads(runner.invoke(cli, ["messages", "policy", "show", "--brand", "au"]).stdout)
    assert shown["caps"] == [{"count": 3, "days": 7, "channel": None}, {"count": 1, "days": 1, "channel": "sms"}]
    assert (shown["quiet_start"], shown["quiet_end"], shown["webhook_secret"]) == ("22:00", "07:30", "***")
    # the dispatcher from the CLI: nothing is due a year before anything was queued
    sent = runner.invoke(cli, ["messages", "send", "--once", "--now", "2000-01-01T08:00:00+08:00", "--json"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["claimed"] == 0
    assert runner.invoke(cli, ["messages", "send", "--once", "--now", "tomorrow"]).exit_code == 2
    bad = runner.invoke(cli, ["messages", "policy", "set", "--brand", "au", "--cap", "two"])
    assert bad.exit_code == 2 and "COUNT/DAYS" in bad.output

    with cli_env.store.begin(Actor.system("test")) as uow:
        do_enqueue(uow, SendRequest("au", ids["A"], "sms", "transactional", "cli:a", {"text": "您好"}), app=cli_env)
    listed = json.loads(runner.invoke(cli, ["messages", "list", "--customer", ids["A"], "--json"]).stdout)
    assert listed and {m["customer_id"] for m in listed} == {ids["A"]}
    sms = [m for m in listed if m["channel"] == "sms" and m["status"] == "queued"]
    assert sms[0]["to"] == "139****0001"  # masked
    assert "13900000001" not in json.dumps(listed)
    # the customer view lists them too (触达记录), masked the same way
    view = customer_view(cli_env, ids["A"], "au")
    assert [m["id"] for m in view["messages"]] == [m["id"] for m in listed][:20]
    assert "13900000001" not in json.dumps(view["messages"])


PROGRAM = """\
version: 1
program: au_club
level: brand
brands: [au]
timezone: Asia/Shanghai
enrolment: [membership, api]
tiers:
  levels:
    - {code: member, name_zh: 会员, name_en: Member, threshold: 0}
points:
  expiry: {policy: never}
"""


def test_templates_see_loyalty_tier_balance_and_expiring_points(au: tuple[App, dict[str, str]], tmp_path: Path) -> None:
    import datetime as dt

    from siyu.loyalty.accounts import do_enrol_customer
    from siyu.loyalty.points import do_earn
    from siyu.loyalty.programs import do_apply_program, load_program

    app, ids = au
    now = app.clock()
    (tmp_path / "club.yaml").write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, tmp_path / "club.yaml", actor="test", at=now)
    with app.store.unit_of_work() as s:
        program = load_program(s, "au_club")
        account = do_enrol_customer(s, program, lambda b, c: True, brand="au", customer_id=ids["C"], at=now,
                                    actor="test", via="api")  # fmt: skip
        soon, later = now + dt.timedelta(days=10), now + dt.timedelta(days=200)
        do_earn(s, program, account.account_id, 500, key="e1", at=now, actor="test", expires_at=soon)
        do_earn(s, program, account.account_id, 200, key="e2", at=now, actor="test", expires_at=later)
    content = {"text": "{{ loyalty.tier_name_zh }}：{{ loyalty.balance }}分，{{ loyalty.expiring_points }}分将到期"}
    out = render_for_customer(app, "au", ids["C"], "email", content, {})
    assert out["text"] == "会员：700分，500分将到期"
