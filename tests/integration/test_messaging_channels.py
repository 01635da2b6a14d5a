"""Each channel adapter against a real server: SMTP (aiosmtpd in this process), the fake Aliyun SMS
gateway and the fake WeChat API over HTTP (documented wire formats), a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from fixtures.messaging import Mailbox, free_port, sms_gateway, smtp_server, webhook_receiver, wechat_api
from siyu.fakes.aliyun_sms import FakeSmsGateway
from siyu.fakes.wechat_mp import FakeWechat
from siyu.messaging.channels.base import Outbound
from siyu.messaging.channels.email import EmailChannel, message_id
from siyu.messaging.channels.sms import AliyunSmsChannel
from siyu.messaging.channels.webhook import WebhookChannel
from siyu.messaging.channels.wechat import MiniProgramChannel, OfficialAccountChannel
from siyu.messaging.settings import ChannelSettings


def out(channel: str, payload: dict, mid: int = 1, key: str = "k1", category: str = "marketing") -> Outbound:  # type: ignore[type-arg]
    return Outbound(mid, key, "demo", "c1", channel, category, payload)


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


def test_email_over_real_smtp(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    channel = EmailChannel(ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="news@brand.cn"))
    payload = {"to": "li@example.com", "subject": "会员日 Member day", "text": "你好 Li",
               "html": "<p>你好 Li</p>", "unsubscribe_url": "http://x/u/t"}  # fmt: skip
    result = channel.send(out("email", payload, key="journey:1:welcome"))
    assert result.status == "sent"
    mail = box.messages[-1]
    assert mail["To"] == "li@example.com" and mail["From"] == "news@brand.cn"
    assert mail["Message-ID"] == message_id("journey:1:welcome", "news@brand.cn") == result.provider_id
    assert mail["List-Unsubscribe"] == "<http://x/u/t>"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in mail.walk() if not p.is_multipart()}
    assert "你好 Li" in parts["text/plain"] and "<p>你好 Li</p>" in parts["text/html"]
    # a refused recipient is final; an unreachable server is transient
    box.refuse.add("nobody@example.com")
    assert channel.send(out("email", {"to": "nobody@example.com", "text": "x"})).status == "failed"
    dead = EmailChannel(ChannelSettings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout=2))
    assert dead.send(out("email", {"to": "li@example.com", "text": "x"})).status == "retry"


def test_email_session_sends_a_batch_over_one_connection(smtp: tuple[Mailbox, int]) -> None:
    """Inside `session()` the sends share one SMTP connection (a dispatcher's batch), a refused
    recipient does not end it, and outside it each send has its own connection."""
    box, port = smtp
    channel = EmailChannel(ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="news@brand.cn"))
    box.refuse.add("gone@example.com")
    before = len(box.messages)
    to = ["a@example.com", "b@example.com", "gone@example.com", "c@example.com", "d@example.com"]
    with channel.session():
        results = [channel.send(out("email", {"to": t, "text": "x"}, key=f"s{i}")) for i, t in enumerate(to)]
    assert [r.status for r in results] == ["sent", "sent", "failed", "sent", "sent"]
    assert len(box.messages) - before == 4 and len(set(box.peers[before:])) == 1
    for i in range(2):
        assert channel.send(out("email", {"to": "e@example.com", "text": "x"}, key=f"t{i}")).status == "sent"
    assert len(set(box.peers[before:])) == 3


@pytest.fixture(scope="module")
def sms() -> Iterator[tuple[FakeSmsGateway, str]]:
    with sms_gateway() as server:
        yield server


def sms_settings(url: str, secret: str = "fake-secret") -> ChannelSettings:
    return ChannelSettings(sms_api_base=url, sms_access_key_id="fake-id", sms_access_key_secret=secret,
                           sms_sign_name="思域")  # fmt: skip


def test_sms_in_aliyun_format_signed_once_per_out_id(sms: tuple[FakeSmsGateway, str]) -> None:
    gateway, url = sms
    channel = AliyunSmsChannel(sms_settings(url))
    payload = {"phone": "+8613800138000", "template_code": "SMS_1", "params": {"name": "李"}, "text": "x"}
    first = channel.send(out("sms", payload, mid=101))
    assert first.status == "sent" and first.provider_id
    got = gateway.received[-1]
    assert got["PhoneNumbers"] == "13800138000" and got["SignName"] == "思域" and got["OutId"].startswith("101-")
    assert json.loads(got["TemplateParam"]) == {"name": "李"} and got["SignatureMethod"] == "HMAC-SHA1"
    # the same OutId again (a re-send after a crash): the gateway keeps one
    n = len(gateway.received)
    assert channel.send(out("sms", payload, mid=101)).provider_id == first.provider_id
    assert len(gateway.received) == n
    # documented answers: flow control → retry; a bad number or a bad signature → failed
    gateway.fail_next.append("isv.BUSINESS_LIMIT_CONTROL")
    assert channel.send(out("sms", payload, mid=102)).status == "retry"
    assert channel.send(out("sms", {**payload, "phone": "12345"}, mid=103)).error.startswith("isv.MOBILE_NUMBER")  # type: ignore[union-attr]
    wrong = AliyunSmsChannel(sms_settings(url, secret="not-it")).send(out("sms", payload, mid=104))
    assert wrong.status == "failed" and wrong.error.startswith("SignatureDoesNotMatch")  # type: ignore[union-attr]


def test_webhook_signed_and_retried(tmp_path: object) -> None:
    with webhook_receiver() as (hooks, url):
        channel = WebhookChannel(ChannelSettings())
        payload = {"url": url, "_secret": "s3cret", "event": "tier_up", "rendered": True}
        hooks.statuses = [503]
        assert channel.send(out("webhook", payload, key="journey:9:hook")).status == "retry"
        assert channel.send(out("webhook", payload, key="journey:9:hook")).status == "sent"
        hooks.statuses = [400]
        assert channel.send(out("webhook", payload, key="journey:9:hook")).status == "failed"
        headers, body = hooks.received[1]
        assert headers["idempotency-key"] == "journey:9:hook"
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["x-siyu-signature"] == expected
        data = json.loads(body)
        assert data["data"] == {"event": "tier_up"} and data["message_id"] == 1  # the secret is not in the body
        assert "s3cret" not in body.decode()


@pytest.fixture(scope="module")
def wechat() -> Iterator[tuple[FakeWechat, str]]:
    with wechat_api() as server:
        yield server


def wechat_settings(url: str) -> ChannelSettings:
    return ChannelSettings(wechat_api_base=url, wechat_oa_appid="wx-oa", wechat_oa_secret="oa-secret",
                           wechat_mp_appid="wx-mp", wechat_mp_secret="mp-secret")  # fmt: skip


def test_official_account_token_cached_refreshed_and_errcodes(wechat: tuple[FakeWechat, str]) -> None:
    fake, url = wechat
    channel = OfficialAccountChannel(wechat_settings(url))
    payload = {"openid": "oABC", "template_id": "T1", "data": {"first": "恭喜升级", "keyword1": {"value": "金卡"}}}
    before = fake.token_requests
    assert channel.send(out("oa", payload)).status == "sent"
    assert channel.send(out("oa", payload)).status == "sent"
    assert fake.token_requests == before + 1  # cached
    assert fake.sent[-1]["data"] == {"first": {"value": "恭喜升级"}, "keyword1": {"value": "金卡"}}
    fake.revoke_tokens()  # 42001: refresh once, then sent
    assert channel.send(out("oa", payload)).status == "sent" and fake.token_requests == before + 2
    fake.fail_next.append(45009)
    assert channel.send(out("oa", payload)).status == "retry"
    assert channel.send(out("oa", {**payload, "openid": "bad"})).status == "failed"  # 40003


def test_mini_program_subscribe_message_needs_a_subscription(wechat: tuple[FakeWechat, str]) -> None:
    fake, url = wechat
    channel = MiniProgramChannel(wechat_settings(url))
    payload = {"openid": "oMP1", "template_id": "SUB1", "page": "pages/coupon", "data": {"thing1": "满减券"}}
    assert channel.send(out("miniprogram", payload)).status == "refused"  # 43101: no subscription
    fake.subscribe("oMP1", "SUB1")
    assert channel.send(out("miniprogram", payload)).status == "sent"
    assert channel.send(out("miniprogram", payload)).status == "refused"  # used up: one message per subscription
    assert fake.sent[-1]["page"] == "pages/coupon"
