"""`siyu serve` (HTTP API) and `siyu worker` (the inbox loader on its own)."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta
from typing import Annotated, Any

import typer

from siyu.cli.common import console, get_app, print_json, user_errors


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Server processes", min=1)] = 1,
    loader: Annotated[
        bool, typer.Option("--loader/--no-loader", help="Run the inbox loader in the server (else run `siyu worker`)")
    ] = True,
    log_level: Annotated[str, typer.Option("--log-level", help="debug | info | warning | error")] = "info",
) -> None:
    """Serve the HTTP API (FastAPI on uvicorn): Segment-compatible ingest at /v1/*, canonical ingest at
    /api/v1/ingest/{entity}, customer and metrics reads, /health, /ready, /metrics; interactive docs at /docs.

    Create keys first: siyu keys create --brand demo --scope ingest --source app --json

    Example: siyu serve --host 127.0.0.1 --port 8000
    """
    import uvicorn

    with user_errors():
        # Fail here, with one clear line, if the store or workspace is unusable or the PII key is the default.
        get_app().settings.require_own_pii_key()
    os.environ["SIYU_API_LOADER"] = "true" if loader else "false"
    from siyu.core.logs import configure

    configure(log_level)
    uvicorn.run(
        "siyu.api.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours logs paths without query strings (no PII): siyu.api.access
        log_level=log_level,
    )


def worker_command(
    once: Annotated[bool, typer.Option("--once", help="Load everything pending, then exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print the result as JSON")] = False,
    materialise_every: Annotated[
        int,
        typer.Option(
            "--materialise-every",
            help="Minutes between scheduled `siyu metrics materialise` passes (layers, RFM; 0 = off) 定时物化",
            min=0,
        ),
    ] = 60,
) -> None:
    """Run the inbox loader: move messages accepted by the API into the lake (micro-batches by size and
    age) and keep One-ID up to date. Safe to run beside `siyu serve`: one loader works at a time.
    Unless --once, it also stores every brand's layers of the last two full months and RFM as of
    yesterday every --materialise-every minutes (first after one interval), skipping what is
    already fresh (定时物化).

    Example: siyu worker            (until Ctrl-C / SIGTERM)
             siyu worker --once --json
    """
    from siyu.ingest.loader import Loader, LoadResult

    with user_errors():
        app = get_app()
        settings = app.settings
        settings.require_own_pii_key()
        loaded = {"messages": 0, "batches": 0}

        def report(result: LoadResult) -> None:
            loaded["messages"] += result.messages
            loaded["batches"] += 1
            if not once:
                counts = ", ".join(f"{e} {c.accepted}+{c.updated}" for e, c in result.counts.items())
                console.print(f"loaded 已入湖 {result.messages} messages ({counts})", highlight=False)

        loader = Loader(
            app,
            batch_messages=settings.loader_batch_messages,
            max_age=settings.loader_max_age,
            resolve_every=settings.loader_resolve_every,
            on_batch=report,
            full_resolve_every=settings.identity_full_every_hours * 3600,
        )
        from siyu.wecom.runtime import WecomRuntime

        wecom = WecomRuntime(app)  # WeCom callbacks stored by `siyu serve` become inbox rows first
        if once:
            wecom.drain()
            result: dict[str, Any] = {"messages": loader.drain()}
            if as_json:
                print_json(result)
            else:
                console.print(f"loaded 已入湖 {result['messages']} messages")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if materialise_every:
            from siyu.bootstrap import with_own_engine
            from siyu.metrics.materialise import run_schedule

            every = timedelta(minutes=materialise_every)
            threading.Thread(target=run_schedule, args=(with_own_engine(app), stop, every), daemon=True).start()
        from siyu.privacy import retention  # what is past its retention goes once a day (保存期限)

        args = (with_own_engine(app), stop, timedelta(days=1))
        threading.Thread(target=retention.run_schedule, args=args, daemon=True).start()
        if settings.lake_optimize_every_hours:  # compaction, z-order by time, vacuum (湖表整理)
            from siyu.lake import layout

            every_lake = timedelta(hours=settings.lake_optimize_every_hours)
            threading.Thread(target=layout.run_schedule, args=(app, stop, every_lake), daemon=True).start()
        from siyu.bootstrap import with_own_engine
        from siyu.journeys.runner import run_loop  # due journey steps (营销旅程), beside the loader

        threading.Thread(target=run_loop, args=(with_own_engine(app), stop), daemon=True).start()
        from siyu.messaging.dispatch import Dispatcher  # sends due messages beside the loader (触达)

        threading.Thread(target=Dispatcher(with_own_engine(app)).run, args=(stop,), daemon=True).start()
        threading.Thread(target=wecom.run, args=(stop,), name="siyu-wecom", daemon=True).start()
        console.print("loader running 入湖进程运行中 (Ctrl-C to stop)")
        loader.run(stop)
