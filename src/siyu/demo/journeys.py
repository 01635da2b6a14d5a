"""The demo's journeys (演示营销旅程): two of the shipped journeys — new-member onboarding and the
post-purchase review request — run over two simulated weeks against local fakes: a real SMTP
server in this process (aiosmtpd, counting what it receives) and the fake Aliyun SMS gateway
(siyu.fakes.aliyun_sms) over HTTP, both on free loopback ports and stopped at the end.

Both journeys are applied the night after the demo's data ends, with a backfill of the last
days (`JOURNEYS`), so the members who joined and the orders paid in those days enter. Simulated
time then jumps from one due moment to the next (a step, a message's send time): at each, the
journeys run what is due (`run_due`, as `siyu journey run --now` does), the dispatcher sends what is
queued and the gateway's delivery receipts are applied — only the moments where something happens,
because every pass reads the lake.

Customers answer too, as they would: a few reply "R" (拒收) to the welcome SMS, which withdraws
their marketing SMS consent, so later sends to them are suppressed with that reason; a few
review the order they were asked about (a `review` event lands through the import), which takes
their enrolment down the `wait_for` path that thanks with points and counts for the goal.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import ibis
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.fakes import aliyun_sms
from siyu.ingest.importer import import_path
from siyu.ingest.views import current
from siyu.journeys.apply import do_apply_journey
from siyu.journeys.models import Enrolment
from siyu.journeys.report import journey_report
from siyu.journeys.runner import run_due
from siyu.journeys.sources import occurrences
from siyu.messaging.channels.base import channel_factory
from siyu.messaging.consent import ConsentChange, do_record_consents
from siyu.messaging.dispatch import Dispatcher
from siyu.messaging.models import OutboundMessage
from siyu.messaging.receipts import apply_sms_receipts

# each with the size of the cohort it backfills (the latest members who joined, the latest paid
# orders): small, since the demo's budget for journeys is seconds, and the same at every demo size
JOURNEYS = {"onboarding": 60, "review_request": 150}
TRIGGER = {"onboarding": "member_joined", "review_request": "order_paid"}
DAYS = 14  # simulated days: onboarding's day-7 gift, the review's day-7 ask and its 3-day wait
FIRST_PASS = dt.timedelta(hours=9, minutes=30)  # after local midnight: 09:30, outside quiet hours
ACTOR = Actor.system("demo")
BRAND = "demo"
REPLY_R_PERCENT = 10  # of the members welcomed by SMS, who reply R (拒收)
REVIEW_PERCENT = 35  # of the customers asked for a review, who write one within two days


class Sink:
    """An SMTP server's handler that accepts and counts every message."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  (aiosmtpd's name)
        self.received += 1
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smtp(sink: Sink) -> Controller:
    """aiosmtpd on a free port (it cannot bind port 0: it checks the port by connecting to it); a
    port taken between choosing and binding it is chosen again."""
    for attempt in range(3):
        controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
        try:
            controller.start()
        except OSError:
            if attempt == 2:
                raise
            continue
        return controller
    raise AssertionError("unreachable")


@contextmanager
def fakes() -> Iterator[tuple[Sink, int, aliyun_sms.FakeSmsGateway, str]]:
    """The SMTP sink and the SMS gateway on free loopback ports, for as long as the block runs."""
    sink = Sink()
    controller = _smtp(sink)
    gateway = aliyun_sms.FakeSmsGateway()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # handed to uvicorn: no window between choosing the port and binding it
    config = uvicorn.Config(aliyun_sms.create_app(gateway), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="demo-sms-gateway", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            raise RuntimeError("the demo's fake SMS gateway did not start (演示短信网关未启动)")
        yield sink, controller.port, gateway, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        controller.stop()


def _sender(app: App, smtp_port: int, gateway: aliyun_sms.FakeSmsGateway, sms_url: str) -> App:
    """The app the dispatcher runs with: e-mail and SMS pointed at the fakes, and a claim as large
    as the demo's cohort (its facts are read for the whole batch at once); the workspace's own
    settings are untouched."""
    channels = app.settings.channels.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_from": "hello@demo.example.cn",
                "smtp_user": None, "smtp_starttls": False, "sms_api_base": sms_url,
                "sms_access_key_id": gateway.access_key_id, "sms_access_key_secret": gateway.access_key_secret,
                "sms_sign_name": "思域演示", "messaging_batch": 1000}
    )  # fmt: skip
    return dataclasses.replace(app, settings=app.settings.model_copy(update={"channels": channels}))


def _backfill_from(app: App, event_type: str, cohort: int, start: dt.datetime) -> dt.datetime:
    """The time from which the last `cohort` occurrences of the trigger's event happened."""
    rows = occurrences(app, BRAND, event_type, {})
    if rows is None:
        return start
    latest = rows.order_by(ibis.desc("occurred_at")).limit(cohort)
    value = app.engine.to_arrow(latest.select("occurred_at"))["occurred_at"].to_pylist()
    return min(value) if value else start


def _next_due(app: App, after: dt.datetime) -> dt.datetime | None:
    """The next moment after `after` when a step or a message of the demo's journeys is due."""
    with app.store.unit_of_work() as session:
        step = session.scalar(
            select(func.min(Enrolment.due_at)).where(
                Enrolment.journey.in_(list(JOURNEYS)), Enrolment.status == "active", Enrolment.due_at > after
            )
        )
        send = session.scalar(
            select(func.min(OutboundMessage.not_before)).where(
                OutboundMessage.journey.in_(list(JOURNEYS)),
                OutboundMessage.status.in_(("queued", "deferred")),
                OutboundMessage.not_before > after,
            )
        )
    found = [t if t.tzinfo else t.replace(tzinfo=dt.UTC) for t in (step, send) if t is not None]
    return min(found) if found else None


def run(app: App, end: dt.date, out_dir: Path) -> dict[str, Any]:
    """Apply the two journeys the night after `end` (the data's last day) and run `DAYS` simulated
    days; returns their reports and what the fakes received."""
    started = time.perf_counter()
    saved = out_dir / "journeys" / "reports.json"
    with app.store.unit_of_work() as session:
        ran = session.scalar(select(func.count()).select_from(Enrolment).where(Enrolment.journey.in_(list(JOURNEYS))))
    if ran and saved.exists():  # a second `siyu demo` in this workspace: its customers already went through
        return {**json.loads(saved.read_text(encoding="utf-8")), "repeated": True}
    start = dt.datetime(end.year, end.month, end.day, 16, tzinfo=dt.UTC)  # the next local midnight (UTC+8)
    examples = resources.files("siyu.journeys") / "examples"
    for code, cohort in JOURNEYS.items():
        do_apply_journey(
            app, Path(str(examples / f"{code}.yaml")), actor=ACTOR, at=start,
            backfill_from=_backfill_from(app, TRIGGER[code], cohort, start),
        )  # fmt: skip
    horizon = start + dt.timedelta(days=DAYS)
    passes = 0
    answers = {"replied_r": 0, "reviews": 0}
    replied: set[int] = set()
    reviewed: set[int] = set()
    with fakes() as (sink, smtp_port, gateway, sms_url):
        sender = _sender(app, smtp_port, gateway, sms_url)
        channels = {name: channel_factory(name)(sender.settings) for name in ("email", "sms")}
        try:
            now: dt.datetime | None = start + FIRST_PASS
            while now is not None and now <= horizon:
                run_due(app, now)
                Dispatcher(sender, clock=lambda now=now: now, channels=channels).run_once()  # type: ignore[misc]
                apply_sms_receipts(app.store, gateway.receipts_for(), now)
                answers["replied_r"] += _reply_r(app, now, replied)
                answers["reviews"] += _review(app, now, out_dir, reviewed)
                passes += 1
                now = _next_due(app, now)
        finally:
            for channel in channels.values():
                close = getattr(getattr(channel, "client", None), "close", None)
                if close is not None:
                    close()
        received = {"sms": len(gateway.received), "email": sink.received}
    with app.store.unit_of_work() as session:
        reports = {code: journey_report(session, code) for code in JOURNEYS}
        reasons = dict(
            session.execute(
                select(OutboundMessage.reason, func.count())
                .where(OutboundMessage.journey.in_(list(JOURNEYS)), OutboundMessage.status == "suppressed")
                .group_by(OutboundMessage.reason)
            ).all()
        )
    result = {
        "days": DAYS, "passes": passes, "received": received, "reports": reports, "answers": answers,
        "suppressed_reasons": {str(k): int(v) for k, v in reasons.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(as_json(result), encoding="utf-8")
    return result


def _bucket(customer_id: str, what: str) -> int:
    """0–99, the same for a customer every run: who answers is seeded like the rest of the demo."""
    return int.from_bytes(hashlib.sha256(f"demo\x1f{what}\x1f{customer_id}".encode()).digest()[:8], "big") % 100


def _sent(app: App, journey: str, step: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(message id, customer, enrolment context) of the step's messages that went out."""
    with app.store.unit_of_work() as session:
        rows = session.execute(
            select(OutboundMessage.id, OutboundMessage.customer_id, Enrolment.context)
            .join(Enrolment, Enrolment.id == OutboundMessage.enrolment_id)
            .where(OutboundMessage.journey == journey, OutboundMessage.step_id == step,
                   OutboundMessage.status.in_(("sent", "delivered")))
            .order_by(OutboundMessage.id)
        ).all()  # fmt: skip
    return [(int(i), str(c), json.loads(ctx or "{}")) for i, c, ctx in rows]


def _reply_r(app: App, now: dt.datetime, done: set[int]) -> int:
    """Some welcomed members reply R (拒收) within the hour: their marketing SMS consent is withdrawn
    (source sms_reply), so the journeys' later SMS to them are suppressed with that reason."""
    changes = [
        ConsentChange(BRAND, customer, "marketing_sms", False, "sms_reply", {"reply": "R", "message_id": mid},
                      at=now + dt.timedelta(hours=1), source_key=f"demo:sms_reply:{mid}")
        for mid, customer, _ in _sent(app, "onboarding", "welcome")
        if mid not in done and _bucket(customer, "reply_r") < REPLY_R_PERCENT
    ]  # fmt: skip
    done.update(int(c.evidence["message_id"]) for c in changes)
    if changes:
        with app.store.begin(ACTOR, now=now + dt.timedelta(hours=1)) as uow:
            do_record_consents(uow, changes)
    return len(changes)


def _review(app: App, now: dt.datetime, out_dir: Path, done: set[int]) -> int:
    """Some customers asked for a review write one within two days: `review` events of that order
    land through the import, as a platform's would, and the journey's `wait_for` sees them."""
    asked = [(mid, c, ctx) for mid, c, ctx in _sent(app, "review_request", "ask") if mid not in done]
    done.update(mid for mid, _, _ in asked)
    chosen = {str(ctx["order_id"]): (mid, c) for mid, c, ctx in asked
              if ctx.get("order_id") and _bucket(c, "review") < REVIEW_PERCENT}  # fmt: skip
    orders = current(app, "orders")
    if not chosen or orders is None:
        return 0
    mine = orders.filter((orders.brand == BRAND) & orders.order_id.isin(list(chosen)))
    rows = app.engine.to_arrow(mine.select("order_id", "source", "source_customer_id")).to_pylist()
    if not rows:
        return 0
    folder = out_dir / "journeys"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["brand", "source", "event_id", "type", "source_customer_id", "occurred_at", "properties"])
        for row in rows:
            mid, customer = chosen[row["order_id"]]
            at = now + dt.timedelta(hours=2 + _bucket(customer, "review_at") * 46 / 100)  # within two days
            out.writerow([BRAND, row["source"], f"RV-demo-{mid}", "review", row["source_customer_id"],
                          at.isoformat(timespec="seconds"),
                          json.dumps({"order_id": row["order_id"], "rating": 5}, ensure_ascii=False)])  # fmt: skip
    import_path(app, path)
    return len(rows)


def lines(result: dict[str, Any]) -> list[str]:
    """The demo's journey section (bilingual labels): one block per journey."""
    received = result["received"]
    out = [
        f"journeys 营销旅程: {len(result['reports'])} shipped journeys over {result['days']} simulated days 模拟天数 "
        f"({result['passes']} passes 轮次, {result['seconds']} s"
        + (", as first run in this workspace 本工作区首次运行的结果" if result.get("repeated") else "")
        + f") — SMS gateway received 短信网关收到 "
        f"{received['sms']:,}, SMTP server received 邮件服务器收到 {received['email']:,}"
    ]
    for code, r in result["reports"].items():
        out.append(
            f"  {code}: enrolled 进入 {r['enrolled']:,} (active 进行中 {r['active']:,}, completed 完成 "
            f"{r['completed']:,}, exited 退出 {r['exited']:,})"
        )
        steps = ", ".join(f"{step} {s['entered']:,}" for step, s in r["steps"].items() if s["entered"])
        out.append(f"    steps 步骤 (entered 进入): {steps}")
        for channel, s in r["sends"].items():
            out.append(
                f"    {channel}: sent 已发 {s['sent']:,}, delivered 已送达 {s['delivered']:,}, failed 失败 "
                f"{s['failed']:,}, suppressed 已拦截 {s['suppressed']:,}"
            )
        goal = r["goal"]
        line = f"    goal 目标: converted 转化 {goal['converted']:,}" + (
            "" if goal["rate"] is None else f" ({goal['rate']:.1%})"
        )
        if goal["holdout_size"]:
            uplift = "—" if goal["uplift"] is None else f"{goal['uplift']:+.1%}"
            ci = goal["ci95"]
            line += (
                f"; holdout 对照组 {goal['holdout_size']:,}, converted 转化 {goal['holdout_converted']:,}; "
                f"uplift 提升 {uplift}" + ("" if ci is None else f" (95% CI {ci[0]:+.1%} … {ci[1]:+.1%})")
            )
        out.append(line)
    out.append(
        f"  customers answered 客户回应: {result['answers']['replied_r']:,} replied R to an SMS 回复R退订, "
        f"{result['answers']['reviews']:,} reviewed their order 评价订单"
    )
    if result["suppressed_reasons"]:
        reasons = "; ".join(f"{reason} × {n:,}" for reason, n in sorted(result["suppressed_reasons"].items()))
        out.append(f"  suppressed because 拦截原因: {reasons}")
    return out


def as_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2, default=str)
