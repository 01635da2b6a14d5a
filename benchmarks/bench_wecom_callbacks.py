"""WeCom callback benchmark: receive throughput (signature check, decrypt, durable store) over
loopback HTTP, and the welcome-message latency (callback arrival → send_welcome_msg call), each
against a baseline measured in the same run.

Method. Callbacks are built before timing, encrypted and signed as WeCom does, with unique content.
`siyu serve --no-loader` runs in a process of its own on a fresh workspace (SQLite store), the brand
configured against the local fake WeCom (a thread of this process, which also sends the requests:
a minimal asyncio HTTP/1.1 client with --clients keep-alive connections). Phases:

1. baseline: a trivial endpoint (same uvicorn settings) that reads the body and answers "success";
2. receive: the same number of `edit_external_contact` callbacks to `POST /wecom/callback/{brand}`;
   every one must be stored (`wecom_callbacks` rows = callbacks sent);
3. welcome: --welcomes `add_external_contact` callbacks with fresh WelcomeCodes at full speed; the
   latencies siyu stores with each send (`wecom_welcome_sends.latency_ms`), p50 / p99; baseline:
   the round trip of a `send_welcome_msg` call made directly to the fake.

Usage: .venv/bin/python benchmarks/bench_wecom_callbacks.py [--callbacks 20000] [--welcomes 1000] [--clients 8]
Targets (2 cores): >= 1,000 callbacks/s stored; welcome p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.fakes.wecom import FakeWeCom, create_fake_app
from siyu.wecom import xmlmsg
from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.settings import CorpSettings, do_configure
from siyu.wecom.welcome import do_set_welcome

TARGET_RATE = 1_000
TARGET_P99_MS = 1_000
BRAND = "bench"
TOKEN, AES_KEY, CORP = "bench-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wwbenchcorp"
SECRET = "bench-secret"  # noqa: S105 - the fake's
BASELINE_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
app = FastAPI()
@app.post("/wecom/callback/{brand}")
async def receive(brand: str, request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("success")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def requests(crypto: WeComCrypto, n: int, make: Any) -> list[bytes]:
    """Whole HTTP requests (request line, headers, body), one per callback."""
    out = []
    for i in range(n):
        timestamp, nonce = str(int(time.time())), f"n{i}"
        ciphertext, signature = crypto.seal(xmlmsg.render(make(i)), timestamp, nonce)
        body = xmlmsg.encrypted_envelope(CORP, ciphertext)
        out.append(
            (
                f"POST /wecom/callback/{BRAND}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce} HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return out


async def _connection(port: int, queue: list[bytes]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failures = 0
    while queue:
        writer.write(queue.pop())
        header = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        answer = await reader.readexactly(length)
        if not header.startswith(b"HTTP/1.1 200") or answer != b"success":
            failures += 1
    writer.close()
    return failures


def blast(port: int, reqs: list[bytes], clients: int) -> tuple[float, int]:
    """(seconds, failures) to send every request over `clients` keep-alive connections."""
    queue = list(reversed(reqs))

    async def run() -> int:
        return sum(await asyncio.gather(*(_connection(port, queue) for _ in range(clients))))

    started = time.perf_counter()
    failures = asyncio.run(run())
    return time.perf_counter() - started, failures


def wait_up(url: str, proc: subprocess.Popen[bytes], path: str = "/health") -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--welcomes", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/siyu-bench-wecom"))  # noqa: S108
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    fake = FakeWeCom(corp_id=CORP, secret=SECRET)
    fake_port = free_port()
    fake_server = uvicorn.Server(uvicorn.Config(create_fake_app(fake), port=fake_port, log_level="warning"))
    threading.Thread(target=fake_server.run, daemon=True).start()
    while not fake_server.started:
        time.sleep(0.05)
    fake_url = f"http://127.0.0.1:{fake_port}"

    env = {**os.environ, "SIYU_HOME": str(args.work / "home"), "SIYU_ENV": "dev", "SIYU_WECOM_API_BASE": fake_url}
    env.pop("SIYU_DATABASE_URL", None)
    app = bootstrap(Settings(home=args.work / "home", wecom_api_base=fake_url, env="dev"))
    with app.store.begin(Actor.system("bench")) as uow:
        do_configure(uow, app.settings.pii_key, CorpSettings(BRAND, CORP, TOKEN, AES_KEY, SECRET))
        do_set_welcome(uow, BRAND, "", {"text": "{name}您好，欢迎关注", "link": {"title": "入会", "url": "https://m.example.com"}})
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP)
    now = int(time.time())

    def edit(i: int) -> dict[str, Any]:
        return {
            "ToUserName": CORP, "FromUserName": "sys", "CreateTime": now, "MsgType": "event",
            "Event": "change_external_contact", "ChangeType": "edit_external_contact", "UserID": f"staff{i % 50}",
            "ExternalUserID": f"wmbench{i:08d}",
        }  # fmt: skip

    receive_reqs = requests(crypto, args.callbacks, edit)
    result: dict[str, Any] = {"callbacks": args.callbacks, "clients": args.clients}

    # 1. baseline: the trivial endpoint
    (args.work / "baseline_app.py").write_text(BASELINE_APP)
    port = free_port()
    base = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uvicorn", "baseline_app:app", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=args.work,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}", base, "/docs")
        blast(port, receive_reqs[:500], args.clients)  # warm-up
        seconds, failures = blast(port, receive_reqs, args.clients)
        result["baseline_per_s"] = round(args.callbacks / seconds)
        assert failures == 0, failures
    finally:
        stop(base)

    # 2. receive: siyu
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "siyu", "serve", "--no-loader", "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        wait_up(f"http://127.0.0.1:{port}", server)
        seconds, failures = blast(port, receive_reqs, args.clients)
        assert failures == 0, f"{failures} callbacks not answered 200"
        result["siyu_per_s"] = round(args.callbacks / seconds)
        result["ratio"] = round(result["siyu_per_s"] / result["baseline_per_s"], 3)
        with app.store.unit_of_work() as s:
            stored = s.execute(__import__("sqlalchemy").text("SELECT count(*) FROM wecom_callbacks")).scalar()
        result["stored"] = stored
        assert stored == args.callbacks, stored

        # 3. welcome latency under a burst of adds
        codes = [fake.add_contact(f"wmwelcome{i:06d}", f"staff{i % 50}", name=f"客户{i}") for i in range(args.welcomes)]

        def add(i: int) -> dict[str, Any]:
            return edit(i) | {
                "ChangeType": "add_external_contact", "ExternalUserID": f"wmwelcome{i:06d}", "WelcomeCode": codes[i]
            }  # fmt: skip

        seconds, failures = blast(port, requests(crypto, args.welcomes, add), args.clients)
        assert failures == 0, failures
        deadline = time.monotonic() + 60
        while len(fake.welcomes) < args.welcomes and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        with app.store.unit_of_work() as s:
            rows = s.execute(
                __import__("sqlalchemy").text("SELECT status, latency_ms FROM wecom_welcome_sends")
            ).all()
        latencies = [float(r[1]) for r in rows if r[0] == "sent"]
        result["welcomes"] = {"sent": len(latencies), "received_by_fake": len(fake.welcomes), "of": args.welcomes}
        result["welcome_p50_ms"] = percentile(latencies, 0.5)
        result["welcome_p99_ms"] = percentile(latencies, 0.99)
    finally:
        stop(server)

    client = WeComClient(fake_url, CORP, SECRET)
    direct = []
    for i in range(200):
        code = fake.add_contact(f"wmdirect{i}", "staff0")
        started = time.perf_counter()
        client.send_welcome_msg({"welcome_code": code, "text": {"content": "hi"}})
        direct.append((time.perf_counter() - started) * 1000)
    result["baseline_send_p50_ms"] = round(percentile(direct, 0.5), 2)
    result["baseline_send_p99_ms"] = round(percentile(direct, 0.99), 2)
    result["targets_met"] = result["siyu_per_s"] >= TARGET_RATE and result["welcome_p99_ms"] <= TARGET_P99_MS
    print(json.dumps(result, indent=2, ensure_ascii=False))
    fake_server.should_exit = True


if __name__ == "__main__":
    main()
