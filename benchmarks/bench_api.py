"""HTTP ingest benchmark: Segment `/v1/batch` throughput on loopback and the time from acceptance to
visibility in the lake, against a ceiling measured in the same run: a no-op FastAPI endpoint (same
uvicorn settings) receiving the same requests.

Method. The request bodies (Segment `track` messages with realistic properties and context, unique
messageIds, --batch messages a request) are built before timing, in a client process of its own
so the server keeps its core. --clients connections with keep-alive send them as fast as answers
come back (a minimal asyncio HTTP/1.1 client by default: it costs the server's cores least;
`--client httpx` uses httpx). The first --warmup requests are sent untimed. Phases:

1. ceiling: the no-op app (`POST /v1/batch` reads the body, answers `{"success": true}`);
2. siyu: `siyu serve` (loader in-process) on a fresh workspace (SQLite store, or a fresh database on
   the PostgreSQL server of --store-url), an ingest key from `siyu keys create`;
3. visibility: wait until the inbox is empty; per message, acceptance (`inbox.received_at`) to the
   lake commit (`inbox.loaded_at`), p50 / p95; then the lake `events` table must hold every
   messageId exactly once.

Usage: .venv/bin/python benchmarks/bench_api.py [--events 200000] [--batch 100] [--clients 4]
           [--workers 1] [--worker] [--store-url postgresql://user:pw@host/db] [--work /tmp/siyu-bench-api]
Targets (2 cores): >= 20,000 events/s accepted, >= 50 % of the no-op ceiling, p95 visibility <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

TARGET_EPS = 20_000
TARGET_RATIO = 0.5
TARGET_P95 = 5.0
BEFORE = "10,520 events/s = 2.5 % of the ceiling"  # issue 19, before the pydantic-free batch check
EVENT_NAMES = ("Product Viewed", "Product Added", "Product Clicked", "Checkout Started", "Coupon Applied")
CATEGORIES = ("护肤 skincare", "彩妆 makeup", "香水 fragrance", "个护 body care")
AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN",
    "Mozilla/5.0 (Linux; Android 14; 22081212C) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
    "Mobile Safari/537.36",
)


# -- request bodies -------------------------------------------------------------------------------


def build_bodies(events: int, batch: int, seed: int) -> list[bytes]:
    """Segment batches of `track` messages, as the analytics SDKs send them; messageIds unique."""
    import orjson

    rng = random.Random(seed)
    bodies = []
    for start in range(0, events, batch):
        messages = []
        for i in range(start, min(start + batch, events)):
            user = rng.randrange(20_000)
            sku = rng.randrange(500)
            path = f"/pages/product/detail?sku={sku}"
            messages.append(
                {
                    "type": "track",
                    "messageId": f"bench-{seed}-{i:09d}",
                    "userId": f"u{user:06d}",
                    "anonymousId": f"anon-{user:06d}-{user * 7919 % 100_000:05d}",
                    "event": rng.choice(EVENT_NAMES),
                    "timestamp": f"2026-06-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}.{i % 1000:03d}Z",
                    "properties": {
                        "product_id": f"sku-{sku:04d}",
                        "sku": f"SK{sku:06d}",
                        "name": f"精华液 Serum No.{sku}",
                        "category": rng.choice(CATEGORIES),
                        "price": round(rng.uniform(39, 1299), 2),
                        "currency": "CNY",
                        "quantity": rng.randint(1, 3),
                        "url": f"https://shop.example.cn{path}",
                    },
                    "context": {
                        "library": {"name": "analytics-miniprogram", "version": "2.3.1"},
                        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                        "userAgent": rng.choice(AGENTS),
                        "locale": "zh-CN",
                        "page": {"path": path, "title": "商品详情", "referrer": "https://shop.example.cn/pages/index"},
                    },
                }
            )
        bodies.append(orjson.dumps({"batch": messages, "sentAt": "2026-06-28T12:00:00.000Z"}))
    return bodies


# -- clients --------------------------------------------------------------------------------------


async def _raw_client(
    host: str, port: int, key: str, bodies: list[bytes], queue: list[int], latencies: list[float]
) -> int:
    """HTTP/1.1 keep-alive on one connection, requests pre-rendered: near-zero client cost."""
    import base64

    auth = base64.b64encode(f"{key}:".encode()).decode()
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/json\r\nUser-Agent: bench_api\r\n"
    )
    reader, writer = await asyncio.open_connection(host, port)
    failures = 0
    while queue:
        body = bodies[queue.pop()]
        started = time.perf_counter()
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        header = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if not header.startswith(b"HTTP/1.1 200") or b'"success":true' not in answer.replace(b" ", b""):
            failures += 1
            print(header.decode(errors="replace"), answer[:300], file=sys.stderr)
    writer.close()
    return failures


async def _httpx_client(url: str, key: str, bodies: list[bytes], queue: list[int], latencies: list[float]) -> int:
    import httpx

    failures = 0
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, auth=(key, ""), headers=headers, timeout=60) as http:
        while queue:
            body = bodies[queue.pop()]
            started = time.perf_counter()
            r = await http.post("/v1/batch", content=body)
            latencies.append(time.perf_counter() - started)
            if r.status_code != 200:
                failures += 1
                print(r.status_code, r.text[:300], file=sys.stderr)
    return failures


def client_phase(args: argparse.Namespace) -> dict[str, Any]:
    bodies = build_bodies(args.events, args.batch, args.seed)
    events = [len(json.loads(b)["batch"]) for b in bodies]
    host, port = args.url.removeprefix("http://").split(":")
    latencies: list[float] = []

    async def send(indexes: list[int], clients: int) -> int:
        queue = list(reversed(indexes))
        if args.client == "httpx":
            tasks = [_httpx_client(args.url, args.key, bodies, queue, latencies) for _ in range(clients)]
        else:
            tasks = [_raw_client(host, int(port), args.key, bodies, queue, latencies) for _ in range(clients)]
        return sum(await asyncio.gather(*tasks))

    warmup = list(range(min(args.warmup, len(bodies))))
    failures = asyncio.run(send(warmup, 1))
    latencies.clear()
    timed = list(range(len(warmup), len(bodies)))
    started = time.perf_counter()
    failures += asyncio.run(send(timed, args.clients))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(timed),
        "events": sum(events[i] for i in timed),
        "seconds": seconds,
        "failures": failures,
        "latency_p50_ms": 1000 * _percentile(latencies, 0.50),
        "latency_p95_ms": 1000 * _percentile(latencies, 0.95),
    }


# -- the no-op ceiling ----------------------------------------------------------------------------


def noop_app() -> FastAPI:
    """The least any ingest endpoint does: route the request, read the body, answer success."""
    api = FastAPI()

    @api.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/v1/batch")
    async def batch(request: Request) -> dict[str, bool]:
        await request.body()
        return {"success": True}

    return api


def noop_phase(args: argparse.Namespace) -> None:
    import uvicorn

    # The settings of `siyu serve` (siyu.cli.serve), minus siyu.
    uvicorn.run(
        "bench_api:noop_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
        app_dir=str(Path(__file__).parent),
    )


# -- orchestration --------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (Linux /proc)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found] + [g for c in found for g in _children(int(c))]


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_clients(args: argparse.Namespace, url: str, key: str, server: subprocess.Popen[bytes]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", "client", "--url", url, "--key", key, "--events", str(args.events),
           "--batch", str(args.batch), "--clients", str(args.clients), "--warmup", str(args.warmup),
           "--seed", str(args.seed), "--client", args.client]  # fmt: skip
    cpu = _cpu_seconds(server.pid)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["server_cpu_s"] = _cpu_seconds(server.pid) - cpu
    result["events_per_s"] = result["events"] / result["seconds"]
    if result["failures"]:
        print(done.stderr[-2000:], file=sys.stderr)
    return result


def ceiling(args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    cmd = [sys.executable, __file__, "--phase", "noop", "--port", str(port), "--workers", str(args.workers)]
    server = subprocess.Popen(cmd, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_up(url, server)
        return run_clients(args, url, "noop-key", server)
    finally:
        _stop(server)


def _fresh_database(url: str) -> tuple[str, Any]:
    """A new database on the PostgreSQL server of `url` (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    name = f"siyu_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.rsplit("/", 1)[0] + "/" + name, drop


def siyu(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(args.work) / "home"
    shutil.rmtree(home, ignore_errors=True)
    drop = None
    store_url = f"sqlite:///{home / 'siyu.db'}"
    if args.store_url:
        store_url, drop = _fresh_database(args.store_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env |= {"SIYU_HOME": str(home), "SIYU_DATABASE_URL": store_url, "SIYU_API_RATE_LIMIT": "1000000", "SIYU_ENV": "dev"}
    siyu_cli = [sys.executable, "-m", "siyu"]
    try:
        created = subprocess.run(
            [*siyu_cli, "keys", "create", "--brand", "demo", "--scope", "ingest", "--source", "app", "--json"],
            env=env, check=True, capture_output=True, text=True, cwd=args.work,
        )  # fmt: skip
        key = json.loads(created.stdout)["key"]
        port = _free_port()
        cmd = [*siyu_cli, "serve", "--port", str(port), "--workers", str(args.workers), "--log-level", "warning"]
        if args.worker:
            cmd.append("--no-loader")
        server = subprocess.Popen(cmd, env=env, cwd=args.work, start_new_session=True)
        worker = None
        if args.worker:
            worker = subprocess.Popen([*siyu_cli, "worker"], env=env, cwd=args.work, start_new_session=True,
                                      stdout=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_up(url, server)
            result = run_clients(args, url, key, server)
            posted = time.perf_counter()
            result |= _visibility(home, store_url, args.events, timeout=args.drain_timeout)
            result["drain_s"] = time.perf_counter() - posted
        finally:
            _stop(server)
            if worker:
                _stop(worker)
        result |= _lake_check(home, store_url, args.events)
        return result
    finally:
        if drop:
            drop()


def _visibility(home: Path, store_url: str, events: int, timeout: float) -> dict[str, Any]:
    """Wait for the loader to empty the inbox; then acceptance → lake commit per message."""
    from sqlalchemy import func, select

    from siyu.store.db import make_engine
    from siyu.store.models import InboxMessage

    engine = make_engine(store_url)
    deadline = time.monotonic() + timeout
    pending = -1
    with engine.connect() as c:
        while time.monotonic() < deadline:
            pending = c.execute(
                select(func.count()).select_from(InboxMessage).where(InboxMessage.loaded_at.is_(None))
            ).scalar_one()
            c.rollback()
            if pending == 0:
                break
            time.sleep(0.2)
        rows = c.execute(select(InboxMessage.received_at, InboxMessage.loaded_at)).all()
    engine.dispose()
    seconds = sorted((loaded - received).total_seconds() for received, loaded in rows if loaded is not None)
    return {
        "inbox_messages": len(rows),
        "inbox_pending": pending,
        "visibility_p50_s": _percentile(seconds, 0.50),
        "visibility_p95_s": _percentile(seconds, 0.95),
        "visibility_max_s": seconds[-1] if seconds else float("nan"),
    }


def _lake_check(home: Path, store_url: str, events: int) -> dict[str, Any]:
    from siyu.bootstrap import bootstrap
    from siyu.config import Settings

    app = bootstrap(Settings(home=home, database_url=store_url))
    table = app.engine.table("events")
    if table is None:
        return {"lake_events": 0, "lake_distinct": 0}
    counted = app.engine.to_arrow(table.aggregate(n=table.count(), distinct=table.event_id.nunique()))
    app.store.engine.dispose()
    return {"lake_events": counted["n"][0].as_py(), "lake_distinct": counted["distinct"][0].as_py()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events in all (warm-up included)")
    parser.add_argument("--batch", type=int, default=100, help="events per /v1/batch request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive connections")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--warmup", type=int, default=20, help="requests sent untimed first")
    parser.add_argument("--workers", type=int, default=1, help="server processes (both servers)")
    parser.add_argument("--worker", action="store_true", help="the loader as `siyu worker`, not in the server")
    parser.add_argument("--store-url", help="PostgreSQL server URL: the benchmark uses a fresh database on it")
    parser.add_argument("--work", default="/tmp/siyu-bench-api")
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-ceiling", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "client":
        print(json.dumps(client_phase(args)))
        return
    if args.phase == "noop":
        noop_phase(args)
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    setup = f"{args.events:,} events, {args.batch} a request, {args.clients} clients ({args.client}), "
    store = "PostgreSQL" if args.store_url else "SQLite"
    setup += f"{args.workers} server process(es), {os.cpu_count()} cores, store {store}, "
    setup += "loader in `siyu worker`" if args.worker else "loader in the server"
    print(setup, flush=True)
    floor = None if args.skip_ceiling else ceiling(args)
    if floor:
        print(f"ceiling (no-op FastAPI): {floor['events_per_s']:,.0f} events/s, {floor['requests']} requests in "
              f"{floor['seconds']:.2f} s, latency p50 {floor['latency_p50_ms']:.1f} ms p95 "
              f"{floor['latency_p95_ms']:.1f} ms, server CPU {floor['server_cpu_s']:.1f} s, {floor['failures']} failed",
              flush=True)  # fmt: skip
    real = siyu(args)
    print(f"siyu serve:              {real['events_per_s']:,.0f} events/s, {real['requests']} requests in "
          f"{real['seconds']:.2f} s, latency p50 {real['latency_p50_ms']:.1f} ms p95 {real['latency_p95_ms']:.1f} ms, "
          f"server CPU {real['server_cpu_s']:.1f} s, {real['failures']} failed")  # fmt: skip
    ok = real["events_per_s"] >= TARGET_EPS
    print(f"  accepted: {real['events_per_s']:,.0f} events/s (target ≥ {TARGET_EPS:,}) {'ok' if ok else 'MISSED'};"
          f" before issue 19: {BEFORE}")  # fmt: skip
    if floor:
        ratio = real["events_per_s"] / floor["events_per_s"]
        ok = ratio >= TARGET_RATIO
        print(f"  of the no-op ceiling: {ratio:.0%} (target ≥ {TARGET_RATIO:.0%}) {'ok' if ok else 'MISSED'}")
    ok = real["visibility_p95_s"] <= TARGET_P95
    print(f"  visibility (accepted → lake commit): p50 {real['visibility_p50_s']:.2f} s, p95 "
          f"{real['visibility_p95_s']:.2f} s (target ≤ {TARGET_P95:.0f} s) {'ok' if ok else 'MISSED'}, max "
          f"{real['visibility_max_s']:.2f} s; inbox drained {real['drain_s']:.1f} s after the last answer")  # fmt: skip
    exact = real["lake_events"] == real["lake_distinct"] == args.events and real["inbox_messages"] == args.events
    print(f"  lake: {real['lake_events']:,} events, {real['lake_distinct']:,} distinct of {args.events:,} sent, "
          f"inbox {real['inbox_messages']:,} messages, {real['inbox_pending']} pending: "
          f"{'exactly once' if exact else 'NOT EXACTLY ONCE'}")  # fmt: skip


if __name__ == "__main__":
    main()
