"""The callback receiver over real HTTP, with payloads encrypted by the documented algorithm."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from api.conftest import serving
from fixtures import wecom_wire as wire
from siyu.api.app import create_app
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.events import outbox
from siyu.events.catalogue import WecomContactChanged
from siyu.fakes.wecom import FakeWeCom
from siyu.guides.models import GuideTask, StaffMember
from siyu.ingest.inbox import open_payload
from siyu.store.locks import exclusive
from siyu.store.models import InboxMessage
from siyu.wecom.models import WecomCallback, WecomQrCode, WecomRelation
from siyu.wecom.process import PROCESSING_LOCK, process_batch
from siyu.wecom.runtime import WecomRuntime
from wecom.conftest import BRAND, configure

T0 = 1_733_212_800  # 2024-12-03T08:00:00Z


def post(url: str, fields: dict[str, object]) -> httpx.Response:
    params, body = wire.callback(fields)
    return httpx.post(f"{url}/wecom/callback/{BRAND}", params=params, content=body, timeout=10)


def callbacks(app: App) -> list[WecomCallback]:
    with app.store.unit_of_work() as s:
        return list(s.scalars(select(WecomCallback).order_by(WecomCallback.id)))


def inbox_rows(app: App, kind: str) -> list[dict[str, object]]:
    with app.store.unit_of_work() as s:
        rows = s.scalars(select(InboxMessage.payload).where(InboxMessage.kind == kind).order_by(InboxMessage.id))
        return [json.loads(open_payload(app.settings.pii_keyring, r)) for r in rows]  # sealed at rest


def test_url_verification_answers_the_decrypted_echostr(api: tuple[str, WecomRuntime]) -> None:
    url, _ = api
    answer = httpx.get(f"{url}/wecom/callback/{BRAND}", params=wire.echo("1616140317555161061"))
    assert answer.status_code == 200 and answer.text == "1616140317555161061"
    forged = wire.echo("1616140317555161061") | {"nonce": "other"}
    assert httpx.get(f"{url}/wecom/callback/{BRAND}", params=forged).status_code == 403
    assert httpx.get(f"{url}/wecom/callback/nobrand", params=wire.echo("1")).status_code == 404


def test_forged_callback_is_403_stored_nowhere_and_logged_without_content(
    api: tuple[str, WecomRuntime], wecom_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = api
    fields = wire.contact_event("add_external_contact", "wmSECRETCUSTOMER", "zhangsan", T0)
    params, body = wire.callback(fields)
    with caplog.at_level(logging.WARNING, logger="siyu.wecom.callback"):
        bad_sig = httpx.post(f"{url}/wecom/callback/{BRAND}", params=params | {"msg_signature": "0" * 40}, content=body)
        bad_body = httpx.post(
            f"{url}/wecom/callback/{BRAND}",
            params=params,
            content=body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[A"),
        )
    assert (bad_sig.status_code, bad_body.status_code) == (403, 403)
    assert callbacks(wecom_app) == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "rejected" in logged and BRAND in logged
    assert params["msg_signature"] not in logged and "wmSECRETCUSTOMER" not in logged and "Encrypt" not in logged


def test_duplicate_callback_is_stored_once(api: tuple[str, WecomRuntime], wecom_app: App) -> None:
    url, _ = api
    fields = wire.contact_event("edit_external_contact", "wmDUP", "zhangsan", T0)
    answers = [post(url, fields) for _ in range(3)]  # WeCom redelivers when an answer is slow
    assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 3
    stored = callbacks(wecom_app)
    assert len(stored) == 1 and stored[0].change_type == "edit_external_contact" and stored[0].processed_at is None


def test_add_then_customer_deletes_guide(api: tuple[str, WecomRuntime], wecom_app: App, fake: FakeWeCom) -> None:
    """Timeline: T0 the customer scans code `sh01_counter` and adds zhangsan; T0+1h the customer deletes
    zhangsan; T0+2h re-adds. Each becomes inbox rows for the loader and the store's relation history."""
    url, runtime = api
    with wecom_app.store.unit_of_work() as s:
        s.add(
            WecomQrCode(
                brand=BRAND, state="sh01_counter", staff_ids="zhangsan", store_code="SH01", channel="counter",
                campaign="c1", exclusive=True, config_id="cfg", qr_code="https://x", created_at=datetime.now(UTC),
            )
        )  # fmt: skip
        # the staff table (imported staff.csv, mirrored by the binding run): SH01 has a manager
        s.add(StaffMember(brand=BRAND, staff_id="zhangsan", role="guide", store_code="SH01", status="active"))
        s.add(StaffMember(brand=BRAND, staff_id="wangjl", role="manager", store_code="SH01", status="active"))
    fake.add_contact("wmCUST1", "zhangsan", name="李雷", unionid="oUNION1", state="sh01_counter")
    timeline = [
        wire.contact_event("add_external_contact", "wmCUST1", "zhangsan", T0, State="sh01_counter"),
        wire.contact_event("del_follow_user", "wmCUST1", "zhangsan", T0 + 3600),
        wire.contact_event("add_external_contact", "wmCUST1", "zhangsan", T0 + 7200, State="sh01_counter"),
    ]
    for fields in timeline:
        assert post(url, fields).status_code == 200
    assert process_batch(wecom_app, runtime.client) == 3
    assert process_batch(wecom_app, runtime.client) == 0  # all processed

    customers = inbox_rows(wecom_app, "customers")
    assert {
        (c["source"], c["source_customer_id"], c["external_userid"], c["unionid"], c["name"]) for c in customers
    } == {("wecom", "wmCUST1", "wmCUST1", "oUNION1", "李雷")}
    relations = [
        (r["relation_type"], r["staff_code"], r["started_at"], r["ended_at"], r["ended_by"])
        for r in inbox_rows(wecom_app, "relations")
    ]
    t0, t1, t2 = (datetime.fromtimestamp(T0 + d, UTC).isoformat() for d in (0, 3600, 7200))
    assert relations == [  # one batch: the relation that started at t0 is recorded in its last version
        ("wecom_friend", "zhangsan", t0, t1, "customer"),
        ("wecom_friend", "zhangsan", t2, None, None),
    ]
    events = inbox_rows(wecom_app, "events")
    assert [e["type"] for e in events] == ["wecom_friend_added", "wecom_friend_lost", "wecom_friend_added"]
    assert json.loads(str(events[0]["properties"])) == {
        "staff_id": "zhangsan", "state": "sh01_counter", "half": False, "channel": "counter",
        "store_code": "SH01", "campaign": "c1", "exclusive": True,
    }  # fmt: skip
    with wecom_app.store.unit_of_work() as s:
        history = [
            (r.started_at.replace(tzinfo=UTC), r.ended_by)
            for r in s.scalars(select(WecomRelation).order_by(WecomRelation.started_at))
        ]
        tasks = list(s.scalars(select(GuideTask)))
    assert [by for _, by in history] == ["customer", None]
    with wecom_app.store.unit_of_work() as s:
        [changed] = [e.event for e in outbox.after(s, -1, -1, 100) if e.event.type == "WecomContactChanged"]
    assert changed == WecomContactChanged(BRAND, ("wmCUST1",), ("friend_added", "friend_lost"))
    assert [(t.kind, t.assignee_staff_id, t.store_code, t.status) for t in tasks] == [
        ("churn_alert", "zhangsan", "SH01", "open"),
        ("churn_alert", "wangjl", "SH01", "open"),  # 删人提醒 also reaches the store manager
    ]


def test_transfer_delete_is_no_churn_and_group_membership(
    api: tuple[str, WecomRuntime], wecom_app: App, fake: FakeWeCom
) -> None:
    url, runtime = api
    fake.groupchats["wrCHAT"] = [
        {"userid": "zhangsan", "type": 1},
        {"userid": "wmA", "type": 2},
        {"userid": "wmB", "type": 2},
    ]
    chat = {
        "ToUserName": wire.CORP_ID,
        "FromUserName": "sys",
        "MsgType": "event",
        "Event": "change_external_chat",
        "ChatId": "wrCHAT",
    }
    for fields in [
        wire.contact_event("add_external_contact", "wmA", "zhangsan", T0),
        wire.contact_event("del_external_contact", "wmA", "zhangsan", T0 + 60, Source="DELETE_BY_TRANSFER"),
        chat | {"CreateTime": T0, "ChangeType": "create"},
        chat
        | {
            "CreateTime": T0 + 10,
            "ChangeType": "update",
            "UpdateDetail": "add_member",
            "MemChangeList": ["wmC", "zhangsan"],
        },
        chat | {"CreateTime": T0 + 20, "ChangeType": "update", "UpdateDetail": "del_member", "MemChangeList": ["wmA"]},
        chat | {"CreateTime": T0 + 30, "ChangeType": "dismiss"},
        {
            "ToUserName": wire.CORP_ID,
            "CreateTime": T0,
            "MsgType": "event",
            "Event": "change_external_tag",
            "Id": "et1",
            "TagType": "tag",
            "ChangeType": "create",
        },
    ]:
        params, body = wire.callback(fields) if "MemChangeList" not in fields else _with_list(fields)
        assert httpx.post(f"{url}/wecom/callback/{BRAND}", params=params, content=body).status_code == 200
    assert process_batch(wecom_app, runtime.client) == 7
    with wecom_app.store.unit_of_work() as s:
        rows = {(r.kind, r.external_userid, r.ended_by) for r in s.scalars(select(WecomRelation))}
        assert s.scalar(select(GuideTask.id)) is None  # a transfer is not churn
    assert rows == {
        ("friend", "wmA", "transfer"),
        ("group", "wmA", "left"),
        ("group", "wmB", "dismiss"),
        ("group", "wmC", "dismiss"),
    }
    groups = [r for r in inbox_rows(wecom_app, "relations") if r["relation_type"] == "group_member"]
    assert {r["field"] for r in groups} == {"wecom_group"}
    # one batch: each membership in its last version (joined and ended within the batch)
    assert sorted((r["source_customer_id"], r["ended_by"]) for r in groups) == [
        ("wmA", "left"),
        ("wmB", "dismiss"),
        ("wmC", "dismiss"),
    ]


def _with_list(fields: dict[str, object]) -> tuple[dict[str, str], bytes]:
    items = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in fields["MemChangeList"])  # type: ignore[attr-defined]
    plain = wire.xml({k: v for k, v in fields.items() if k != "MemChangeList"}).replace(
        b"</xml>", f"<MemChangeList>{items}</MemChangeList></xml>".encode()
    )
    encrypted = wire.documented_encrypt(wire.AES_KEY, wire.CORP_ID, plain)
    params = {
        "msg_signature": wire.documented_signature(wire.TOKEN, "1", "n", encrypted),
        "timestamp": "1",
        "nonce": "n",
    }
    return params, f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()


@pytest.fixture
def pg_wecom_app(pg_database: str, tmp_path, fake_served: tuple[FakeWeCom, str]) -> Iterator[App]:  # type: ignore[no-untyped-def]
    app = bootstrap(Settings(home=tmp_path / "home", database_url=pg_database, wecom_api_base=fake_served[1]))
    configure(app)
    yield app
    app.store.engine.dispose()


@pytest.mark.postgres
def test_duplicates_stored_once_on_postgresql(pg_wecom_app: App) -> None:
    with serving(create_app(pg_wecom_app, run_loader=False)) as url:
        fields = wire.contact_event("edit_external_contact", "wmPG", "zhangsan", T0)
        assert [post(url, fields).status_code for _ in range(2)] == [200, 200]
        assert post(url, fields | {"CreateTime": T0 + 1}).status_code == 200
    assert len(callbacks(pg_wecom_app)) == 2


@pytest.mark.postgres
def test_two_processors_on_postgresql_handle_each_callback_once(pg_wecom_app: App, fake: FakeWeCom) -> None:
    app, n = pg_wecom_app, 6
    with serving(create_app(app, run_loader=False)) as url:
        for i in range(n):
            fake.add_contact(f"wmL{i}", "zhangsan", name="王芳")
            added = wire.contact_event("add_external_contact", f"wmL{i}", "zhangsan", T0 + i)
            assert post(url, added).status_code == 200
    fake.calls.clear()
    runtime = WecomRuntime(app)
    # another process holds the processing lock: this one does nothing
    with exclusive(app.store.engine, app.settings.home, PROCESSING_LOCK) as held:
        assert held
        assert process_batch(app, runtime.client) == 0
    assert fake.calls == [] and all(c.processed_at is None for c in callbacks(app))

    # two processors (each with its own store connections, like two processes), one callback per
    # batch, at once: every contact is looked up at WeCom once, every callback processed once
    def processor() -> None:
        own = bootstrap(app.settings)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(c.processed_at is None for c in callbacks(own)):
            process_batch(own, runtime.client, limit=1)
        own.store.engine.dispose()

    threads = [threading.Thread(target=processor) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c for c in fake.calls if c == "get") == ["get"] * n
    assert all(c.processed_at is not None and c.attempts == 0 for c in callbacks(app))
    assert len(inbox_rows(app, "relations")) == n
