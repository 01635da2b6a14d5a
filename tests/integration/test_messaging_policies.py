"""The send policies with hand-worked timelines, through do_enqueue and the dispatcher against real
servers (aiosmtpd, the fake SMS gateway): quiet hours across midnight in Asia/Shanghai, caps across
two journeys, an unsubscribe (a real click over HTTP) between two sends, SMS delivery receipts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from fixtures.messaging import Mailbox, serving, sms_gateway, smtp_server
from siyu.api.app import create_app
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.fakes.aliyun_sms import FakeSmsGateway
from siyu.loyalty.accounts import utc
from siyu.messaging.consent import ConsentChange, blocked_by, do_record_consents
from siyu.messaging.dispatch import Dispatcher
from siyu.messaging.enqueue import EnqueueResult, SendRequest, do_enqueue
from siyu.messaging.models import OutboundMessage
from siyu.messaging.policy import BrandPolicy, Cap, save_policy
from siyu.messaging.receipts import receipt_token
from siyu.messaging.sealing import open_payload
from siyu.messaging.settings import ChannelSettings

SH = ZoneInfo("Asia/Shanghai")


def sh(day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hh, mm, tzinfo=SH)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Mailbox, int, FakeSmsGateway, str]]:
    with smtp_server() as (box, port), sms_gateway() as (gateway, url):
        yield box, port, gateway, url


@pytest.fixture
def mapp(home: Any, store_url: str, servers: tuple[Mailbox, int, FakeSmsGateway, str]) -> Iterator[App]:
    _, port, _, url = servers
    channels = ChannelSettings(smtp_port=port, sms_api_base=url, sms_access_key_id="fake-id",
                               sms_access_key_secret="fake-secret", sms_sign_name="思域",
                               public_url="http://127.0.0.1:1", messaging_rate={})  # fmt: skip
    application = bootstrap(Settings(home=home, database_url=store_url, channels=channels))
    yield application
    application.store.engine.dispose()


def enqueue(app: App, at: dt.datetime, **kw: Any) -> EnqueueResult:
    defaults: dict[str, Any] = {
        "brand": "demo", "customer_id": "c1", "channel": "sms", "category": "marketing",
        "content": {"phone": "13800138000", "template_code": "SMS_1", "text": "您好"},
    }  # fmt: skip
    request = SendRequest(**{**defaults, **kw})
    with app.store.begin(Actor.system("test"), now=at) as uow:
        return do_enqueue(uow, request, app=app)


def send_at(app: App, at: dt.datetime) -> dict[str, int]:
    return Dispatcher(app, clock=lambda: at.astimezone(dt.UTC)).run_once().as_dict()


def row(app: App, message_id: int) -> OutboundMessage:
    with app.store.unit_of_work() as s:
        found = s.get(OutboundMessage, message_id)
        assert found is not None
        return found


def test_quiet_hours_across_midnight_defer_marketing_not_transactional(mapp: App) -> None:
    # default policy: quiet 21:00–08:00 in the brand's zone (Asia/Shanghai, no brand row needed)
    late = enqueue(mapp, sh(3, 22, 30), idempotency_key="a:1")
    assert (late.status, late.reason) == ("deferred", "quiet_hours")
    assert utc(row(mapp, late.message_id).not_before) == sh(4, 8).astimezone(dt.UTC)
    receipt = enqueue(mapp, sh(3, 22, 30), idempotency_key="t:1", category="transactional")
    assert receipt.status == "queued"
    assert send_at(mapp, sh(3, 22, 31))["sent"] == 1  # only the transactional one
    assert row(mapp, late.message_id).status == "deferred"
    assert send_at(mapp, sh(4, 7, 59))["claimed"] == 0
    assert send_at(mapp, sh(4, 8, 0))["sent"] == 1
    assert row(mapp, late.message_id).status == "sent"
    # the customer's own zone wins over the brand's: 22:30 in Shanghai is 14:30 in London
    london = enqueue(mapp, sh(3, 22, 30), idempotency_key="a:2", timezone="Europe/London", channel="email",
                     content={"to": "c1@example.com", "subject": "hi", "text": "hi"})  # fmt: skip
    assert london.status == "queued"
    # the same decision twice is one message
    again = enqueue(mapp, sh(3, 23, 0), idempotency_key="a:1")
    assert (again.message_id, again.status, again.created) == (late.message_id, "sent", False)


def test_caps_count_across_two_journeys_and_skip_transactional(mapp: App) -> None:
    # ≤ 2 marketing messages in 7 days (the default), any journey, any channel
    a1 = enqueue(mapp, sh(1, 10), idempotency_key="A:1", journey="welcome")
    b1 = enqueue(mapp, sh(3, 10), idempotency_key="B:1", journey="birthday", channel="email",
                 content={"to": "c1@example.com", "text": "生日快乐"})  # fmt: skip
    a2 = enqueue(mapp, sh(5, 10), idempotency_key="A:2", journey="welcome")  # days 1 and 3 are within 7 days
    t1 = enqueue(mapp, sh(5, 10), idempotency_key="T:1", journey="order", category="transactional")
    a3 = enqueue(mapp, sh(9, 10), idempotency_key="A:3", journey="welcome")  # day 1 left the window, day 3 not
    # 7 days before 10th 09:00 is 3rd 09:00: day 3 (10:00) and day 9 are inside → full
    b2 = enqueue(mapp, sh(10, 9), idempotency_key="B:2", journey="birthday")
    other = enqueue(mapp, sh(5, 10), idempotency_key="X:1", customer_id="c2")  # caps are per customer
    assert [r.status for r in (a1, b1, a2, t1, a3, b2, other)] == [
        "queued", "queued", "suppressed", "queued", "queued", "suppressed", "queued",
    ]  # fmt: skip
    assert a2.reason == b2.reason == "cap:2/7d"
    # a per-channel cap on top: at most 1 SMS a day
    with mapp.store.begin(Actor.system("test")) as uow:
        save_policy(uow.session, "demo", BrandPolicy(caps=(Cap(5, 7), Cap(1, 1, "sms"))), uow.now)
    s1 = enqueue(mapp, sh(20, 10), idempotency_key="S:1", customer_id="c3")
    s2 = enqueue(mapp, sh(20, 15), idempotency_key="S:2", customer_id="c3")
    e1 = enqueue(mapp, sh(20, 15), idempotency_key="S:3", customer_id="c3", channel="email",
                 content={"to": "c3@example.com", "text": "x"})  # fmt: skip
    assert (s1.status, s2.status, s2.reason, e1.status) == ("queued", "suppressed", "cap:1/1d:sms", "queued")


def test_an_unsubscribe_click_between_two_sends_suppresses_the_second(
    mapp: App, servers: tuple[Mailbox, int, FakeSmsGateway, str]
) -> None:
    box = servers[0]
    content = {
        "to": "li@example.com",
        "subject": "{{ greeting }}",
        "text": "{{ greeting }}, {{ customer.customer_id }}",
    }
    first = enqueue(mapp, sh(1, 10), idempotency_key="news:1", channel="email", content=content,
                    context={"greeting": "你好"})  # fmt: skip
    second = enqueue(mapp, sh(6, 10), idempotency_key="news:2", channel="email", content=content,
                     context={"greeting": "再见"})  # fmt: skip
    assert send_at(mapp, sh(1, 10))["sent"] == 1
    mail = box.messages[-1]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("你好, c1") and mail["Subject"] == "你好"
    link = mail["List-Unsubscribe"].strip("<>")
    assert link in text and "li@example.com" not in link
    path = link.removeprefix("http://127.0.0.1:1")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with serving(create_app(mapp)) as url:
        page = httpx.get(url + path, timeout=30)  # what a mail scanner's prefetch does: nothing recorded
        assert page.status_code == 200 and 'method="post"' in page.text
        with mapp.store.unit_of_work() as s:
            assert blocked_by(s, "demo", "c1", "email", "marketing") is None
        done = httpx.post(url + path, timeout=30)  # the button, or the mail client's one-click
        assert done.status_code == 200 and "您已退订" in done.text
        assert httpx.post(url + path, timeout=30).status_code == 200  # a second click adds nothing
        assert httpx.post(url + "/u/forged.token", timeout=30).status_code == 404
    with mapp.store.unit_of_work() as s:
        assert (
            blocked_by(s, "demo", "c1", "email", "marketing") == "consent:marketing_email withdrawn (unsubscribe_link)"
        )
        assert blocked_by(s, "demo", "c1", "email", "transactional") is None  # receipts still go out
    # queued before the click, suppressed at dispatch (consent is checked again)
    stats = send_at(mapp, sh(6, 10))
    assert (stats["claimed"], stats["suppressed"], stats["sent"]) == (1, 1, 0)
    assert (row(mapp, second.message_id).status, row(mapp, second.message_id).reason) == (
        "suppressed", "consent:marketing_email withdrawn (unsubscribe_link)"
    )  # fmt: skip
    # decided after the click: suppressed at once, with its reason (never silently dropped)
    third = enqueue(mapp, sh(8, 10), idempotency_key="news:3", channel="email", content=content,
                    context={"greeting": "x"})  # fmt: skip
    assert third.status == "suppressed" and third.reason.startswith("consent:marketing_email")  # type: ignore[union-attr]
    assert row(mapp, first.message_id).status == "sent"
    # a grant later wins again (latest record wins); the ledger kept both
    with mapp.store.begin(Actor.system("test"), now=sh(9, 9)) as uow:
        do_record_consents(uow, [ConsentChange("demo", "c1", "marketing_email", True, "form", {"form": "prefs"})])
    assert enqueue(mapp, sh(9, 10), idempotency_key="news:4", channel="email", content=content,
                   context={"greeting": "x"}).status == "queued"  # fmt: skip


def test_marketing_sms_carries_opt_out_and_receipts_mark_delivery(
    mapp: App, servers: tuple[Mailbox, int, FakeSmsGateway, str]
) -> None:
    gateway = servers[2]
    m = enqueue(mapp, sh(2, 10), idempotency_key="sms:1", content={"phone": "13900000009", "template_code": "SMS_9",
                "params": {"n": "{{ n }}"}, "text": "会员日满{{ n }}减50"}, context={"n": 300})  # fmt: skip
    t = enqueue(mapp, sh(2, 10), idempotency_key="sms:2", category="transactional",
                content={"phone": "13900000009", "template_code": "SMS_8", "text": "您的订单已发货"})  # fmt: skip
    with mapp.store.unit_of_work() as s:
        payloads = {
            r.idempotency_key: open_payload(mapp.settings.pii_keyring, r.payload) for r in s.query(OutboundMessage)
        }
    assert payloads["sms:1"]["text"] == "会员日满300减50拒收请回复R" and payloads["sms:1"]["segments"] == 1
    assert payloads["sms:1"]["params"] == {"n": "300"}
    assert payloads["sms:2"]["text"] == "您的订单已发货"  # transactional: no opt-out text
    assert send_at(mapp, sh(2, 10))["sent"] == 2
    ours = {row(mapp, m.message_id).provider_id: m, row(mapp, t.message_id).provider_id: t}
    assert len([r for r in gateway.received if r["BizId"] in ours]) == 2
    report = [r for r in gateway.receipts_for() if ours.get(r["biz_id"]) is m]
    failed = [{**r, "success": False, "err_code": "MK:0000", "err_msg": "失败"} for r in gateway.receipts_for()
              if ours.get(r["biz_id"]) is t]  # fmt: skip
    assert report[0]["out_id"].startswith(f"{m.message_id}-")
    with serving(create_app(mapp)) as url:
        endpoint = url + "/api/v1/messaging/sms/receipts"
        assert httpx.post(endpoint, json=report, params={"token": "wrong"}, timeout=30).status_code == 403
        answer = httpx.post(endpoint, json=report + failed, params={"token": receipt_token(mapp.settings.pii_key)},
                            timeout=30)  # fmt: skip
        assert answer.json() == {"code": 0, "msg": "成功"}
    assert row(mapp, m.message_id).status == "delivered"
    assert (row(mapp, t.message_id).status, row(mapp, t.message_id).reason) == ("failed", "receipt: MK:0000 失败")


def test_transient_failures_back_off_then_fail(mapp: App, servers: tuple[Mailbox, int, FakeSmsGateway, str]) -> None:
    gateway = servers[2]
    m = enqueue(mapp, sh(2, 10), idempotency_key="flaky:1", category="transactional")
    gateway.fail_next[:] = ["isv.BUSINESS_LIMIT_CONTROL"] * 2
    assert send_at(mapp, sh(2, 10))["retried"] == 1
    r = row(mapp, m.message_id)
    assert (r.status, r.attempts) == ("queued", 1) and utc(r.not_before) == sh(2, 10, 1).astimezone(dt.UTC)  # 60 s
    assert send_at(mapp, sh(2, 10, 0))["claimed"] == 0  # not before its time
    assert send_at(mapp, sh(2, 10, 1))["retried"] == 1
    assert send_at(mapp, sh(2, 10, 2))["sent"] == 1
    assert row(mapp, m.message_id).attempts == 3
