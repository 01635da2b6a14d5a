"""Member accounts (会员账户): enrolment, lookup and the row lock every ledger write takes first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.loyalty.audit import audit
from siyu.loyalty.errors import NotMemberError, UnknownCustomerError
from siyu.loyalty.models import AccountLink, LoyaltyAccount, TierChange
from siyu.loyalty.program import Program


def utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; everything stored is UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# (brand, customer_id) → whether it is a One-ID customer of that brand (identity.service.is_customer)
IsCustomer = Callable[[str, str], bool]


@dataclass(frozen=True)
class Enrolment:
    account_id: int
    member_no: str
    created: bool


def account_of(session: Session, program: str, *, brand: str, customer_id: str) -> LoyaltyAccount | None:
    link = session.get(AccountLink, (program, brand, customer_id))
    return session.get(LoyaltyAccount, link.account_id) if link else None


def account_by_member_no(session: Session, program: str, member_no: str) -> LoyaltyAccount | None:
    return session.scalar(
        select(LoyaltyAccount).where(LoyaltyAccount.program == program, LoyaltyAccount.member_no == member_no)
    )


def require_account(session: Session, program: str, account_id: int) -> LoyaltyAccount:
    account = session.get(LoyaltyAccount, account_id)
    if account is None or account.program != program:
        raise NotMemberError(f"no account {account_id} in program {program!r}")
    return account


def lock_account(session: Session, account_id: int) -> LoyaltyAccount:
    """The account row, locked until commit (SELECT … FOR UPDATE on PostgreSQL; on SQLite the
    write transaction already holds the database lock). Every balance change starts here, so
    concurrent writers to one account queue instead of overwriting each other."""
    account = session.scalar(
        select(LoyaltyAccount)
        .where(LoyaltyAccount.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if account is None:
        raise NotMemberError(f"no loyalty account {account_id}")
    return account


def linked_customers(session: Session, account_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(AccountLink.brand, AccountLink.customer_id).where(AccountLink.account_id == account_id)
    )
    return [(b, c) for b, c in rows]


def do_enrol(
    session: Session,
    program: Program,
    *,
    brand: str,
    customer_id: str,
    at: dt.datetime,
    actor: str,
    via: str,
    member_no: str | None = None,
    tier: str | None = None,
    store: str | None = None,
    guide: str | None = None,
    birthday_month: int | None = None,
) -> Enrolment:
    """Enrol a brand customer (idempotent). In a group program a customer of another brand with
    the same member number joins the existing account (积分互通)."""
    if brand not in program.brands:
        raise NotMemberError(f"brand {brand!r} is not part of program {program.program!r}")
    existing = account_of(session, program.program, brand=brand, customer_id=customer_id)
    if existing is not None:
        return Enrolment(existing.id, existing.member_no, False)
    number = member_no or f"{brand}-{customer_id}"
    account = account_by_member_no(session, program.program, number)
    created = account is None
    try:
        with session.begin_nested():
            if account is None:
                first = program.tier(tier) or program.tiers.levels[0]
                account = LoyaltyAccount(
                    program=program.program,
                    member_no=number,
                    brand=brand,
                    enrolled_at=at,
                    enrolled_via=via,
                    enrol_store=store,
                    enrol_guide=guide,
                    birthday_month=birthday_month,
                    tier=first.code,
                    tier_since=at,
                    growth=0,
                    balance=0,
                    debt=0,
                    status="active",
                )
                session.add(account)
                session.flush()
                session.add(
                    TierChange(
                        account_id=account.id,
                        from_tier=None,
                        to_tier=first.code,
                        reason=f"enrolled ({via})",
                        actor=actor,
                        at=at,
                    )
                )
            session.add(
                AccountLink(
                    program=program.program, brand=brand, customer_id=customer_id, account_id=account.id, linked_at=at
                )
            )
            session.flush()
    except IntegrityError:
        # A concurrent enrolment of the same customer or member number won: use its account.
        again = account_of(session, program.program, brand=brand, customer_id=customer_id)
        again = again or account_by_member_no(session, program.program, number)
        if again is None:
            raise
        return do_enrol(
            session, program, brand=brand, customer_id=customer_id, at=at, actor=actor, via=via, member_no=number
        )
    audit(
        session,
        at=at,
        actor=actor,
        action="member.enrol" if created else "member.link",
        program=program.program,
        account_id=account.id,
        subject=f"{brand}:{customer_id}",
        new={"member_no": number, "via": via, "tier": account.tier},
    )
    return Enrolment(account.id, number, created)


def do_enrol_customer(
    session: Session,
    program: Program,
    is_customer: IsCustomer,
    *,
    brand: str,
    customer_id: str,
    at: dt.datetime,
    actor: str,
    via: str,
    member_no: str | None = None,
) -> Enrolment:
    """Enrol one customer that a caller names (API, CLI; idempotent). The id must be a One-ID
    customer of `brand` — else anyone could open accounts for made-up ids, or for another brand's
    customers — so it is looked up unless the customer is linked already. Bulk enrolment (sync,
    migration) takes its customers from the identity map itself."""
    if account_of(session, program.program, brand=brand, customer_id=customer_id) is None and not is_customer(
        brand, customer_id
    ):
        raise UnknownCustomerError(
            f"{customer_id!r} is not a customer of brand {brand} (未找到客户): enrol One-ID customer ids, "
            "as given by GET /api/v1/customers or `siyu customer show`"
        )
    return do_enrol(
        session, program, brand=brand, customer_id=customer_id, at=at, actor=actor, via=via, member_no=member_no
    )
