"""Revealing personal information (明文查看): the one place clear PII leaves its ciphertext for a
person. Callers check who may (console permission `customers.pii` / `imports.edit`, API scope `pii`,
the CLI operator who holds the key); this function demands a stated purpose and writes the audit row
in the caller's unit of work, so a reveal without its record cannot happen."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from siyu.core.errors import SiyuError
from siyu.store.uow import UnitOfWork

T = TypeVar("T")
MAX_PURPOSE = 200  # the audit row's subject and purpose stay readable


class RevealPurposeError(SiyuError):
    code = "reveal_purpose_required"
    exit_code = 2


def do_reveal(
    uow: UnitOfWork,
    open_clear: Callable[[], T],
    *,
    purpose: str,
    subject_type: str,
    subject_ids: list[str],
    brand: str | None = None,
) -> T:
    """Run `open_clear` (the decryption) and audit `pii.reveal`: actor, purpose, what was revealed."""
    purpose = purpose.strip()
    if not purpose:
        raise RevealPurposeError("state the purpose of revealing personal information, e.g. --purpose '更正后重新导入'")
    if len(purpose) > MAX_PURPOSE:
        raise RevealPurposeError(f"the purpose is at most {MAX_PURPOSE} characters (用途过长)")
    clear = open_clear()
    shown = subject_ids[:100]
    uow.audit(
        "pii.reveal",
        subject_type,
        ",".join(shown)[:200] if subject_ids else "-",
        brand=brand,
        after={"purpose": purpose, "count": len(subject_ids), "ids": shown},
    )
    return clear
