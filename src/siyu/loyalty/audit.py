"""The loyalty audit trail: every points, tier, coupon, program and mall change, in the same
transaction as the change (who, what, when, old → new)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.orm import Session

from siyu.loyalty.models import LoyaltyAudit


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def audit(
    session: Session,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    program: str | None,
    account_id: int | None = None,
    subject: str | None = None,
    old: Any = None,
    new: Any = None,
) -> None:
    session.add(
        LoyaltyAudit(
            at=at,
            actor=actor,
            action=action,
            program=program,
            account_id=account_id,
            subject=subject,
            old=_text(old),
            new=_text(new),
        )
    )
