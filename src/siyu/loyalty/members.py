"""What a member looks like to a person (CLI, customer view): tier, points, lots, coupons, history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.loyalty.accounts import linked_customers, utc
from siyu.loyalty.models import AccountLink, LoyaltyAccount, TierChange
from siyu.loyalty.points import open_lots
from siyu.loyalty.programs import load_program


def accounts_of_customer(session: Session, brand: str, customer_id: str) -> list[LoyaltyAccount]:
    """The customer's accounts, one per program they are a member of."""
    return list(
        session.scalars(
            select(LoyaltyAccount)
            .join(AccountLink, AccountLink.account_id == LoyaltyAccount.id)
            .where(AccountLink.brand == brand, AccountLink.customer_id == customer_id)
            .order_by(LoyaltyAccount.program)
        )
    )


def member_summary(session: Session, account: LoyaltyAccount, *, lots: int = 5) -> dict[str, Any]:
    from siyu.loyalty.coupons import coupons_of

    program = load_program(session, account.program)
    tier = program.tier(account.tier)
    history = session.scalars(
        select(TierChange).where(TierChange.account_id == account.id).order_by(TierChange.id.desc()).limit(10)
    )
    return {
        "program": account.program,
        "program_name_zh": program.name_zh,
        "program_name_en": program.name_en,
        "member_no": account.member_no,
        "enrolled_at": utc(account.enrolled_at).isoformat(),
        "enrolled_via": account.enrolled_via,
        "tier": account.tier,
        "tier_name_zh": tier.name_zh if tier else None,
        "tier_name_en": tier.name_en if tier else None,
        "tier_protected_until": utc(account.tier_protected_until).isoformat() if account.tier_protected_until else None,
        "growth": account.growth,
        "points": {
            "balance": account.balance,
            "debt": account.debt,
            "lots": [
                {
                    "points": lot.remaining,
                    "brand": lot.brand,
                    "expires_at": utc(lot.expires_at).isoformat() if lot.expires_at else None,
                }
                for lot in open_lots(session, account.id)[:lots]
            ],
        },
        "flags": list(tier.flags) if tier else [],
        "coupons": [
            {"code": c.code, "template": c.template, "status": c.status, "valid_to": utc(c.valid_to).isoformat()}
            for c in coupons_of(session, account.id)
        ],
        "tier_history": [
            {"at": utc(h.at).isoformat(), "from": h.from_tier, "to": h.to_tier, "reason": h.reason} for h in history
        ],
        "customers": [{"brand": b, "customer_id": c} for b, c in linked_customers(session, account.id)],
    }
