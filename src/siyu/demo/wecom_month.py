"""Guides and a month of WeCom (导购 · 企微) for the demo brand, after its import.

The demo's guide rules are applied and the bindings computed; then the local fake WeCom and siyu's
own API (the real callback route of `siyu serve`) run on loopback ports, the brand is configured
with fresh credentials, channel codes are created through `add_contact_way` (one of them
exclusive) with welcome messages, and a month of callbacks — adds through the codes and directly,
edits, customers deleting their guide (churn alerts), staff deleting customers, a group chat — is
signed, encrypted and POSTed by the fake exactly as WeCom does. They are processed, landed in the
lake and bound like production data; SOP tasks and the chat compliance scan follow.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.demo import catalog as cat
from siyu.fakes.wecom import FakeWeCom, create_fake_app
from siyu.guides.bindings import staff_rows, write_staff
from siyu.guides.compliance import scan_messages
from siyu.guides.models import CurrentBinding, GuideTask
from siyu.guides.rulebook import do_apply_rules
from siyu.ingest.loader import Loader
from siyu.wecom.client import WeComClient
from siyu.wecom.models import WecomWelcomeSend
from siyu.wecom.qrcodes import QrCodeRequest, do_create_qrcode
from siyu.wecom.settings import CorpSettings, do_configure
from siyu.wecom.welcome import do_set_welcome

RULES = """brand: {brand}
version: 1
binding:
  mode: first_friend
  locks: {{add: 30, share_visit: 7, purchase: 90}}
  purchase_binds: true
  release_on_delete: true
sales_credit: order_guide
online_sources: [tmall, jd, douyin, mini_program]
commission:
  - category: "*"
    tiers: [{{from_fen: 0, rate_bp: 100}}, {{from_fen: 5000000, rate_bp: 200}}]
  - category: 面霜
    tiers: [{{from_fen: 0, rate_bp: 300}}]
sop:
  - {{code: welcome, after_add_days: [1, 3, 7], title: 新客跟进, template: "您好，我是您的专属顾问，有问题随时问我"}}
sensitive_words: [返现, 加我私人微信, 转账]
store_radius_km: 10
"""
CODE_STORES = 6  # stores with a counter channel code (S001…)
ACTOR = Actor.system("demo")


@contextmanager
def serving(api: FastAPI) -> Iterator[str]:
    """Serve `api` with uvicorn on a free loopback port in a thread (port 0: the OS picks)."""
    config = uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="siyu-demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo's loopback server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _contacts(out_dir: Path, n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """WeCom contacts of the month: WeChat-family records of the demo (the unionid makes One-ID
    join the contact to the person's other records); WeCom records keep their external_userid."""
    table = pacsv.read_csv(
        out_dir / "customers.csv",
        convert_options=pacsv.ConvertOptions(include_columns=["source", "unionid", "external_userid", "name"]),
    )
    table = table.filter(pc.is_valid(table["unionid"]))
    rows = table.take(rng.choice(table.num_rows, size=min(n, table.num_rows), replace=False)).to_pylist()
    return [
        {
            "external_userid": r["external_userid"] or f"wmD{i:08d}",
            "unionid": r["unionid"],
            "name": r["name"] or "微信用户",
        }
        for i, r in enumerate(rows)
    ]


def _callbacks(
    corp_id: str, month_start: int, month_end: int, contacts: list[dict[str, str]], codes: list[dict[str, Any]],
    rng: np.random.Generator,
) -> list[tuple[int, dict[str, Any], dict[str, str] | None]]:  # fmt: skip
    """(CreateTime, fields, contact to register at the fake first) of the month, in time order."""
    out: list[tuple[int, dict[str, Any], dict[str, str] | None]] = []

    def event(at: int, change: str, ext: str, userid: str, **extra: Any) -> dict[str, Any]:
        return {
            "ToUserName": corp_id, "FromUserName": "sys", "CreateTime": at, "MsgType": "event",
            "Event": "change_external_contact", "ChangeType": change, "UserID": userid, "ExternalUserID": ext, **extra,
        }  # fmt: skip

    span = month_end - month_start
    for contact in contacts:
        at = month_start + int(rng.random() * span * 0.9)
        ext = contact["external_userid"]
        if rng.random() < 0.6:  # through a channel code
            code = codes[int(rng.integers(0, len(codes)))]
            staff, state = code["staff"], code["state"]
        else:
            staff, state = f"G{int(rng.integers(1, cat.GUIDES + 1)):04d}", ""
        out.append((at, event(at, "add_external_contact", ext, staff, State=state), contact | {"userid": staff}))
        roll = rng.random()
        later = min(at + int(rng.exponential(6 * 86400)) + 60, month_end - 1)
        if roll < 0.12:  # the customer deletes the guide: a churn alert (删人提醒)
            out.append((later, event(later, "del_follow_user", ext, staff), None))
        elif roll < 0.16:  # the guide deletes the customer
            out.append((later, event(later, "del_external_contact", ext, staff), None))
        elif roll < 0.26:
            out.append((later, event(later, "edit_external_contact", ext, staff), None))
    out.sort(key=lambda c: c[0])
    return out


def _group_chat(fake: FakeWeCom, corp_id: str, at: int, members: list[str]) -> list[dict[str, Any]]:
    chat = "wrDEMO0001"
    fake.groupchats[chat] = [{"userid": "G0001", "type": 1}] + [{"userid": m, "type": 2} for m in members]
    base = {"ToUserName": corp_id, "FromUserName": "sys", "MsgType": "event", "Event": "change_external_chat"}
    return [
        base | {"CreateTime": at, "ChatId": chat, "ChangeType": "create"},
        base | {"CreateTime": at + 86400, "ChatId": chat, "ChangeType": "update", "UpdateDetail": "del_member",
                "MemChangeList": members[:1]},
    ]  # fmt: skip


def run(app: App, brand: str, out_dir: Path, month: tuple[dt.datetime, dt.datetime], contacts: int) -> dict[str, Any]:
    """Guides and a month of WeCom for `brand` (see the module docstring); returns what happened."""
    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        phases[name] = round(time.perf_counter() - started - sum(phases.values()), 1)

    rng = np.random.default_rng(15)
    with app.store.begin(ACTOR) as uow:
        do_apply_rules(uow, RULES.format(brand=brand), "demo-guides.yaml")
        write_staff(uow.session, brand, staff_rows(app, brand))  # churn alerts reach store managers too
    fake = FakeWeCom(corp_id=f"wwdemo{secrets.token_hex(4)}", secret=secrets.token_urlsafe(24))
    corp = CorpSettings(
        brand, fake.corp_id, secrets.token_hex(8), base64.b64encode(secrets.token_bytes(32)).decode()[:43], fake.secret
    )
    with app.store.begin(ACTOR) as uow:
        do_configure(uow, app.settings.pii_keyring, corp)
    from siyu.api.app import create_app  # the whole HTTP app: loaded only when the demo runs

    with serving(create_fake_app(fake)) as fake_url:
        wecom_app = replace(app, settings=app.settings.model_copy(update={"wecom_api_base": fake_url}))
        api = create_app(wecom_app, run_loader=False)
        client = WeComClient(fake_url, corp.corp_id, corp.secret)
        with serving(api) as url:
            codes = _codes(wecom_app, client, brand)
            lap("setup")
            start, end = (int(m.timestamp()) for m in month)
            calls = _callbacks(corp.corp_id, start, end, _contacts(out_dir, contacts, rng), codes, rng)
            joined = [c[1]["ExternalUserID"] for c in calls if c[2] is not None][:12]
            sent = _send(
                fake, corp, f"{url}/wecom/callback/{brand}", calls, _group_chat(fake, corp.corp_id, start, joined)
            )
            lap("send")
            api.state.wecom.drain()
            _welcomes_recorded(app, brand)
            lap("process")
        client.close()
    Loader(app).drain()  # lands the month in the lake, One-ID, and the binding run (guide_binding handler)
    lap("land_and_bind")
    scan = scan_messages(app, brand, month[1] - dt.timedelta(days=90), actor="system:demo")
    with app.store.unit_of_work() as session:
        bound = session.scalar(select(func.count()).select_from(CurrentBinding).where(CurrentBinding.brand == brand))
        alerts = session.scalar(select(func.count()).where(GuideTask.brand == brand, GuideTask.kind == "churn_alert"))
        welcomed = session.scalar(
            select(func.count()).where(WecomWelcomeSend.brand == brand, WecomWelcomeSend.status == "sent")
        )
    return {
        "channel_codes": len(codes), "callbacks": sent, "welcomes_sent": int(welcomed or 0),
        "bound_customers": int(bound or 0), "churn_alerts": int(alerts or 0), "flagged_messages": scan.flagged_messages,
        "seconds": round(time.perf_counter() - started, 1), "phases": phases,
    }  # fmt: skip


def _codes(app: App, client: WeComClient, brand: str) -> list[dict[str, Any]]:
    """Counter codes of the first stores (their first guide) and one exclusive live-stream code."""
    wanted = [
        QrCodeRequest(brand, f"S{s:03d}_counter", (f"G{s:04d}",), f"S{s:03d}", "counter", None)
        for s in range(1, CODE_STORES + 1)
    ]
    wanted.append(QrCodeRequest(brand, "live_double11", ("G0007",), "S007", "live", "double11", exclusive=True))
    posters = app.settings.home / "qrcodes" / brand
    with app.store.begin(ACTOR) as uow:
        for request in wanted:
            do_create_qrcode(uow, client, request, posters)
            do_set_welcome(uow, brand, request.state, {"text": "{name}您好，我是{store_code}门店的专属顾问{staff_id}"})
        do_set_welcome(uow, brand, "", {"text": "您好，欢迎添加，有问题随时问我"})
    return [{"state": r.state, "staff": r.staff_ids[0]} for r in wanted]


def _send(
    fake: FakeWeCom, corp: CorpSettings, url: str, calls: list[tuple[int, dict[str, Any], dict[str, str] | None]],
    chat: list[dict[str, Any]],
) -> int:  # fmt: skip
    """POST every callback to the receiver as WeCom does (adds first register the contact at the
    fake, which issues their WelcomeCode)."""
    with httpx.Client(timeout=30) as http:
        for _, fields, contact in calls:
            if contact is not None:
                fields["WelcomeCode"] = fake.add_contact(
                    contact["external_userid"], contact["userid"], name=contact["name"], unionid=contact["unionid"],
                    state=str(fields.get("State") or ""),
                )  # fmt: skip
            fake.send_callback(url, corp.token, corp.aes_key, fields, http).raise_for_status()
        for fields in chat:
            fake.send_callback(url, corp.token, corp.aes_key, fields, http).raise_for_status()
    return len(calls) + len(chat)


def _welcomes_recorded(app: App, brand: str, timeout_s: float = 20.0) -> None:
    """Wait until every claimed welcome has its outcome (they are written by the welcome threads)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with app.store.unit_of_work() as session:
            sending = session.scalar(
                select(func.count()).where(WecomWelcomeSend.brand == brand, WecomWelcomeSend.status == "sending")
            )
        if not sending:
            return
        time.sleep(0.1)
