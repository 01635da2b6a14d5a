"""The `wecom` message channel: add_msg_template through the bound staff member, read back as delivered."""

from __future__ import annotations

from siyu.bootstrap import App
from siyu.fakes.wecom import FakeWeCom
from siyu.messaging.channels.base import Outbound, channel_factory
from siyu.wecom.channel import WecomChannel


def outbound(payload: dict[str, object]) -> Outbound:
    return Outbound(7, "journey:onboard:1:s2", "wc", "c-1", "wecom", "marketing", payload)


def test_send_then_confirmed_is_delivered(wecom_app: App, fake: FakeWeCom) -> None:
    channel = channel_factory("wecom")(wecom_app.settings)
    assert isinstance(channel, WecomChannel)
    message = outbound(
        {
            "staff_id": "zhangsan",
            "external_userid": "wmC1",
            "text": "新品到店",
            "link": {"title": "t", "url": "https://x"},
        }
    )
    sent = channel.send(message)
    assert sent.status == "sent" and sent.provider_id in fake.templates
    assert fake.templates[sent.provider_id] == {
        "chat_type": "single", "external_userid": ["wmC1"], "sender": "zhangsan", "text": {"content": "新品到店"},
        "attachments": [{"msgtype": "link", "link": {"title": "t", "url": "https://x"}}],
    }  # fmt: skip
    assert channel.poll(message, sent.provider_id).status == "sent"  # the guide has not confirmed yet
    fake.confirmed.add(sent.provider_id)
    assert channel.poll(message, sent.provider_id).status == "delivered"
    assert channel.send(outbound({"external_userid": "wmC1", "text": "x"})).status == "failed"  # no bound staff
