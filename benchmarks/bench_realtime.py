"""Real-time benchmark (issue 19, items 1-2): how fast a new person becomes a customer found by phone.

Two parts, each in processes of their own:

`oneid`: a demo workspace of --persons persons (their customers, identities and memberships files),
resolved in full; then a batch of --batch new customer records (one in five carries the phone of an
existing person, the rest new people) is imported and resolved incrementally — the loader's path.
Printed: the full run, the incremental run (target <= 2 s for 10,000 records into 1.8M), and that
the incremental map equals what a full run over the same state gives.

`ingest`: `siyu serve` (loader in-process, SQLite store) on loopback; --clients keep-alive
connections send Segment `/v1/batch` requests (--batch messages each: one `identify` with a new
unique phone, the rest `track` events) paced to --rate events/s for --seconds. A prober asks
`GET /api/v1/customers?phone=` for each identify's phone until it answers the customer; per phone,
acceptance (the 200 of its request) → first found. Printed: accepted events/s and p50/p95/p99 of
acceptance → customer view by phone (target p95 <= 5 s at 5,000 events/s for 10 minutes).

Usage: .venv/bin/python benchmarks/bench_realtime.py oneid [--persons 100000] [--batch 10000]
       .venv/bin/python benchmarks/bench_realtime.py ingest [--rate 5000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_api import _free_port, _percentile, _stop, _wait_up

TARGET_ONEID_S = 2.0
TARGET_P95_S = 5.0


# -- oneid ----------------------------------------------------------------------------------------


def _oneid_phase(name: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    os.environ["SIYU_HOME"] = str(work / "home")
    os.environ["SIYU_DATABASE_URL"] = f"sqlite:///{work / 'home' / 'siyu.db'}"
    from siyu.bootstrap import bootstrap

    started = time.perf_counter()
    if name == "generate":
        from siyu.demo.generate import generate

        # Only the people files are imported: no orders or visits, which at 1M persons take most of the time.
        generate(work / "data", customers=args.persons, seed=1, order_scale=0.0, visit_scale=0.0)
        return {"seconds": time.perf_counter() - started}
    app = bootstrap()
    if name == "import":
        from siyu.ingest.importer import import_path

        rows = sum(
            import_path(app, work / "data" / f"{e}.csv").total().accepted
            for e in ("customers", "identities", "memberships")
        )
        return {"rows": rows, "seconds": time.perf_counter() - started}
    if name == "full":
        from siyu.identity.service import run_resolve

        outcome = run_resolve(app)
        return {"rows": outcome.source_customers, "seconds": time.perf_counter() - started}
    if name == "batch":
        from siyu.ingest.importer import import_path

        phones = app.engine.to_arrow(
            app.engine.table("customers").select("phone").filter(lambda t: t.phone.notnull()).limit(args.batch)
        )["phone"].to_pylist()
        rng = random.Random(7)
        lines = ["brand,source,source_customer_id,phone,email"]
        for i in range(args.batch):
            phone = (
                rng.choice(phones) if i % 5 == 0 and phones else f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
            )
            lines.append(f"demo,bench_app,new{i},{phone},n{i}@bench.example.com")
        folder = work / "batch"
        folder.mkdir(exist_ok=True)
        (folder / "customers.csv").write_text("\n".join(lines) + "\n")
        report = import_path(app, folder / "customers.csv")
        return {"rows": report.total().accepted, "seconds": time.perf_counter() - started}
    if name == "incremental":
        from siyu.identity.service import full_result, run_incremental

        expected, _, _ = full_result(app)
        started = time.perf_counter()
        outcome = run_incremental(app)
        seconds = time.perf_counter() - started
        table = app.engine.table("identity_map")
        got = app.engine.to_arrow(table.select("brand", "source", "source_customer_id", "customer_id"))
        same = sorted(got.to_pylist(), key=str) == sorted(expected.identity_map.to_pylist(), key=str)
        # A second batch in the same process, as the loader runs: its steps are compiled already.
        from siyu.ingest.importer import import_path

        source = work / "batch" / "customers.csv"
        again = source.read_text().replace(",new", ",again")
        (work / "batch2").mkdir(exist_ok=True)
        (work / "batch2" / "customers.csv").write_text(again)
        import_path(app, work / "batch2" / "customers.csv")
        started = time.perf_counter()
        run_incremental(app)
        steady = time.perf_counter() - started
        return {"rows": outcome.source_customers, "seconds": seconds, "same_as_full": same,
                "new_customers": outcome.new_customers, "merged": outcome.merged,
                "second_batch_seconds": steady}  # fmt: skip
    raise SystemExit(f"unknown phase {name}")


def oneid(args: argparse.Namespace) -> None:
    work = Path(args.work)
    snapshot = work / "snapshot"
    phases = ["generate", "import", "full", "batch", "incremental"]
    if args.reuse and snapshot.exists():  # the workspace after its full run, kept by an earlier run
        shutil.rmtree(work / "home", ignore_errors=True)
        shutil.copytree(snapshot, work / "home")
        phases = phases[3:]
    else:
        shutil.rmtree(work, ignore_errors=True)
        (work / "home").mkdir(parents=True)
    results = {}
    for name in phases:
        if name == "batch" and args.reuse and not snapshot.exists():
            shutil.copytree(work / "home", snapshot)
        cmd = [sys.executable, __file__, "oneid", "--phase", name, "--work", args.work,
               "--persons", str(args.persons), "--batch", str(args.batch)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"phase {name} failed:\n{proc.stderr[-3000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name:12s} {json.dumps(results[name])}", flush=True)
    inc = results["incremental"]
    print()
    full = results.get("full")
    if full:
        print(f"full run:        {full['rows']:>10,} source records in {full['seconds']:.2f} s")
    else:  # --reuse: the full run was timed by the run that kept the snapshot
        full = {"seconds": float("nan")}
    print(f"incremental run: {results['batch']['rows']:,} new records into {inc['rows']:,} in {inc['seconds']:.2f} s "
          f"(target <= {TARGET_ONEID_S} s for 10,000 into 1.8M); {full['seconds'] / inc['seconds']:.1f}x faster "
          f"than the full run; same map as a full run: {inc['same_as_full']}")  # fmt: skip
    if "second_batch_seconds" in inc:
        print(f"a second batch in the same process (compiled once): {inc['second_batch_seconds']:.2f} s")


# -- ingest ---------------------------------------------------------------------------------------


def _bodies(args: argparse.Namespace) -> list[tuple[bytes, str]]:
    """(request body, the phone of its identify)."""
    import orjson

    rng = random.Random(args.seed)
    requests = int(args.rate * args.seconds / args.batch)
    probe_every = max(1, args.rate // args.batch)
    out = []
    for r in range(requests):
        phone = f"13{r % 10}{rng.randrange(10**8):08d}"
        user = f"rt-{r}-{uuid.uuid4().hex[:8]}"
        batch: list[dict[str, Any]] = [
            {"type": "identify", "userId": user, "messageId": uuid.uuid4().hex, "traits": {"phone": phone}}
        ]
        for _ in range(args.batch - 1):
            props = {"sku": f"SKU{rng.randrange(500)}", "price": rng.randrange(1000, 90000) / 100}
            batch.append(
                {"type": "track", "userId": user, "event": "Product Viewed", "messageId": uuid.uuid4().hex,
                 "properties": props}
            )  # fmt: skip
        # One probed phone per second of load: the prober's lookups must not load the server themselves.
        out.append((orjson.dumps({"batch": batch}), phone if r % probe_every == 0 else ""))
    return out


async def _send(host: str, port: int, key: str, bodies: list[tuple[bytes, str]], start: float, interval: float,
                accepted: dict[str, float], ok: list[int], failures: list[int]) -> None:  # fmt: skip
    auth = base64.b64encode(f"{key}:".encode()).decode()
    head = (f"POST /v1/batch HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: application/json\r\n")  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    for due, (body, phone) in bodies:
        delay = start + due * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        header = await reader.readuntil(b"\r\n\r\n")
        length = next(int(v) for n, _, v in (x.partition(b":") for x in header.split(b"\r\n")[1:])
                      if n.strip().lower() == b"content-length")  # fmt: skip
        await reader.readexactly(length)
        if header.startswith(b"HTTP/1.1 200"):
            ok.append(1)
            if phone:
                accepted[phone] = time.perf_counter()
        else:
            failures.append(1)
    writer.close()


def _probe(url: str, key: str, accepted: dict[str, float], found: dict[str, float], stop: threading.Event) -> None:
    import httpx

    with httpx.Client(base_url=url, auth=(key, ""), timeout=30) as client:
        while not stop.is_set() or len(found) < len(accepted):
            pending = [p for p in list(accepted) if p not in found]
            if not pending:
                time.sleep(0.05)
                continue
            for phone in pending:
                if stop.is_set() and time.perf_counter() > stop_deadline[0]:
                    return
                try:
                    answer = client.get("/api/v1/customers", params={"phone": phone})
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 200 and answer.json()["customers"]:
                    found[phone] = time.perf_counter()


stop_deadline = [float("inf")]


def ingest(args: argparse.Namespace) -> None:
    work = Path(args.work)
    home = work / "home"
    shutil.rmtree(work, ignore_errors=True)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env |= {"SIYU_HOME": str(home), "SIYU_DATABASE_URL": f"sqlite:///{home / 'siyu.db'}",
            "SIYU_API_RATE_LIMIT": "1000000", "SIYU_ENV": "dev",
            "SIYU_LOADER_RESOLVE_EVERY": str(args.resolve_every)}  # fmt: skip
    cli = [sys.executable, "-m", "siyu"]
    keys = {}
    for scope in ("ingest", "read"):
        create = [*cli, "keys", "create", "--brand", "demo", "--scope", scope, "--source", "app", "--json"]
        made = subprocess.run(create, env=env, check=True, capture_output=True, text=True, cwd=work)
        keys[scope] = json.loads(made.stdout)["key"]
    bodies = _bodies(args)
    port = _free_port()
    server = subprocess.Popen([*cli, "serve", "--port", str(port), "--log-level", "warning"], env=env, cwd=work,
                              start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    accepted: dict[str, float] = {}
    found: dict[str, float] = {}
    failures: list[int] = []
    ok: list[int] = []
    stop = threading.Event()
    try:
        _wait_up(url, server)
        prober = threading.Thread(target=_probe, args=(url, keys["read"], accepted, found, stop), daemon=True)
        prober.start()
        interval = args.batch / args.rate * args.clients  # seconds between one client's requests
        per_client = [list(enumerate(bodies[c :: args.clients])) for c in range(args.clients)]
        start = time.perf_counter() + 0.5
        offsets = [start + c * interval / args.clients for c in range(args.clients)]

        async def run() -> None:
            await asyncio.gather(*(_send("127.0.0.1", port, keys["ingest"], per_client[c], offsets[c], interval,
                                         accepted, ok, failures) for c in range(args.clients)))  # fmt: skip

        asyncio.run(run())
        sent_s = time.perf_counter() - start
        stop_deadline[0] = time.perf_counter() + args.drain_timeout
        stop.set()
        prober.join(timeout=args.drain_timeout + 30)
    finally:
        _stop(server)
    seconds = sorted(found[p] - accepted[p] for p in found)
    events = len(ok) * args.batch
    print(f"sent {events:,} events in {sent_s:.1f} s = {events / sent_s:,.0f} events/s accepted "
          f"(paced to {args.rate:,}/s; {len(failures)} failed requests)")  # fmt: skip
    print(f"acceptance → customer view by phone, {len(seconds)} of {len(accepted)} phones found: "
          f"p50 {_percentile(seconds, 0.5):.2f} s, p95 {_percentile(seconds, 0.95):.2f} s, "
          f"p99 {_percentile(seconds, 0.99):.2f} s, max {seconds[-1] if seconds else float('nan'):.2f} s "
          f"(target p95 <= {TARGET_P95_S} s at 5,000 events/s for 10 minutes; this run: {args.seconds} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("oneid", "ingest"))
    parser.add_argument("--work", default="/tmp/siyu-bench-realtime")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--persons", type=int, default=100_000, help="oneid: demo persons (≈1.8 records each)")
    parser.add_argument(
        "--batch", type=int, default=None, help="oneid: new records (10,000); ingest: events a request (100)"
    )
    parser.add_argument("--rate", type=int, default=5_000, help="ingest: events/s offered")
    parser.add_argument("--seconds", type=float, default=60.0, help="ingest: how long to send")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--resolve-every", type=float, default=1.0, help="ingest: SIYU_LOADER_RESOLVE_EVERY")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--reuse", action="store_true", help="oneid: keep the workspace after its full run, and start from it if kept"
    )
    args = parser.parse_args()
    if args.part == "oneid":
        args.batch = args.batch or 10_000
        if args.phase:
            sys.stdout.write(json.dumps(_oneid_phase(args.phase, args)) + "\n")
            return
        oneid(args)
    else:
        args.batch = args.batch or 100
        ingest(args)


if __name__ == "__main__":
    main()
