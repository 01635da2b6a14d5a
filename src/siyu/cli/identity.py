"""`siyu resolve`: One-ID (全域唯一身份)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import console, err_console, get_app, print_json, progress, user_errors
from siyu.core.output import check_output, output_format

LOCK_WAIT_SECONDS = 600  # how long `siyu resolve` waits for a running loader before it gives up


def resolve_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print counts and junk identifiers as JSON")] = False,
    export: Annotated[
        Path | None, typer.Option(help="Write the identity map CSV (source, source_customer_id, customer_id)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --export file if it exists")] = False,
    max_share: Annotated[
        int | None,
        typer.Option(help="A value shared by more source customers than this is junk (default 50)"),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Re-cluster every record, not only what new imports touched (after changing the blocklist)",
        ),
    ] = False,
    loyalty: Annotated[
        bool, typer.Option(help="Then sync every loyalty program: new orders earn points (siyu loyalty sync)")
    ] = True,
    lock_wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for a running loader (siyu worker/serve) to release the identity map"),
    ] = LOCK_WAIT_SECONDS,
) -> None:
    """Resolve source customers into one customer each (One-ID, 全域唯一身份).

    Source customers sharing a strong identifier (normalised phone, unionid, member_no, email,
    platform ids) are linked transitively. Placeholder values (shipped blocklist) and values shared
    by too many records are ignored and reported as junk. Existing customer ids are kept; every
    merge is recorded with the identifier that caused it. Only the customers that imports since the
    last run touched are re-clustered (same result as a full run); --full (or --max-share) re-clusters
    everything.

    Example: siyu resolve --json --export identity_map.csv
    """
    from siyu.identity.service import export_map, run_incremental, run_resolve
    from siyu.ingest.loader import holding_loader_lock

    with user_errors():
        if export:  # refused now, not after the work
            output_format(export, {".csv": "csv"})
            check_output(export, force=force)
        app = get_app()
        with progress(not as_json) as bar:
            task = bar.add_task("One-ID 身份识别", total=1)
            # A running loader writes the identity map too: wait for it rather than race it.
            waiting = partial(err_console.print, "waiting for the loader 等待加载进程释放锁 …")
            with holding_loader_lock(app, wait_seconds=lock_wait, on_wait=waiting):
                # A different --max-share changes junk everywhere: only a full run can apply it.
                outcome = run_resolve(app, max_share=max_share) if full or max_share else run_incremental(app)
            bar.advance(task)
            synced = {}
            if loyalty:
                from siyu.loyalty.sync import sync_all

                synced = {code: r.as_dict() for code, r in sync_all(app, actor="cli:resolve").items()}
        exported = export_map(app, export, force=force) if export else None
    if as_json:
        print_json({**outcome.as_json(), "loyalty": synced} if synced else outcome.as_json())
        return
    table = Table(title="One-ID 全域唯一身份")
    table.add_column("metric 指标")
    table.add_column("value 数值", justify="right")
    table.add_row("source customers 来源客户", f"{outcome.source_customers:,}")
    table.add_row("customers 客户 (One-ID)", f"{outcome.customers:,}")
    table.add_row("merged this run 本次合并", f"{outcome.merged:,}")
    table.add_row("junk identifiers 垃圾标识", f"{len(outcome.junk_identifiers):,}")
    console.print(table)
    for junk in outcome.junk_identifiers[:10]:
        console.print(
            f"  junk {junk['id_type']} {junk['value_masked']} ({junk['reason']}, {junk['source_customers']} records)"
        )
    if exported is not None:
        console.print(f"identity map: {export} ({exported:,} rows)")
    for code, counts in synced.items():
        console.print(
            f"loyalty 会员中台 {code}: {counts['enrolled']:,} enrolled 入会, "
            f"{counts['orders']:,} orders posted 订单入账, "
            f"{counts['points_earned']:,} points earned 积分"
        )
