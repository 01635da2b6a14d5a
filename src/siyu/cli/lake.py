"""`siyu lake optimize`: compact the lake's tables, z-ordered by time, then vacuum (湖表整理)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, print_json, user_errors

lake_app = typer.Typer(help="The lake 数据湖: layout and housekeeping.", no_args_is_help=True)


@lake_app.command("optimize")
def optimize_command(
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (repeatable); default all")
    ] = None,
    vacuum_hours: Annotated[
        int | None,
        typer.Option(
            "--vacuum-hours", min=1, help="Keep time travel this many hours (default SIYU_LAKE_VACUUM_RETAIN_HOURS)"
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Z-order again, even a table already z-ordered or unchanged")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rewrite each table's small files into few large ones — orders and events z-ordered by time, so
    windowed audiences and metrics skip row groups — then delete files that no version of the last
    --vacuum-hours needs (time travel within them keeps working). `siyu worker` runs this daily.

    Example: siyu lake optimize --table events --vacuum-hours 336
    """
    from siyu.core.errors import UnknownEntityError
    from siyu.lake.layout import optimize_lake

    with user_errors():
        app = get_app()
        for name in table or []:
            if not app.lake.exists(name):
                raise UnknownEntityError(f"no lake table {name!r} (没有该湖表); tables: {', '.join(app.lake.tables())}")
        hours = vacuum_hours if vacuum_hours is not None else app.settings.lake_vacuum_retain_hours
        done = optimize_lake(app.lake, hours, table or None, force=force)
    if as_json:
        print_json([d.as_dict() for d in done])
        return
    out = Table("table 表", "z-order", "files 文件 before → after", "vacuumed 清理", title="lake optimize 湖表整理")
    for d in done:
        files = "unchanged 未变" if d.skipped else f"{d.files_before} → {d.files_after}"
        out.add_row(d.table, ", ".join(d.z_order) or "—", files, str(d.files_vacuumed))
    console.print(out)
