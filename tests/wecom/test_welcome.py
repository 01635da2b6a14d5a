"""Welcome messages (欢迎语): sent with the callback's WelcomeCode within 20 s, once, failures recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from fixtures import wecom_wire as wire
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.fakes.wecom import FakeWeCom
from siyu.wecom.callbacks import open_callback, store_now
from siyu.wecom.models import WecomCallback, WecomWelcomeSend
from siyu.wecom.process import process_batch
from siyu.wecom.runtime import WecomRuntime
from siyu.wecom.welcome import WelcomeJob, do_set_welcome, send_welcome
from wecom.conftest import BRAND


def set_welcome(app: App, state: str, content: dict[str, object]) -> None:
    with app.store.begin(Actor.system("tests")) as uow:
        do_set_welcome(uow, BRAND, state, content)


def sends(app: App, deadline_s: float = 10.0, count: int = 1) -> list[WecomWelcomeSend]:
    """The welcome sends once `count` of them are final (the welcome runs on its own threads)."""
    end = time.monotonic() + deadline_s
    while True:
        with app.store.unit_of_work() as s:
            rows = list(s.scalars(select(WecomWelcomeSend).order_by(WecomWelcomeSend.id)))
        if sum(r.status != "sending" for r in rows) >= count or time.monotonic() > end:
            return rows
        time.sleep(0.02)


def test_welcome_sent_once_within_the_window(api: tuple[str, WecomRuntime], wecom_app: App, fake: FakeWeCom) -> None:
    url, _ = api
    set_welcome(
        wecom_app, "poster1",
        {"text": "{name}您好，我是{staff_id}", "link": {"title": "入会礼", "url": "https://m.example.com/join?s={state}"}},
    )  # fmt: skip
    code = fake.add_contact("wmW1", "zhangsan", name="韩梅梅", state="poster1")
    fields = wire.contact_event(
        "add_external_contact", "wmW1", "zhangsan", int(time.time()), State="poster1", WelcomeCode=code
    )
    params, body = wire.callback(fields)
    for _ in range(3):  # WeCom redelivers: still one welcome
        assert httpx.post(f"{url}/wecom/callback/{BRAND}", params=params, content=body).status_code == 200
    [row] = sends(wecom_app)
    assert (row.status, row.welcome_code, row.external_userid, row.staff_id) == ("sent", code, "wmW1", "zhangsan")
    assert row.latency_ms is not None and 0 <= row.latency_ms < 1000
    assert fake.welcomes == [
        {
            "welcome_code": code,
            "text": {"content": "韩梅梅您好，我是zhangsan"},
            "attachments": [
                {"msgtype": "link", "link": {"title": "入会礼", "url": "https://m.example.com/join?s=poster1"}}
            ],
        }
    ]


def test_refusal_and_expiry_are_recorded(wecom_app: App, fake: FakeWeCom, api: tuple[str, WecomRuntime]) -> None:
    _, runtime = api
    set_welcome(wecom_app, "", {"text": "欢迎"})  # the default welcome
    client = runtime.client(BRAND)
    now = datetime.now(UTC)

    def job(code: str, arrived: datetime) -> WelcomeJob:
        return WelcomeJob(BRAND, code, "zhangsan", "wmW2", "", arrived, time.monotonic())

    used = fake.add_contact("wmW2", "zhangsan")
    fake.welcome_codes.pop(used)  # WeCom no longer accepts it (used or expired on its side)
    assert send_welcome(wecom_app.store, client, job(used, now), now) == "failed"
    late = fake.add_contact("wmW2", "zhangsan")
    assert send_welcome(wecom_app.store, client, job(late, now - timedelta(seconds=21)), now) == "expired"
    assert send_welcome(wecom_app.store, client, job(late, now), now) == "duplicate"  # claimed once, never again
    chatting = fake.add_contact("wmW3", "zhangsan")
    fake.chatting.add("wmW3")  # the customer wrote first: WeCom refuses the welcome with 41051
    assert send_welcome(wecom_app.store, client, job(chatting, now), now) == "failed"
    rows = {r.welcome_code: r for r in sends(wecom_app, count=3)}
    assert (rows[chatting].status, rows[chatting].errcode) == ("failed", 41051)
    assert (rows[used].status, rows[used].errcode) == ("failed", 41096)
    assert rows[late].status == "expired" and rows[late].latency_ms is None
    assert fake.welcomes == []


def test_welcome_of_a_process_that_died_is_recorded_lost(
    wecom_app: App, fake: FakeWeCom, api: tuple[str, WecomRuntime]
) -> None:
    """The callback (and its welcome claim) was stored, then the process died before sending. No
    other process sends it — the claim is the once-guarantee — and processing records it lost."""
    _, runtime = api
    set_welcome(wecom_app, "", {"text": "欢迎"})
    code = fake.add_contact("wmCRASH", "zhangsan")
    fields = wire.contact_event("add_external_contact", "wmCRASH", "zhangsan", int(time.time()), WelcomeCode=code)
    params, body = wire.callback(fields)
    arrived = utc_now() - timedelta(seconds=60)
    assert store_now(wecom_app.store, [open_callback(runtime.corp(BRAND).crypto(), BRAND, params, body, arrived)]) == [
        True
    ]
    assert store_now(wecom_app.store, [open_callback(runtime.corp(BRAND).crypto(), BRAND, params, body, arrived)]) == [
        False
    ]
    assert process_batch(wecom_app, runtime.client) == 1
    with wecom_app.store.unit_of_work() as s:
        [send] = s.scalars(select(WecomWelcomeSend)).all()
        assert s.scalar(select(WecomCallback.processed_at)) is not None
    assert (send.status, send.welcome_code) == ("lost", code) and fake.welcomes == []
