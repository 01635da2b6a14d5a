"""`siyu audit list`: the one audit trail (操作审计) — who changed what, when, before → after."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, print_json, user_errors
from siyu.core.errors import SiyuError

audit_app = typer.Typer(help="The audit trail of every change: keys, brands, tags, audiences, loyalty (操作审计).")


class BadTimeError(SiyuError):
    code = "bad_time"
    exit_code = 2


def _instant(text: str | None, option: str) -> dt.datetime | None:
    """An ISO date or date-time; a date means its midnight, a time without zone means UTC."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadTimeError(f"{option} {text!r}: use an ISO date or time, e.g. 2026-12-01 or 2026-12-01T08:00+08:00 "
                           "(日期格式)") from None  # fmt: skip
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@audit_app.command("list")
def list_command(
    actor: Annotated[
        str | None, typer.Option("--actor", help="KIND:ID (user:alice, api_key:ID, system:loader) or just the id")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="TYPE:ID (api_key:ID, coupon:CODE, audience:demo/vip) or TYPE")
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="An action (key.create) or a prefix ending in '.' (coupon.)")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="From this date/time (inclusive)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to this date/time (exclusive)")] = None,
    brand: Annotated[str | None, typer.Option("--brand", help="Only changes of this brand")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, help="At most this many rows, newest first")
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List audit rows, newest first. PII in before/after was masked when the row was written.

    Example: siyu audit list --subject api_key --from 2026-12-01 --json
    """
    from siyu.audit.trail import AuditFilter, entries

    with user_errors():
        f = AuditFilter(actor, subject, action, _instant(start, "--from"), _instant(end, "--to"), brand, limit)
        with get_app().store.unit_of_work() as session:
            rows = entries(session, f)
    if as_json:
        print_json(rows)
        return
    table = Table("time 时间", "actor 操作人", "action 动作", "subject 对象", "before → after 变更")
    for r in rows:
        change = f"{r['before'] if r['before'] is not None else '—'} → {r['after'] if r['after'] is not None else '—'}"
        table.add_row(r["at"][:19], r["actor"], r["action"], f"{r['subject_type']}:{r['subject_id']}", change[:120])
    console.print(table)


@audit_app.command("seal")
def seal_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Chain the audit rows written since the last seal (a job; `siyu worker` runs it every cycle).

    Example: siyu audit seal
    """
    from siyu.audit.chain import seal
    from siyu.core.actor import Actor

    with user_errors(), get_app().store.begin(Actor.system("audit-seal")) as uow:
        count = seal(uow.session)
    if as_json:
        print_json({"sealed": count})
    else:
        console.print(f"sealed 已封存 {count} audit rows")


@audit_app.command("verify")
def verify_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Recompute the audit chain: exit 1 and name the first bad row if a sealed row was changed or
    deleted. Prints the head hash: keep it elsewhere to detect a rewritten chain later.

    Example: siyu audit verify --json
    """
    from siyu.audit.chain import verify

    with user_errors(), get_app().store.unit_of_work() as session:
        verdict = verify(session)
    if as_json:
        print_json(verdict.as_dict())
    elif verdict.ok:
        console.print(f"audit chain intact 审计链完整: {verdict.sealed} sealed rows, head {verdict.head_hash}"
                      f" · {verdict.unsealed} not sealed yet 未封存")  # fmt: skip
    else:
        console.print(f"[red]audit chain broken 审计链断裂[/red] at row {verdict.broken_at}: {verdict.problem}")
    if not verdict.ok:
        raise typer.Exit(1)
