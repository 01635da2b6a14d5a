"""`siyu guides …`: guides and stores (导购 · 门店) — rules, binding runs, tasks, performance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.errors import UnreadableFileError

guides_app = typer.Typer(
    help="Guides and stores 导购 · 门店: binding rules, binding runs, tasks, performance.", no_args_is_help=True
)
rules_app = typer.Typer(help="Binding and attribution rules 绑定与归属规则 (YAML, versioned).", no_args_is_help=True)
tasks_app = typer.Typer(help="Guide tasks 导购任务: list, mark done.", no_args_is_help=True)
guides_app.add_typer(rules_app, name="rules")
guides_app.add_typer(tasks_app, name="tasks")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
BrandOpt = Annotated[str | None, typer.Option("--brand", help="Only this brand (default: every brand)")]


@rules_app.command("apply")
def rules_apply(
    file: Annotated[Path, typer.Argument(help="Rules YAML file (see docs/guides.md)")], as_json: JsonOpt = False
) -> None:
    """Validate a rules file and apply it; a changed file needs a higher `version:`."""
    from siyu.guides.rulebook import do_apply_rules

    with user_errors():
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as e:
            raise UnreadableFileError(f"{file}: cannot read ({e.strerror}) (无法读取文件)") from e
        app = get_app()
        with app.store.begin(cli_actor()) as uow:
            rules, applied = do_apply_rules(uow, text, str(file))
    data = {"brand": rules.brand, "version": rules.version, "status": "applied" if applied else "unchanged"}
    if as_json:
        print_json(data)
    else:
        console.print(f"guide rules 导购规则 {rules.brand} v{rules.version}: {data['status']}")


@guides_app.command("bind")
def bind_command(brand: BrandOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute customer–guide bindings (客户归属) from WeCom friends, store purchases, share
    visits and manual / transfer bindings; safe to re-run any time."""
    from sqlalchemy import select

    from siyu.guides.bindings import run_binding
    from siyu.store.models import Brand

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            brands = [brand] if brand else sorted(session.scalars(select(Brand.code)))
        results = [run_binding(app, b, actor=f"cli:{cli_actor().id}") for b in brands]
    if as_json:
        print_json([r.as_json() for r in results])
        return
    for r in results:
        console.print(
            f"{r.brand}: {r.bound} bindings 绑定, {r.changed_customers} customers changed 变更 "
            f"({r.claims} claims, {r.steps} steps, {r.seconds}s)"
        )


@tasks_app.command("list")
def tasks_list(
    brand: BrandOpt = None,
    staff: Annotated[str | None, typer.Option("--staff", help="Only this staff member's tasks")] = None,
    status: Annotated[str | None, typer.Option("--status", help="open | done | cancelled")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List guide tasks (导购任务): journeys, churn alerts, SOP, sensitive words; due first."""
    from siyu.guides.tasks import list_tasks

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            tasks = list_tasks(session, brand, staff, status)
    if as_json:
        print_json(tasks)
        return
    table = Table("id", "brand", "assignee 负责人", "store 门店", "kind", "title 标题", "due 截止", "status")
    for t in tasks:
        table.add_row(
            *(
                str(t[k] or "")
                for k in ("id", "brand", "assignee_staff_id", "store_code", "kind", "title", "due_at", "status")
            )
        )
    console.print(table)


@tasks_app.command("done")
def tasks_done(
    task_id: Annotated[int, typer.Argument(help="Task id (from `siyu guides tasks list`)")],
    result: Annotated[str | None, typer.Option("--result", help="What was done 处理结果")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark a task done (again: unchanged)."""
    from siyu.guides.tasks import do_mark_done

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor()) as uow:
            task = do_mark_done(uow, task_id, result)
    if as_json:
        print_json(task)
    else:
        console.print(f"task 任务 {task_id}: done 已完成")


@guides_app.command("sop")
def sop_command(brand: BrandOpt = None, as_json: JsonOpt = False) -> None:
    """Create the SOP tasks due now (day 1, 3, 7 … after an add; rules file `sop:`). Run it daily;
    tasks are created once however often it runs."""
    from sqlalchemy import select

    from siyu.guides.alerts import do_sop_tasks
    from siyu.guides.rulebook import rules_in_force
    from siyu.store.models import Brand

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            brands = [brand] if brand else sorted(session.scalars(select(Brand.code)))
        created = {}
        for b in brands:
            with app.store.begin(cli_actor()) as uow:
                created[b] = do_sop_tasks(uow, rules_in_force(uow.session, b))
    if as_json:
        print_json(created)
    else:
        for b, n in created.items():
            console.print(f"{b}: {n} SOP tasks created 已创建")


@guides_app.command("performance")
def performance_command(
    brand: Annotated[str, typer.Option("--brand", help="Brand code")],
    period: Annotated[str, typer.Option("--period", help="Period, e.g. 2024-06 (month), 2024-Q2, 2024-W23")],
    grain: Annotated[str, typer.Option("--grain", help="month | week | quarter | year")] = "month",
    as_json: JsonOpt = False,
) -> None:
    """Guide performance 导购绩效: friends, bound customers, attributed sales and commission, tasks,
    reply time, and FAST+ Capital / Conversion of the bound customers; with a store roll-up."""
    from siyu.brands.settings import brand_settings
    from siyu.guides.performance import performance
    from siyu.metrics.periods import parse_period

    with user_errors():
        app = get_app()
        tz = brand_settings(app, brand).timezone
        data = performance(app, brand, parse_period(period, grain, tz))
    if as_json:
        print_json(data)
        return
    cols = (
        "staff_id",
        "store_code",
        "new_friends",
        "lost_friends",
        "bound_customers",
        "attributed_orders",
        "attributed_fen",
        "commission_fen",
        "tasks_done",
        "tasks_open",
        "reply_p50_s",
        "capital",
        "conversion_rate",
    )
    table = Table(*cols, title=f"{brand} {data['period']} 导购绩效")
    for row in data["guides"]:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
    console.print(table)
    stores = Table(*("store_code", "guides", *cols[2:]), title="stores 门店")
    for row in data["stores"]:
        stores.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in ("store_code", "guides", *cols[2:])))
    console.print(stores)


@guides_app.command("scan-messages")
def scan_messages_command(
    brand: Annotated[str, typer.Option("--brand", help="Brand code")],
    days: Annotated[int, typer.Option("--days", help="Messages sent in the last N days", min=1)] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Chat compliance 会话合规: sensitive words (rules file `sensitive_words:`) in chat messages
    raise `sensitive_word` tasks for the store managers; once per message."""
    import datetime as dt

    from siyu.guides.compliance import scan_messages

    with user_errors():
        app = get_app()
        result = scan_messages(app, brand, dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
    if as_json:
        print_json(result.__dict__)
    else:
        console.print(f"{brand}: {result.flagged_messages} messages flagged 命中, {result.tasks_created} tasks 任务")
