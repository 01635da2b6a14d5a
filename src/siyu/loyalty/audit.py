"""Loyalty changes on the one audit trail (siyu.audit): enrolments, tiers, coupons, programs and mall
orders, in the same transaction as the change. The points ledger is its own trail.

Subjects: `loyalty_account:<program>/<account id>` for member and tier changes, `coupon:<code>`,
`loyalty_program:<program>`, `mall_redemption:<program>/<reward>#<id>`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from siyu.audit.trail import record_many, row
from siyu.core.actor import Actor

_SUBJECTS = {"member": "loyalty_account", "tier": "loyalty_account", "coupon": "coupon",
             "program": "loyalty_program", "mall": "mall_redemption"}  # fmt: skip


def audit_row(
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    program: str | None,
    account_id: int | None = None,
    subject: str | None = None,
    old: Any = None,
    new: Any = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    family = action.partition(".")[0]
    subject_type = _SUBJECTS.get(family, "loyalty")
    if subject_type == "loyalty_account":
        subject_id = f"{program}/{account_id}"
        # what the change was about (the customer enrolled, the reason of a tier move) goes with it
        new = {"value": new, "note": subject} if subject is not None else new
    elif subject_type == "coupon":
        subject_id = subject or ""
    elif subject_type == "loyalty_program":
        subject_id = program or ""
        new = {"value": new, "file": subject} if subject is not None else new
    else:
        subject_id = f"{program}/{subject}"
    return row(
        at=at, actor=Actor.parse(actor), action=action, subject_type=subject_type, subject_id=subject_id,
        before=old, after=new, request_id=request_id,
    )  # fmt: skip


def audit(session: Session, **values: Any) -> None:
    record_many(session, [audit_row(**values)])
