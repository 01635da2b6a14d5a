"""Exactly once under SIGKILL: real dispatcher processes are killed at random moments while they
send to a real SMTP server (aiosmtpd, this process) and the fake Aliyun gateway over HTTP.

What is guaranteed, and asserted (docs/messaging.md, "exactly once"):
- nothing is lost: every message ends `sent`, each idempotency key reached its provider;
- SMS (OutId, which the gateway deduplicates): exactly one accepted message per key;
- e-mail (SMTP has no idempotency): a duplicate only for a message whose dispatcher was killed
  between the server's acceptance and our commit; such a row is marked `resent_after_lease`, so
  every duplicate is one of those, and there are at most as many as kills.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from fixtures.messaging import sms_gateway, smtp_server
from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.messaging.dispatch import RESENT
from siyu.messaging.enqueue import SendRequest, do_enqueue
from siyu.messaging.models import OutboundMessage

N = 20  # per channel

# The dispatcher loop of `siyu messages send`, without the CLI's imports of every command group
# (seconds per process on a loaded machine; the kills need many processes).
CHILD = """
import datetime as dt, sys, threading
from types import SimpleNamespace
from siyu.config import Settings
from siyu.messaging.dispatch import Dispatcher
from siyu.store.db import open_store

settings = Settings()
app = SimpleNamespace(settings=settings, store=open_store(settings.store_url), clock=lambda: dt.datetime.now(dt.UTC))
dispatcher = Dispatcher(app)
if sys.argv[1:] == ["--once"]:
    print(dispatcher.run_once().as_dict())
else:
    dispatcher.run(threading.Event(), poll=0.05)
"""


def test_killed_dispatchers_send_each_message_once(store_url: str, home: Path, tmp_path: Path) -> None:
    rng = random.Random(20261203)
    with smtp_server() as (box, port), sms_gateway() as (gateway, url):
        box.delay = gateway.delay = 0.02
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "SIYU_HOME": str(home), "SIYU_DATABASE_URL": store_url,
            "SIYU_SMTP_HOST": "127.0.0.1", "SIYU_SMTP_PORT": str(port), "SIYU_SMTP_FROM": "news@brand.cn",
            "SIYU_SMS_API_BASE": url, "SIYU_SMS_ACCESS_KEY_ID": "fake-id", "SIYU_SMS_ACCESS_KEY_SECRET": "fake-secret",
            "SIYU_SMS_SIGN_NAME": "思域", "SIYU_MESSAGING_LEASE_SECONDS": "1", "SIYU_MESSAGING_BATCH": "4",
            "SIYU_MESSAGING_RATE": "{}",
        }  # fmt: skip
        app = bootstrap(Settings(home=home, database_url=store_url))
        with app.store.begin(Actor.system("test")) as uow:
            for i in range(N):
                for channel, content in (
                    ("email", {"to": f"p{i}@example.com", "subject": "订单 {{ n }}", "text": "第 {{ n }} 单已发货"}),
                    ("sms", {"phone": f"139{i:08d}", "template_code": "SMS_1", "params": {"n": "{{ n }}"}}),
                ):
                    do_enqueue(uow, SendRequest("demo", f"c{i}", channel, "transactional", f"order:{i}:{channel}",
                                                content, {"n": i}), app=app)  # fmt: skip

        def received() -> int:
            return len(box.messages) + gateway.requests

        script = tmp_path / "dispatcher.py"
        script.write_text(CHILD)
        command = [sys.executable, str(script)]
        kills = 0
        while received() < 2 * N - 10 and kills < 4:
            child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            target = received() + rng.randint(2, 8)
            deadline = time.monotonic() + 60
            while child.poll() is None and received() < target:
                assert time.monotonic() < deadline, "the dispatcher made no progress"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.04))  # somewhere in claim → send → record
            assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
        time.sleep(1.1)  # the last victim's leases expire
        done = subprocess.run([*command, "--once"], env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        assert kills >= 3

        with app.store.unit_of_work() as s:
            statuses = dict(
                s.execute(select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)).all()
            )
            resent = {
                r.idempotency_key for r in s.scalars(select(OutboundMessage).where(OutboundMessage.reason == RESENT))
            }
            keys_by_mid = {}
            from siyu.messaging.channels.email import message_id

            for r in s.scalars(select(OutboundMessage).where(OutboundMessage.channel == "email")):
                keys_by_mid[message_id(r.idempotency_key, "news@brand.cn")] = r.idempotency_key
        assert statuses == {"sent": 2 * N}
        # SMS: one accepted message per key, though some were sent again after a kill
        out_ids = [r["OutId"] for r in gateway.received]
        assert len(out_ids) == len(set(out_ids)) == N
        # e-mail: every key arrived; a duplicate only where a kill fell between acceptance and commit
        arrivals = collections.Counter(box.ids())
        assert set(arrivals) == set(keys_by_mid)
        duplicated = {keys_by_mid[mid] for mid, n in arrivals.items() if n > 1}
        assert duplicated <= resent
        assert sum(arrivals.values()) - N <= kills
        print(f"kills={kills} sms_requests={gateway.requests} emails={sum(arrivals.values())} "
              f"duplicates={sorted(duplicated)} resent_rows={len(resent)}")  # fmt: skip
        app.store.engine.dispose()
