"""`siyu report`: the self-contained HTML health report (私域健康度报告)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siyu.cli.common import console, get_app, progress, user_errors
from siyu.core.output import check_output, output_format
from siyu.metrics.periods import DEFAULT_WINDOW_DAYS


def report_command(
    brand: Annotated[str, typer.Option("--brand", help="Brand code, e.g. demo")],
    period: Annotated[str, typer.Option("--period", help="Period label, e.g. 2024-06")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write (.html)")] = Path("report.html"),
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists")] = False,
    grain: Annotated[str, typer.Option("--grain", help="month | week | quarter | year")] = "month",
    window_days: Annotated[int, typer.Option("--window-days", help="CLV window in days (0 = lifetime)", min=0)] = (
        DEFAULT_WINDOW_DAYS
    ),
) -> None:
    """Write the FAST+ health report for one period as one HTML file that opens offline: KPI cards
    with period-over-period change, layers and transitions (Sankey), field Connection, CLV by layer
    and the CLV matrix, RFM, the 12-period trend and a plain-language diagnosis (zh-CN / English).

    Example: siyu report --brand demo --period 2024-06 --out report.html
    """
    path = write(brand, period, out, grain, window_days, force=force)
    console.print(f"report 报告: {path}")


def write(
    brand: str,
    period: str,
    out: Path,
    grain: str = "month",
    window_days: int = DEFAULT_WINDOW_DAYS,
    *,
    force: bool = False,
) -> Path:
    from siyu.report.build import report_data
    from siyu.report.html import write_report

    with user_errors():
        check_out(out, force=force)  # refused now, not after the work
        with progress() as bar:
            task = bar.add_task("report 报告", total=2)
            data = report_data(get_app(), brand, period, grain, window_days)
            bar.advance(task)
            path: Path = write_report(data, out, force=force)
            bar.advance(task)
    return path.resolve()


def check_out(out: Path, *, force: bool) -> None:
    """Refuse a report path that is not .html, is a folder, exists (without --force) or is not writable."""
    from siyu.report.html import REPORT_FORMATS

    output_format(out, REPORT_FORMATS)
    check_output(out, force=force)
