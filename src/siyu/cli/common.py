"""What every command shares: the app from the composition root, JSON output, error printing."""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from siyu.core.actor import Actor
from siyu.core.errors import SiyuError

if TYPE_CHECKING:
    from siyu.bootstrap import App

console = Console()
err_console = Console(stderr=True)
state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def get_app() -> App:
    from siyu.bootstrap import bootstrap  # the whole stack: loaded by the commands that run, not by --help

    return bootstrap()


def cli_actor(by: str | None = None) -> Actor:
    """The person running the command: the actor of its unit of work. Commands with `--by NAME`
    (a guide or operator acting at this terminal) name them; otherwise the OS user."""
    return Actor.user(by or getpass.getuser())


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


class StepLines(Progress):
    """Progress where no bar can be drawn (CI logs, `| tee`, a scheduler): a line when a step starts,
    one when it finishes, with its elapsed time, and a new status at most every NOTE_EVERY seconds —
    so a long command is never silent for minutes."""

    NOTE_EVERY = 10.0

    def __init__(self, console: Console) -> None:
        super().__init__(console=console, disable=True)
        self._began = time.perf_counter()
        self._noted: dict[TaskID, float] = {}
        self._finished: set[TaskID] = set()

    def _line(self, text: str) -> None:
        self.console.print(f"[{time.perf_counter() - self._began:7.1f}s] {text}", highlight=False, soft_wrap=True)

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task = super().add_task(description, *args, **kwargs)
        self._noted[task] = time.perf_counter()
        self._line(f"{description} …")
        self._report(task)
        return task

    def update(self, task_id: TaskID, *args: Any, **kwargs: Any) -> None:
        super().update(task_id, *args, **kwargs)
        news = kwargs.get("description") and not self._tasks[task_id].finished
        if news and time.perf_counter() - self._noted[task_id] >= self.NOTE_EVERY:
            self._noted[task_id] = time.perf_counter()
            self._line(str(kwargs["description"]))
        self._report(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._report(task_id)

    def stop(self) -> None:
        for task_id, task in self._tasks.items():  # steps without a total, or cut short by an error
            if task_id not in self._finished:
                self._finished.add(task_id)
                self._line(f"{task.description} ended 结束 after {task.elapsed or 0:.1f}s")
        super().stop()

    def _report(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        if task.finished and task_id not in self._finished:
            self._finished.add(task_id)
            self._line(f"{task.description} done 完成 in {task.finished_time or 0:.1f}s")


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """Progress of a long command on stderr (so `--json` output on stdout stays clean): a rich bar
    on a terminal, a line per step with its elapsed time otherwise; nothing when not `enabled`."""
    bar = (
        Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=not enabled,
            transient=False,
        )
        if err_console.is_terminal or not enabled
        else StepLines(err_console)
    )
    with bar:
        yield bar
