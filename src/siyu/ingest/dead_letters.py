"""Dead letters (死信): inbox messages the loader could not load even on their own.

The loader isolates a failing message by bisecting its batch (`siyu.ingest.loader`); what fails
alone with a data error is set aside here with a reason, so every other message keeps flowing.
A reason names the exception type and the stage (`segment mapping`, `import orders`) and keeps
the engine's message with values masked: it is shown to operators and must carry no PII.
Failures of the machinery itself (store, disk, memory, lake commit) are never a message's fault:
the batch stays pending and is retried whole.

Operators list dead letters, put one back in the queue (`retry`) or drop it (`drop`, recorded
with who and when; the row stays as the record).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy.exc
from deltalake.exceptions import DeltaError
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.core.errors import SiyuError
from siyu.engine.connect import transient_errors
from siyu.ingest.inbox import OPEN_DEAD, as_utc
from siyu.store.db import Store
from siyu.store.models import InboxMessage

# Errors of the infrastructure, not of a message: bisecting on them would dead-letter good messages.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # disk full, permissions, timeouts
    MemoryError,
    sqlalchemy.exc.OperationalError,  # store unreachable, locked, connection lost
    sqlalchemy.exc.InterfaceError,
    DeltaError,  # lake commit and protocol
)  # + each compute engine's own (its capability table's `transient_errors`)
_REASON_CHARS = 300
# SQL type names stay in a reason ("… to type INT64"); any other token with a digit is masked.
_TYPE_NAME = re.compile(r"^\(?(U?(TINY|SMALL|BIG|HUGE)?INT(8|16|32|64|128)?|DECIMAL\(\d+,\d+\))\)?[.,:;]?$", re.I)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_INPUT = re.compile(r"\binput\s*:.*$", re.I)  # DuckDB's JSON errors quote the input after "Input:"


class DeadLetterError(SiyuError):
    code = "unknown_dead_letter"
    exit_code = 2


class LoadStepError(Exception):
    """A batch failed at `stage`; `cause` is the original error."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__} in {stage}")
        self.stage, self.cause = stage, cause

    @property
    def transient(self) -> bool:
        return isinstance(self.cause, TRANSIENT + transient_errors())

    @property
    def reason(self) -> str:
        return reason(self.stage, self.cause)


def _mask(token: str) -> str:
    if _TYPE_NAME.match(token):
        return token
    if any(c.isdigit() or c == "@" or (not c.isascii() and c != "…") for c in token):
        return "…"
    return token


def redact(message: str) -> str:
    """An error message without the values it quotes: first line only, quoted text, numbers,
    e-mail addresses and non-ASCII words (names) masked, what follows "Input:" cut."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    first = _INPUT.sub("Input: …", _QUOTED.sub("'…'", first))
    words: list[str] = []
    for token in first.split():
        masked = _mask(token)
        if not (masked == "…" and words and words[-1] == "…"):
            words.append(masked)
    return " ".join(words)


def reason(stage: str, error: BaseException) -> str:
    """`<ExceptionType> in <stage>: <message, redacted>` — short, and safe to show and store."""
    detail = redact(str(error))
    text = f"{type(error).__name__} in {stage}" + (f": {detail}" if detail else "")
    return text[:_REASON_CHARS]


@dataclass(frozen=True)
class DeadLetter:
    id: int
    brand: str
    source: str
    kind: str
    message_id: str
    reason: str
    dead_at: datetime
    attempts: int

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "brand": self.brand,
            "source": self.source,
            "kind": self.kind,
            "message_id": self.message_id,
            "reason": self.reason,
            "dead_at": self.dead_at,
            "attempts": self.attempts,
        }


def list_dead_letters(store: Store) -> list[DeadLetter]:
    """Open dead letters, oldest first; never the payload (it may hold PII)."""
    query = (
        select(
            InboxMessage.id,
            InboxMessage.brand,
            InboxMessage.source,
            InboxMessage.kind,
            InboxMessage.message_id,
            InboxMessage.dead_reason,
            InboxMessage.dead_at,
            InboxMessage.attempts,
        )
        .where(*OPEN_DEAD)
        .order_by(InboxMessage.id)
    )
    with store.unit_of_work() as session:
        return [_letter(r) for r in session.execute(query)]


def _open_dead_letter(session: Session, message_id: int) -> InboxMessage:
    """The dead letter `message_id`, locked; a one-line error for any other id."""
    row = session.get(InboxMessage, message_id, with_for_update=True)
    if row is None:
        raise DeadLetterError(f"no inbox message {message_id} (无此消息)")
    if row.dropped_at is not None:
        raise DeadLetterError(f"{message_id} was dropped by {row.dropped_by or '?'} (已丢弃)")
    if row.dead_at is None:
        state = "loaded (已入湖)" if row.loaded_at is not None else "pending (待入湖)"
        raise DeadLetterError(f"{message_id} is not a dead letter: {state}")
    return row


def do_retry(store: Store, message_id: int) -> DeadLetter:
    """Put a dead letter back in the queue: the loader takes it in its next cycle (if it fails
    again it is dead-lettered again, `attempts` one higher)."""
    with store.write_unit() as session:
        row = _open_dead_letter(session, message_id)
        letter = _letter(row)
        row.dead_at = None
        row.dead_reason = None
    return letter


def do_drop(store: Store, message_id: int, by: str, at: datetime) -> DeadLetter:
    """Take a dead letter out of the queue for good; the row stays, stamped with who and when."""
    with store.write_unit() as session:
        row = _open_dead_letter(session, message_id)
        row.dropped_at, row.dropped_by = at, by
        return _letter(row)


def _letter(row: Any) -> DeadLetter:
    """From an `InboxMessage` or a row of its columns (without the payload)."""
    why, at = row.dead_reason or "", as_utc(row.dead_at)
    return DeadLetter(row.id, row.brand, row.source, row.kind, row.message_id, why, at, row.attempts)
