"""Journey engine benchmark: N enrolments through trigger → wait 1 day → branch on a rule → send an
e-mail (to a real SMTP server, aiosmtpd) or an SMS (to the fake Aliyun gateway, uvicorn over HTTP),
in simulated time, each figure against a baseline measured in the same run.

Method. A fresh workspace gets N customers (CSV import, One-ID; every other one has an e-mail
address) and the journey below is applied; then one `visit` event per customer lands (after the
apply, so it triggers). Timed phases, each `run_due` at a simulated time (with `--workers 2`, two
workers at once, each with its own App, on one store):

1. enrol: the trigger scan enrols N customers (set-based insert);
2. day 0: every enrolment starts its wait (due in a day);
3. day 1: every wait ends, the branch rule (`identifier: email`) is evaluated once for the brand,
   and a message is queued per customer (siyu.messaging.enqueue.enqueue_many);
4. deliver: the dispatchers (`--workers` of them) send the first `--deliver` messages (default all).

Step transitions are step-log rows written (4 per customer: wait, branch, send, exit). Baselines:
plain Core inserts of N enrolment rows, 4N step-log rows and N outbound rows (executemany, no
logic); and raw smtplib over one connection plus raw signed SendSms posts through one httpx client
for as many messages as were delivered. Duplicate sends: Message-IDs the SMTP server got twice plus
SendSms requests the gateway got for an OutId it had already accepted (must be 0). Channel rate
limits are set to `--rate` per channel (the settings' defaults are 20–50/s). Peak memory is the
process's maximum RSS.

Usage: .venv/bin/python benchmarks/bench_journeys.py [--customers 100000] [--batch 500]
           [--send-batch 500] [--deliver M] [--workers 2] [--rate 5000]
           [--store-url postgresql://user:pw@host/db] [--work /tmp/siyu-bench-journeys]
Targets (2 cores): >= 2,000 step transitions/s and >= 500 messages/s with SQLite and PostgreSQL.

Measured: docs/journeys.md, "Performance".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import smtplib
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func, insert, select, text

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.fakes.aliyun_sms import FakeSmsGateway
from siyu.fakes.aliyun_sms import create_app as create_sms_app
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.journeys.apply import do_apply_journey
from siyu.journeys.models import Enrolment, EnrolmentStep
from siyu.journeys.runner import run_due
from siyu.messaging.channels.base import Outbound
from siyu.messaging.channels.sms import AliyunSmsChannel
from siyu.messaging.dispatch import Dispatcher
from siyu.messaging.models import OutboundMessage
from siyu.messaging.settings import ChannelSettings

TARGET = 2_000
TARGET_MESSAGES = 500
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
JOURNEY = """
brand: bj
code: bench
version: 1
name: {zh: 基准, en: Bench}
category: transactional
timezone: Asia/Shanghai
trigger: {event: {type: visit}}
templates:
  hi:
    sms: {template_code: SMS_HI}
    email: {subject: "你好 Hello", text: "欢迎 Welcome"}
steps:
  - {id: wait_1d, wait: {days: 1}}
  - id: has_email
    branch: {rule: {identifier: email}, then: mail, else: text}
  - {id: mail, send: {channel: email, template: hi}, next: done}
  - {id: text, send: {channel: sms, template: hi}}
  - {id: done, exit: }
"""


def _store_url(args: argparse.Namespace, work: Path) -> str:
    if not args.store_url:
        return f"sqlite:///{work / 'store.db'}"
    name = f"siyu_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        args.store_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return args.store_url.rsplit("/", 1)[0] + "/" + name


def _write(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "customers.csv").open("w", encoding="utf-8") as f:
        f.write("brand,source,source_customer_id,phone,email\n")
        for i in range(n):  # every other customer has an e-mail address: half e-mail, half SMS
            f.write(f"bj,crm,b{i:07d},139{i:08d}," + (f"b{i}@example.com" if i % 2 == 0 else "") + "\n")


def _events(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "events.csv").open("w", encoding="utf-8") as f:
        f.write("brand,source,event_id,type,source_customer_id,occurred_at,properties\n")
        for i in range(n):
            f.write(f"bj,crm,v{i:07d},visit,b{i:07d},2026-03-02T09:00:00+08:00,\n")


def _baseline(app, n: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds to insert the rows the journey writes (enrolments, 4 step rows each, one message),
    plain Core executemany, 1,000 enrolments per transaction."""
    e, st, m = Enrolment.__table__, EnrolmentStep.__table__, OutboundMessage.__table__
    started = time.perf_counter()
    for lo in range(0, n, 1000):
        hi = min(n, lo + 1000)
        with app.store.begin(Actor.system("bench"), now=T0) as uow:
            conn = uow.session.connection()
            ids = conn.execute(
                insert(e).returning(e.c.id),
                [
                    {"journey": "baseline", "version": 1, "brand": "bj", "customer_id": f"x{i}", "entry_key": "k",
                     "status": "completed", "holdout": False, "step_id": None, "step_seq": 3, "due_at": None,
                     "context": "{}", "entered_at": T0}
                    for i in range(lo, hi)
                ],
            ).scalars().all()  # fmt: skip
            conn.execute(
                insert(st),
                [{"enrolment_id": e, "seq": s, "journey": "baseline", "step_id": f"s{s}", "entered_at": T0,
                  "left_at": T0, "outcome": "x"} for e in ids for s in (1, 2, 3, 4)],
            )  # fmt: skip
            conn.execute(
                insert(m),
                [{"idempotency_key": f"baseline:{e}", "brand": "bj", "customer_id": f"x{e}", "channel": "sms",
                  "category": "transactional", "journey": "baseline", "payload": "{}", "status": "sent",
                  "not_before": T0, "attempts": 0, "created_at": T0, "updated_at": T0} for e in ids],
            )  # fmt: skip
    return time.perf_counter() - started


@dataclass
class Sink:
    """The SMTP sink (aiosmtpd): the Message-ID of every message accepted."""

    ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        head = envelope.content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        mid = next((h.split(":", 1)[1].strip() for h in head.split("\r\n") if h.lower().startswith("message-id:")), "")
        with self.lock:
            self.ids.append(mid)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _servers() -> Iterator[tuple[Sink, int, FakeSmsGateway, str]]:
    """A real SMTP server and the fake Aliyun SMS gateway (uvicorn, HTTP), in this process."""
    sink, smtp_port = Sink(), _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    gateway = FakeSmsGateway()
    config = uvicorn.Config(create_sms_app(gateway), host="127.0.0.1", port=_free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield sink, smtp_port, gateway, f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        controller.stop()


def _send_baseline(channels: ChannelSettings, emails: int, sms: int) -> float:
    """Seconds to send the same number of messages with no store and no logic: raw smtplib over one
    connection, raw signed SendSms posts through one pooled httpx client."""
    sms_channel = AliyunSmsChannel(channels)
    started = time.perf_counter()
    with smtplib.SMTP(channels.smtp_host, channels.smtp_port) as smtp:
        for i in range(emails):
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = channels.smtp_from, f"b{i}@example.com", "你好 Hello"
            mail["Message-ID"] = f"<baseline.{i}@siyu.local>"
            mail.set_content("欢迎 Welcome")
            smtp.send_message(mail)
    with httpx.Client(timeout=10) as client:
        for i in range(sms):
            out = Outbound(10**9 + i, f"baseline:{i}", "bj", None, "sms", "transactional",
                           {"phone": f"139{i:08d}", "template_code": "SMS_HI"})  # fmt: skip
            answer = client.post(channels.sms_api_base + "/", data=sms_channel.params(out)).json()
            assert answer["Code"] == "OK", answer
    return time.perf_counter() - started


def _counts(session: Any, column: Any) -> dict[str, int]:
    return {k: int(v) for k, v in session.execute(select(column, func.count()).group_by(column)).all()}


def _in_workers(apps: list[App], work: Callable[[App], object]) -> list[object]:
    """Run `work` once per app, each in its own thread (own store pool, own engine connection)."""
    if len(apps) == 1:  # in this thread: cProfile sees it
        return [work(apps[0])]
    results: list[object] = [None] * len(apps)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            results[k] = work(apps[k])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(apps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="enrolments per worker transaction")
    parser.add_argument("--send-batch", type=int, default=500, help="messages claimed per dispatcher batch")
    parser.add_argument("--rate", type=float, default=5_000.0, help="channel rate limit, messages/s per channel")
    parser.add_argument("--workers", type=int, default=1, help="journey workers and dispatchers running at once")
    parser.add_argument(
        "--deliver", type=int, default=None,
        help="messages the dispatchers send in the timed delivery phase (default: all); the rest stay queued",
    )  # fmt: skip
    parser.add_argument("--store-url", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/siyu-bench-journeys"))
    args = parser.parse_args()
    n, work = args.customers, args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    url = _store_url(args, work)
    with _servers() as (sink, smtp_port, gateway, sms_url):
        channels = ChannelSettings(
            smtp_port=smtp_port, sms_api_base=sms_url, sms_access_key_id=gateway.access_key_id,
            sms_access_key_secret=gateway.access_key_secret, sms_sign_name="siyu",
            messaging_batch=args.send_batch, messaging_rate={"sms": args.rate, "email": args.rate},
            messaging_lease_seconds=900,  # a batch of 500 at tens of messages/s under load outlasts 60 s
        )  # fmt: skip
        settings = Settings(home=work / "home", database_url=url, channels=channels)
        app = bootstrap(settings)
        setup = time.perf_counter()
        _write(work / "people", n)
        import_path(app, work / "people")
        run_resolve(app)
        (work / "bench.yaml").write_text(JOURNEY, encoding="utf-8")
        do_apply_journey(app, work / "bench.yaml", actor=Actor.system("bench"), at=T0)
        _events(work / "events", n)
        import_path(app, work / "events")
        setup_s = time.perf_counter() - setup
        apps = [app] + [bootstrap(settings) for _ in range(args.workers - 1)]

        phases: dict[str, float] = {}
        for name, at in (("enrol", T0), ("day0", T0), ("day1", T0 + dt.timedelta(days=1, minutes=1))):
            started = time.perf_counter()
            _in_workers(apps, lambda a, at=at: run_due(a, at, batch=args.batch))  # type: ignore[misc]
            phases[name] = time.perf_counter() - started
        with app.store.unit_of_work() as s:
            logged = int(s.scalar(select(func.count()).select_from(EnrolmentStep)) or 0)
            by_channel = _counts(s, OutboundMessage.channel)
        queued = sum(by_channel.values())
        started = time.perf_counter()
        share = None if args.deliver is None else -(-args.deliver // len(apps))
        dispatched = _in_workers(apps, lambda a: Dispatcher(a).run_once(max_messages=share))
        sent = sum(d.sent for d in dispatched)  # type: ignore[attr-defined]
        deliver_s = time.perf_counter() - started
        with app.store.unit_of_work() as s:
            statuses = _counts(s, OutboundMessage.status)
        emails, texts = len(sink.ids), len(gateway.received)
        duplicates = (emails - len(set(sink.ids))) + (gateway.requests - len({r["OutId"] for r in gateway.received}))
        send_baseline_s = _send_baseline(channels, emails, texts)
    seconds = sum(phases.values())
    baseline = _baseline(app, n)
    transitions_per_s = logged / seconds
    baseline_transitions = 4 * n / baseline
    messages_per_s = (emails + texts) / deliver_s
    baseline_messages = (emails + texts) / send_baseline_s
    result = {
        "store": "postgresql" if url.startswith("postgresql") else "sqlite",
        "customers": n,
        "batch": args.batch,
        "send_batch": args.send_batch,
        "delivered_sample": args.deliver,
        "workers": args.workers,
        "rate_limit_per_channel": args.rate,
        "setup_s": round(setup_s, 1),
        "phases_s": {**{k: round(v, 2) for k, v in phases.items()}, "deliver": round(deliver_s, 2)},
        "step_transitions": logged,
        "messages_queued": by_channel,
        "messages_delivered": {"email": emails, "sms": texts},
        "message_statuses": statuses,
        "duplicate_sends": duplicates,
        "transitions_per_s": round(transitions_per_s),
        "baseline_transitions_per_s": round(baseline_transitions),
        "transitions_ratio": round(transitions_per_s / baseline_transitions, 3),
        "messages_per_s": round(messages_per_s),
        "baseline_messages_per_s": round(baseline_messages),
        "messages_ratio": round(messages_per_s / baseline_messages, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "targets": {"transitions_per_s": TARGET, "messages_per_s": TARGET_MESSAGES},
        "met": transitions_per_s >= TARGET and messages_per_s >= TARGET_MESSAGES,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    assert logged == 4 * n and queued == n, (logged, queued)
    assert duplicates == 0 and emails + texts == sent, (emails, texts, sent, duplicates)
    assert args.deliver is not None or sent == n, (sent, n)


if __name__ == "__main__":
    main()
