"""`siyu inbox dead-letters|retry|drop`: messages the loader could not load (死信)."""

from __future__ import annotations

import getpass
import re
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, print_json, user_errors
from siyu.core.clock import utc_now

inbox_app = typer.Typer(
    help="The ingest inbox: dead letters — messages the loader could not load — to list, retry or drop (收件箱死信)."
)
IdArg = Annotated[str, typer.Argument(help="The dead letter's id, exactly as `siyu inbox dead-letters` shows it")]


def _id(text: str) -> int:
    """Ids are exact: digits only (no prefixes, signs or spaces)."""
    from siyu.ingest.dead_letters import DeadLetterError

    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise DeadLetterError(f"not an inbox message id: '{text}' (a whole number)")
    return int(text)


@inbox_app.command("dead-letters")
def dead_letters_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List dead letters: id, brand, source, kind, message id, reason, when, attempts. Payloads are
    not shown (they may hold personal data).

    Example: siyu inbox dead-letters --json
    """
    from siyu.ingest.dead_letters import list_dead_letters

    with user_errors():
        letters = list_dead_letters(get_app().store)
    if as_json:
        print_json([letter.as_dict() for letter in letters])
        return
    if not letters:
        console.print("no dead letters 无死信")
        return
    table = Table(title="Dead letters 死信")
    columns = "id|brand 品牌|source 来源|kind 类型|message id 消息|reason 原因|dead at 时间|attempts 次数"
    for col in columns.split("|"):
        table.add_column(col)
    for d in letters:
        table.add_row(
            str(d.id), d.brand, d.source, d.kind, d.message_id, d.reason, f"{d.dead_at:%Y-%m-%d %H:%M:%S}",
            str(d.attempts),
        )  # fmt: skip
    console.print(table)
    console.print("siyu inbox retry ID  (back to the queue 重新入队) · siyu inbox drop ID  (discard 丢弃)")


@inbox_app.command("retry")
def retry_command(message_id: IdArg) -> None:
    """Put a dead letter back in the queue: the loader takes it in its next cycle (fix what made it
    fail first — if it fails again it is dead-lettered again).

    Example: siyu inbox retry 1042
    """
    from siyu.ingest.dead_letters import do_retry

    with user_errors():
        letter = do_retry(get_app().store, _id(message_id))
    console.print(f"queued again 已重新入队: {letter.id} ({letter.brand}/{letter.kind} {letter.message_id})")


@inbox_app.command("drop")
def drop_command(message_id: IdArg) -> None:
    """Drop a dead letter: it leaves the queue for good; the inbox keeps a record of it, with who
    dropped it and when.

    Example: siyu inbox drop 1042
    """
    from siyu.ingest.dead_letters import do_drop

    with user_errors():
        letter = do_drop(get_app().store, _id(message_id), by=f"cli:{getpass.getuser()}", at=utc_now())
    console.print(f"dropped 已丢弃: {letter.id} ({letter.brand}/{letter.kind} {letter.message_id})")
