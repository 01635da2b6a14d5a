"""`siyu engine info`: which compute engine runs siyu's Ibis expressions, its version and capabilities."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, print_json, user_errors

engine_app = typer.Typer(help="The compute engine (计算引擎): SIYU_ENGINE=duckdb | pyspark.")


@engine_app.command("info")
def info_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The configured engine (SIYU_ENGINE), its version and its capability table (docs/engines.md).
    Opens the engine: with pyspark this starts Spark.

    Example: SIYU_ENGINE=pyspark siyu engine info --json
    """
    with user_errors():
        info = get_app().engine.info()
    if as_json:
        print_json(info)
        return
    table = Table("capability 能力", "value 值", title=f"Engine 计算引擎 · {info['engine']} {info['version']}")
    for name, value in info["capabilities"].items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(name, shown or "—")
    console.print(table)
