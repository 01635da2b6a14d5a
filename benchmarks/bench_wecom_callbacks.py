"""WeCom callback benchmark: receive throughput (signature check, decrypt, durable store) over
loopback HTTP, and the welcome-message latency (callback arrival → send_welcome_msg call), each
against a baseline measured in the same run.

Method. Callbacks are built before timing, encrypted and signed as WeCom does, with unique content.
`siyu serve --no-loader` runs in a process of its own on a fresh workspace (SQLite store), the brand
configured against the fake WeCom (`python -m siyu.fakes.wecom`, a process of its own too). This
process sends the requests with a minimal asyncio HTTP/1.1 client (keep-alive connections). Phases:

1. baseline: a trivial endpoint (same uvicorn) that reads the body and answers "success";
2. receive: the same `edit_external_contact` callbacks over --clients connections to
   `POST /wecom/callback/{brand}`; every one must be stored (`wecom_callbacks` rows = callbacks sent);
3. welcome, paced: --welcomes `add_external_contact` callbacks with fresh WelcomeCodes at
   --welcome-rate per second (people scanning codes); the latency siyu stores with each send
   (`wecom_welcome_sends.latency_ms`: callback arrival → the send_welcome_msg call), p50 / p99;
   then a burst: as many again at full speed (the worst case, reported, no target);
   baseline: the round trip of a `send_welcome_msg` call made directly to the fake.

Usage: .venv/bin/python benchmarks/bench_wecom_callbacks.py [--callbacks 20000] [--welcomes 1000] [--clients 32]
           [--welcome-rate 50]
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
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy

from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.wecom import xmlmsg
from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.settings import CorpSettings, do_configure
from siyu.wecom.welcome import do_set_welcome

TARGET_RATE = 1_000
TARGET_P99_MS = 1_000
BRAND = "bench"
TOKEN, AES_KEY, CORP = "bench-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wwbenchcorp"
SECRET = "bench-secret"
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
                f"POST /wecom/callback/{BRAND}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
                " HTTP/1.1\r\n"
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
            (int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
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


def paced(port: int, reqs: list[bytes], rate: float, connections: int = 16) -> int:
    """Send `reqs` at `rate` per second (adds arrive spread out, as people scan codes); failures."""

    async def run() -> int:
        pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for _ in range(connections):
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        start = time.perf_counter()

        async def one(i: int, req: bytes) -> int:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            reader, writer = await pool.get()
            writer.write(req)
            header = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(x.split(b":")[1]) for x in header.split(b"\r\n") if x.lower().startswith(b"content-length")), 0
            )
            answer = await reader.readexactly(length)
            pool.put_nowait((reader, writer))
            return 0 if header.startswith(b"HTTP/1.1 200") and answer == b"success" else 1

        failures = sum(await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs))))
        while not pool.empty():
            pool.get_nowait()[1].close()
        return failures

    return asyncio.run(run())


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
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--welcome-rate", type=float, default=50.0, help="adds per second in the paced phase")
    parser.add_argument("--work", type=Path, default=Path("/tmp/siyu-bench-wecom"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake_cmd = [
        sys.executable,
        "-m",
        "siyu.fakes.wecom",
        "--port",
        str(fake_port),
        "--corp-id",
        CORP,
        "--secret",
        SECRET,
    ]
    fake = subprocess.Popen(fake_cmd)
    wait_up(fake_url, fake, "/fake/welcomes")

    env = {**os.environ, "SIYU_HOME": str(args.work / "home"), "SIYU_ENV": "dev", "SIYU_WECOM_API_BASE": fake_url}
    env.pop("SIYU_DATABASE_URL", None)
    app = bootstrap(Settings(home=args.work / "home", wecom_api_base=fake_url, env="dev"))
    with app.store.begin(Actor.system("bench")) as uow:
        do_configure(uow, app.settings.pii_key, CorpSettings(BRAND, CORP, TOKEN, AES_KEY, SECRET))
        do_set_welcome(
            uow, BRAND, "", {"text": "{name}您好，欢迎关注", "link": {"title": "入会", "url": "https://m.example.com"}}
        )
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
    base = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "baseline_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
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
    server = subprocess.Popen(
        [sys.executable, "-m", "siyu", "serve", "--no-loader", "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        wait_up(f"http://127.0.0.1:{port}", server)
        seconds, failures = blast(port, receive_reqs, args.clients)
        assert failures == 0, f"{failures} callbacks not answered 200"
        result["siyu_per_s"] = round(args.callbacks / seconds)
        result["ratio"] = round(result["siyu_per_s"] / result["baseline_per_s"], 3)
        with app.store.unit_of_work() as s:
            stored = s.execute(sqlalchemy.text("SELECT count(*) FROM wecom_callbacks")).scalar()
        result["stored"] = stored
        assert stored == args.callbacks, stored

        # 3. welcome latency under a burst of adds
        contacts = [
            {"external_userid": f"wmwelcome{i:06d}", "userid": f"staff{i % 50}", "name": f"客户{i}"}
            for i in range(args.welcomes)
        ]
        codes = httpx.post(f"{fake_url}/fake/add_contact", json={"contacts": contacts}, timeout=60).json()[
            "welcome_codes"
        ]

        def add(i: int) -> dict[str, Any]:
            return edit(i) | {
                "ChangeType": "add_external_contact", "ExternalUserID": f"wmwelcome{i:06d}", "WelcomeCode": codes[i]
            }  # fmt: skip

        def latencies(prefix: str) -> list[float]:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with app.store.unit_of_work() as s:
                    rows = s.execute(
                        sqlalchemy.text(
                            "SELECT status, latency_ms FROM wecom_welcome_sends WHERE external_userid LIKE :p"
                        ),
                        {"p": prefix + "%"},
                    ).all()
                if len(rows) == args.welcomes and all(r[0] != "sending" for r in rows):
                    break
                time.sleep(0.2)
            return [float(r[1]) for r in rows if r[0] == "sent"]

        # 3a. paced: adds spread out at --welcome-rate, as people scan codes
        failures = paced(port, requests(crypto, args.welcomes, add), args.welcome_rate)
        assert failures == 0, failures
        paced_ms = latencies("wmwelcome")
        # 3b. burst: as many adds again at full speed, on top of nothing else (the worst case)
        contacts = [{"external_userid": f"wmburst{i:06d}", "userid": f"staff{i % 50}"} for i in range(args.welcomes)]
        codes[:] = httpx.post(f"{fake_url}/fake/add_contact", json={"contacts": contacts}, timeout=60).json()[
            "welcome_codes"
        ]
        burst_reqs = requests(crypto, args.welcomes, lambda i: add(i) | {"ExternalUserID": f"wmburst{i:06d}"})
        seconds, failures = blast(port, burst_reqs, args.clients)
        assert failures == 0, failures
        burst_ms = latencies("wmburst")
        received = httpx.get(f"{fake_url}/fake/welcomes").json()["count"]
        result["welcomes"] = {
            "sent": len(paced_ms) + len(burst_ms), "received_by_fake": received, "of": 2 * args.welcomes
        }  # fmt: skip
        result["welcome_paced_rate_per_s"] = args.welcome_rate
        result["welcome_p50_ms"] = percentile(paced_ms, 0.5)
        result["welcome_p99_ms"] = percentile(paced_ms, 0.99)
        result["welcome_burst_per_s"] = round(args.welcomes / seconds)
        result["welcome_burst_p50_ms"] = percentile(burst_ms, 0.5)
        result["welcome_burst_p99_ms"] = percentile(burst_ms, 0.99)
    finally:
        stop(server)

    client = WeComClient(fake_url, CORP, SECRET)
    direct = []
    direct_codes = httpx.post(
        f"{fake_url}/fake/add_contact",
        json={"contacts": [{"external_userid": f"wmd{i}", "userid": "s0"} for i in range(200)]},
    ).json()["welcome_codes"]
    for code in direct_codes:
        started = time.perf_counter()
        client.send_welcome_msg({"welcome_code": code, "text": {"content": "hi"}})
        direct.append((time.perf_counter() - started) * 1000)
    result["baseline_send_p50_ms"] = round(percentile(direct, 0.5), 2)
    result["baseline_send_p99_ms"] = round(percentile(direct, 0.99), 2)
    result["targets_met"] = result["siyu_per_s"] >= TARGET_RATE and result["welcome_p99_ms"] <= TARGET_P99_MS
    print(json.dumps(result, indent=2, ensure_ascii=False))
    stop(fake)


if __name__ == "__main__":
    main()
