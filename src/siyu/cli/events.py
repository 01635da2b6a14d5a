"""`siyu events status`: each event handler's position in the outbox, its backlog and its lease."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, print_json, user_errors

events_app = typer.Typer(help="Domain events (领域事件): the outbox and the handlers that consume it.")


@events_app.command("status")
def status_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Per handler: events handled, events written after its position (backlog), and which process
    holds its lease. A handler that has never run shows its whole backlog.

    Example: siyu events status --json
    """
    from sqlalchemy import func, select

    from siyu.events.outbox import EventConsumer, OutboxEvent, backlog
    from siyu.events.subscriptions import handlers

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            total = int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
            behind = backlog(session)
            consumers = {c.name: c for c in session.scalars(select(EventConsumer))}
        rows: list[dict[str, Any]] = []
        for name in sorted({h.name for h in handlers(app)} | set(consumers)):
            c = consumers.get(name)
            rows.append({
                "handler": name,
                "handled": int(c.handled) if c else 0,
                "backlog": behind.get(name, total),
                "leased_by": c.leased_by if c else None,
                "leased_until": c.leased_until.isoformat() if c and c.leased_until else None,
                "updated_at": c.updated_at.isoformat() if c and c.updated_at else None,
            })  # fmt: skip
    if as_json:
        print_json({"outbox_events": total, "handlers": rows})
        return
    table = Table("handler 处理器", "handled 已处理", "backlog 待处理", "lease 租约", "last run 最近运行",
                  title=f"Domain events 领域事件 · outbox {total}")  # fmt: skip
    for r in rows:
        lease = f"{r['leased_by']} until {r['leased_until'][:19]}" if r["leased_by"] else "—"
        table.add_row(
            r["handler"], str(r["handled"]), str(r["backlog"]), lease, (r["updated_at"] or "never 未运行")[:19]
        )
    console.print(table)
