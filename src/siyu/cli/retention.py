"""`siyu retention`: how long data is kept (保存期限), and the run that deletes what is past it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors

retention_app = typer.Typer(help="Retention 保存期限: per-brand policies and the deleting run.", no_args_is_help=True)


@retention_app.command("set")
def set_command(
    entity: Annotated[str, typer.Argument(help="events, messages, quarantine_rows, inbox, outbound_messages, …")],
    days: Annotated[int, typer.Argument(help="Keep this many days")],
    brand: Annotated[str, typer.Option("--brand", help="Brand code, or * for every brand")] = "*",
    by: Annotated[str | None, typer.Option("--by", help="Who sets it (audit)")] = None,
) -> None:
    """Set a retention policy (audited).

    Example: siyu retention set events 1095 --brand demo
    """
    from siyu.privacy.retention import do_set_policy

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor(by)) as uow:
            do_set_policy(uow, brand, entity, days)
    console.print(f"retention 保存期限 {brand}/{entity}: {days} days", highlight=False)


@retention_app.command("show")
def show_command(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False) -> None:
    """Show every entity's retention per brand (defaults included)."""
    from siyu.privacy.retention import KINDS, policies

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            set_ = policies(session)
    rows: list[dict[str, Any]] = [
        {"entity": k.name, "where": k.where, "default_days": k.default_days,
         "policies": {b: d for (b, e), d in sorted(set_.items()) if e == k.name}}
        for k in KINDS.values()
    ]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    table = Table(title="retention 保存期限")
    for col in ("entity 数据", "where 位置", "default days 默认天数", "policies 策略"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["entity"], r["where"], str(r["default_days"]),
                      ", ".join(f"{b}: {d}" for b, d in r["policies"].items()))  # fmt: skip
    console.print(table)


@retention_app.command("run")
def run_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go, delete nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON")] = False,
) -> None:
    """Delete what is past its retention in the store and the lake (audited: `retention.run`).

    Example: siyu retention run --dry-run --json
    """
    from siyu.privacy.retention import run_retention

    with user_errors():
        counts = run_retention(get_app(), dry_run=dry_run, actor=cli_actor())
    if as_json:
        print_json({"dry_run": dry_run, "deleted": counts})
        return
    verb = "would delete 将删除" if dry_run else "deleted 已删除"
    console.print(f"{verb}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)
