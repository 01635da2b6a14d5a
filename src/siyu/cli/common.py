"""What every command shares: the app from the composition root, JSON output, error printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from siyu.bootstrap import App, bootstrap
from siyu.core.errors import SiyuError

console = Console()
err_console = Console(stderr=True)
state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def get_app() -> App:
    return bootstrap()


def _jsonable(value: Any) -> Any:
    """Datetimes and dates as ISO-8601; anything else as text."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_jsonable) + "\n")


def fail(error: SiyuError) -> None:
    """Print a user error without a traceback (unless --debug) and exit with its code."""
    if state["debug"]:
        raise error
    # soft_wrap: one line whatever the width, so a log or a script sees the whole message on it
    err_console.print(f"[bold red]error[/] [dim]({error.code})[/]: {error.message}", highlight=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except SiyuError as error:
        fail(error)


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress display on stderr, so `--json` output on stdout stays clean."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled or not err_console.is_terminal,
        transient=False,
    )
    with bar:
        yield bar
