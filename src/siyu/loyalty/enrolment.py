"""Bulk enrolment (批量入会) for the sync and the migration: a few set-based statements per chunk
instead of one `do_enrol` per member. Same outcome as `accounts.do_enrol` row by row: an account
per new member number (lowest tier unless the row names one), a link per brand customer, the
first tier-history row and an audit row per account."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from siyu.audit.trail import record_many
from siyu.loyalty.audit import audit_row
from siyu.loyalty.lots import add_months
from siyu.loyalty.models import AccountLink, LoyaltyAccount, TierChange
from siyu.loyalty.program import Program


def bulk_enrol(
    session: Session, program: Program, rows: Sequence[dict[str, Any]], *, actor: str, at: dt.datetime
) -> int:
    """Enrol `rows` (brand, customer_id, member_no|None, tier|None (code), joined_at, store, guide,
    via, birthday_month) not linked yet; returns how many accounts were created."""
    code = program.program
    for r in rows:
        r["member_no"] = r["member_no"] or f"{r['brand']}-{r['customer_id']}"
    numbers = sorted({r["member_no"] for r in rows})
    existing: dict[str, int] = {}
    for i in range(0, len(numbers), 5000):
        part = numbers[i : i + 5000]
        existing.update(
            session.execute(
                select(LoyaltyAccount.member_no, LoyaltyAccount.id).where(
                    LoyaltyAccount.program == code, LoyaltyAccount.member_no.in_(part)
                )
            )
            .tuples()
            .all()
        )
    lowest = program.tiers.levels[0].code
    until = add_months(at.date(), program.tiers.protection_months)
    protected = dt.datetime(until.year, until.month, until.day, tzinfo=dt.UTC)
    new: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["member_no"] in existing or r["member_no"] in new:
            continue
        new[r["member_no"]] = {
            "program": code,
            "member_no": r["member_no"],
            "brand": r["brand"],
            "enrolled_at": r["joined_at"] or at,
            "enrolled_via": r["via"],
            "enrol_store": r["store"],
            "enrol_guide": r["guide"],
            "birthday_month": r["birthday_month"],
            "tier": r["tier"] or lowest,
            "tier_since": r["joined_at"] or at,
            "growth": 0,
            "balance": 0,
            "debt": 0,
            "status": "active",
            # A tier carried over from the legacy system is kept for the protection period.
            "tier_protected_until": protected if r["tier"] else None,
        }
    if new:
        session.execute(insert(LoyaltyAccount), list(new.values()))
        created = sorted(new)
        for i in range(0, len(created), 5000):
            part = created[i : i + 5000]
            existing.update(
                session.execute(
                    select(LoyaltyAccount.member_no, LoyaltyAccount.id).where(
                        LoyaltyAccount.program == code, LoyaltyAccount.member_no.in_(part)
                    )
                ).all()
            )
        session.execute(
            insert(TierChange),
            [
                {
                    "account_id": existing[n],
                    "from_tier": None,
                    "to_tier": a["tier"],
                    "reason": f"enrolled ({a['enrolled_via']})",
                    "actor": actor,
                    "at": a["enrolled_at"],
                }
                for n, a in new.items()
            ],
        )
    session.execute(
        insert(AccountLink),
        [
            {
                "program": code,
                "brand": r["brand"],
                "customer_id": r["customer_id"],
                "account_id": existing[r["member_no"]],
                "linked_at": at,
            }
            for r in rows
        ],
    )
    record_many(
        session,
        [
            audit_row(
                at=at,
                actor=actor,
                action="member.enrol" if r["member_no"] in new else "member.link",
                program=code,
                account_id=existing[r["member_no"]],
                subject=f"{r['brand']}:{r['customer_id']}",
                new={"member_no": r["member_no"], "via": r["via"]},
            )
            for r in rows
        ],
    )
    return len(new)
