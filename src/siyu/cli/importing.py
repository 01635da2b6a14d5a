"""`siyu import` and `siyu quarantine`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, err_console, get_app, print_json, progress, user_errors
from siyu.ingest.counts import STATUSES

if TYPE_CHECKING:
    from siyu.ingest.importer import ImportReport

quarantine_app = typer.Typer(help="Rows rejected by imports, with file, line, field and reason. 隔离区")

LABELS = {
    "accepted": "新增 accepted",
    "updated": "更新 updated",
    "unchanged": "未变 unchanged",
    "quarantined": "隔离 quarantined",
}


def import_command(
    path: Annotated[
        Path,
        typer.Argument(help="An entity file (orders.csv, events.jsonl, customers.parquet…) or a folder of them"),
    ],
    brand: Annotated[str | None, typer.Option(help="Brand code for rows without a `brand` column")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON")] = False,
) -> None:
    """Import canonical channel exports into the lake (导入数据).

    Files are validated row by row; bad rows are quarantined with file, line, field and reason
    (see `siyu quarantine list`). Importing the same file again changes nothing; a corrected row
    replaces the earlier version. Each file is committed atomically.

    Example: siyu import exports/ --brand demo --json
    """
    from siyu.ingest.importer import entity_files, import_path

    with user_errors():
        app = get_app()
        files = entity_files(path)
        with progress(not as_json) as bar:
            task = bar.add_task("import 导入", total=2 * len(files))
            report = import_path(app, path, brand=brand, progress=lambda _msg: bar.advance(task))
    for warning in report.warnings:
        err_console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    if as_json:
        print_json(report.as_json())
    else:
        _print_report(report)
    if report.total().quarantined and not as_json:
        console.print("Quarantined rows: [bold]siyu quarantine list[/] (查看隔离行)")


def _print_report(report: ImportReport) -> None:
    table = Table(title="Import 导入结果")
    table.add_column("entity 实体")
    for status in STATUSES:
        table.add_column(LABELS[status], justify="right")
    for entity, counts in report.by_entity().items():
        table.add_row(entity, *(f"{getattr(counts, s):,}" for s in STATUSES))
    total = report.total()
    table.add_row("[bold]total 合计[/]", *(f"[bold]{getattr(total, s):,}[/]" for s in STATUSES))
    console.print(table)


@quarantine_app.command("list")
def quarantine_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON")] = False,
    all_imports: Annotated[bool, typer.Option("--all", help="Include earlier imports of the same file")] = False,
    limit: Annotated[int | None, typer.Option(help="Show at most N rows")] = None,
    reveal: Annotated[
        str | None, typer.Option(help="Show PII in clear for this stated PURPOSE (audited); default masked")
    ] = None,
) -> None:
    """List quarantined rows of the latest import of each file (隔离行列表).

    Example: siyu quarantine list --json --reveal "fix phones and re-import 更正后重新导入"
    """
    from siyu.ingest.importer import quarantine

    with user_errors():
        who = None if reveal is None else (cli_actor(), reveal)
        rows = quarantine(get_app(), include_history=all_imports, limit=limit, reveal=who)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"Quarantine 隔离区 ({len(rows)} rows)")
    for column in ("file 文件", "line 行", "field 字段", "reason 原因"):
        table.add_column(column)
    for row in rows:
        table.add_row(Path(str(row["file"])).name, str(row["line"]), str(row["field"]), str(row["reason"]))
    console.print(table)
