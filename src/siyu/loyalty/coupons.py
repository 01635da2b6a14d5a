"""Coupons (优惠券): issue from a template, redeem against an order, void.

A template's `issued` counter and the per-customer limit are checked with the template row locked
(SELECT … FOR UPDATE on PostgreSQL; SQLite's write transaction holds the database lock), so
concurrent issuers queue instead of overselling. Issuing is idempotent by `issue_key`; redeeming
is idempotent by order. Every change writes an audit row in the caller's unit of work.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.core.actor import Actor
from siyu.events.catalogue import CouponIssued
from siyu.loyalty.accounts import require_account, utc
from siyu.loyalty.audit import audit
from siyu.loyalty.errors import CouponError, IdempotencyConflictError, LimitError, NotMemberError, StockError
from siyu.loyalty.models import AccountLink, Coupon, CouponTemplate
from siyu.loyalty.program import CouponSpec, Program
from siyu.loyalty.programs import load_program
from siyu.store.db import Store
from siyu.store.uow import UnitOfWork

VIAS = ("single", "bulk", "guide", "api", "mall", "tier", "journey")  # journey: a `coupon` step
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: codes are read out and typed at the till
CODE_LENGTH = 12


@dataclass(frozen=True)
class IssuedCoupon:
    code: str
    template: str
    account_id: int
    valid_from: dt.datetime
    valid_to: dt.datetime
    status: str
    replayed: bool = False


@dataclass(frozen=True)
class RedeemedCoupon:
    code: str
    template: str
    kind: str
    discount_fen: int
    order_id: str
    replayed: bool = False


@dataclass
class BulkIssue:
    """The outcome of a bulk issue: `skipped` counts accounts by reason (out_of_stock, limit_reached,
    not_a_member), so a rerun reports replays and the same skips and changes nothing."""

    issued: int = 0
    replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    codes: list[str] = field(default_factory=list)


# --- pure rules -------------------------------------------------------------------------------


def validity(spec: CouponSpec, issued_at: dt.datetime, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """[valid_from, valid_to) as UTC instants. Dated coupons run from the start of `valid_from` to
    the start of the day after `valid_to`, in the program's time zone; others `valid_days` from issue."""
    if spec.valid_days is not None:
        return issued_at, issued_at + dt.timedelta(days=spec.valid_days)
    assert spec.valid_from is not None and spec.valid_to is not None
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(spec.valid_from, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(spec.valid_to + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def discount_of(spec: CouponSpec, amount_fen: int) -> int:
    """The order discount in fen: never more than the order. Gift and free-shipping coupons take
    nothing off the order amount (their cost is the gift or the freight)."""
    if spec.kind == "amount_off":
        off = spec.amount_fen or 0
    elif spec.kind == "percent_off":
        off = amount_fen * (spec.percent or 0) // 100
        if spec.cap_fen is not None:
            off = min(off, spec.cap_fen)
    else:
        off = 0
    return max(0, min(off, amount_fen))


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


# --- lookups ----------------------------------------------------------------------------------


def _spec(session: Session, program: Program, template: str) -> CouponSpec:
    spec = program.coupon(template)
    if spec is not None:
        return spec
    row = session.get(CouponTemplate, (program.program, template))
    if row is None:
        known = ", ".join(c.code for c in program.coupons) or "none"
        raise CouponError(
            f"no coupon template {template!r} in program {program.program!r}; known: {known} (券模板不存在)"
        )
    return CouponSpec.model_validate_json(row.spec)


def _lock_template(session: Session, program: Program, template: str) -> CouponTemplate:
    row = session.scalar(
        select(CouponTemplate)
        .where(CouponTemplate.program == program.program, CouponTemplate.code == template)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        known = ", ".join(c.code for c in program.coupons) or "none"
        raise CouponError(
            f"no coupon template {template!r} in program {program.program!r}; known: {known}. "
            "Add it to the program file and apply it (券模板不存在)"
        )
    return row


def lock_coupon(session: Session, program: Program, code: str) -> Coupon:
    coupon = session.scalar(
        select(Coupon)
        .where(Coupon.program == program.program, Coupon.code == code.strip().upper())
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if coupon is None:
        raise CouponError(f"no coupon {code!r} in program {program.program!r} (券码不存在)")
    return coupon


def _issued(coupon: Coupon, replayed: bool) -> IssuedCoupon:
    return IssuedCoupon(
        coupon.code,
        coupon.template,
        coupon.account_id,
        utc(coupon.valid_from),
        utc(coupon.valid_to),
        coupon.status,
        replayed,
    )


def coupons_of(session: Session, account_id: int) -> list[Coupon]:
    """A member's coupons, newest first (the customer view)."""
    query = select(Coupon).where(Coupon.account_id == account_id).order_by(Coupon.issued_at.desc(), Coupon.code)
    return list(session.scalars(query))


def accounts_of_customers(
    session: Session, program_code: str, brand: str, customer_ids: Sequence[str]
) -> dict[str, int]:
    """customer_id → account id for the brand customers that are members (others are left out),
    so a list file or an audience can be issued to."""
    found: dict[str, int] = {}
    ids = list(dict.fromkeys(customer_ids))
    for i in range(0, len(ids), 1000):  # keep under the drivers' bound-parameter limits
        rows = session.execute(
            select(AccountLink.customer_id, AccountLink.account_id).where(
                AccountLink.program == program_code,
                AccountLink.brand == brand,
                AccountLink.customer_id.in_(ids[i : i + 1000]),
            )
        )
        found.update({c: a for c, a in rows})
    return found


# --- issue ------------------------------------------------------------------------------------


def do_issue_coupon(
    session: Session,
    program: Program,
    template: str,
    account_id: int,
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    via: str = "single",
    guide: str | None = None,
) -> IssuedCoupon:
    """Issue one coupon of `template` to an account (发券). Idempotent by `key`: a replay returns
    the coupon issued the first time. Refuses when the template's stock is used up (StockError),
    the member already holds `per_customer_limit` coupons of it (LimitError), or a dated
    template has ended (CouponError)."""
    if via not in VIAS:
        raise CouponError(f"issue channel {via!r} is not one of {', '.join(VIAS)}")
    spec = _spec(session, program, template)
    row = _lock_template(session, program, template)
    seen = session.scalar(select(Coupon).where(Coupon.program == program.program, Coupon.issue_key == key))
    if seen is not None:
        if seen.template != template or seen.account_id != account_id:
            raise IdempotencyConflictError(
                f"idempotency key {key!r} already issued coupon {seen.template} to account {seen.account_id}; "
                "use a new key (幂等键已被使用)"
            )
        return _issued(seen, True)
    require_account(session, program.program, account_id)
    valid_from, valid_to = validity(spec, at, program.timezone)
    if at >= valid_to:
        raise CouponError(
            f"coupon {template} ended on {spec.valid_to} ({program.timezone}); it can no longer be issued (券已过期)"
        )
    if row.stock is not None and row.issued >= row.stock:
        raise StockError(f"coupon {template}: all {row.stock} issued; raise `stock` in the program file (券库存不足)")
    if row.per_customer_limit is not None:
        held = session.scalar(
            select(func.count())
            .select_from(Coupon)
            .where(
                Coupon.program == program.program,
                Coupon.account_id == account_id,
                Coupon.template == template,
                Coupon.status != "voided",
            )
        )
        if (held or 0) >= row.per_customer_limit:
            raise LimitError(
                f"account {account_id} already holds {held} coupon(s) {template}, "
                f"the limit is {row.per_customer_limit} (超出每人限领)"
            )
    code = new_code()
    while session.get(Coupon, code) is not None:  # 32^12 codes: a collision is rare but possible
        code = new_code()
    coupon = Coupon(
        code=code,
        program=program.program,
        template=template,
        account_id=account_id,
        issue_key=key,
        issued_at=at,
        issued_by=actor,
        issued_via=via,
        valid_from=valid_from,
        valid_to=valid_to,
        status="issued",
    )
    session.add(coupon)
    row.issued += 1
    session.flush()
    audit(
        session,
        at=at,
        actor=actor,
        action="coupon.issue",
        program=program.program,
        account_id=account_id,
        subject=code,
        new={"template": template, "via": via, "guide": guide, "key": key, "valid_to": valid_to},
    )
    return _issued(coupon, False)


def do_issue_many(
    uow: UnitOfWork,
    program: Program,
    template: str,
    account_ids: Sequence[int],
    *,
    key: str,
    via: str = "bulk",
    guide: str | None = None,
    keep_codes: bool = False,
) -> BulkIssue:
    """Issue a template to each of `account_ids` in this unit of work. Each account's key is
    `{key}:{account_id}`, so a rerun (or a rerun with a longer list) replays what was issued and
    issues only the rest. Out of stock or over the limit skips an account, not the call; what was
    newly issued is announced as one `CouponIssued` event."""
    result = BulkIssue()
    new: list[tuple[int, str]] = []
    for account_id in dict.fromkeys(account_ids):
        try:
            issued = do_issue_coupon(
                uow.session, program, template, account_id,
                key=f"{key}:{account_id}", at=uow.now, actor=str(uow.actor), via=via, guide=guide,
            )  # fmt: skip
        except (StockError, LimitError, NotMemberError) as skip:
            # raised before anything was written for this account: the others go on
            result.skipped[skip.code] = result.skipped.get(skip.code, 0) + 1
            continue
        if issued.replayed:
            result.replayed += 1
        else:
            result.issued += 1
            new.append((account_id, issued.code))
        if keep_codes:
            result.codes.append(issued.code)
    if new:
        brand = program.brands[0] if len(program.brands) == 1 else None
        uow.emit(CouponIssued(brand, program.program, template, tuple(a for a, _ in new), tuple(c for _, c in new)))
    return result


def do_issue_bulk(
    store: Store,
    program_code: str,
    template: str,
    account_ids: Sequence[int],
    *,
    key: str,
    at: dt.datetime,
    actor: str,
    via: str = "bulk",
    guide: str | None = None,
    chunk: int = 1000,
    keep_codes: bool = False,
) -> BulkIssue:
    """A bulk issue job (批量发券): `do_issue_many` over `chunk` accounts per unit of work, so a big
    list does not hold one transaction; a rerun after a crash replays the chunks already done."""
    result = BulkIssue()
    ids = list(dict.fromkeys(account_ids))
    for i in range(0, len(ids), chunk):
        with store.begin(Actor.parse(actor), now=at) as uow:
            program = load_program(uow.session, program_code)
            part = do_issue_many(
                uow, program, template, ids[i : i + chunk], key=key, via=via, guide=guide, keep_codes=keep_codes
            )
        result.issued += part.issued
        result.replayed += part.replayed
        result.codes += part.codes
        for code, n in part.skipped.items():
            result.skipped[code] = result.skipped.get(code, 0) + n
    return result


# --- redeem and void --------------------------------------------------------------------------


def _check_stacking(session: Session, program: Program, spec: CouponSpec, code: str, others: Sequence[str]) -> None:
    codes = [c.strip().upper() for c in others if c.strip().upper() != code]
    if not codes:
        return
    found = dict(
        session.execute(
            select(Coupon.code, Coupon.template).where(Coupon.program == program.program, Coupon.code.in_(codes))
        ).all()
    )
    if missing := [c for c in codes if c not in found]:
        raise CouponError(f"unknown coupon(s) used with {code}: {', '.join(missing)} (券码不存在)")
    blockers = [code] if not spec.stackable else []
    blockers += [c for c in codes if not _spec(session, program, found[c]).stackable]
    if blockers:
        raise CouponError(
            f"coupon(s) {', '.join(blockers)} cannot be combined with other coupons on one order (该券不可叠加使用)"
        )


def do_redeem_coupon(
    session: Session,
    program: Program,
    code: str,
    *,
    order_id: str,
    brand: str,
    channel: str | None,
    store: str | None,
    amount_fen: int,
    at: dt.datetime,
    actor: str,
    other_codes: Sequence[str] = (),
) -> RedeemedCoupon:
    """Use a coupon on an order (核销) and return the discount. Redeeming it again for the same
    order replays; for another order it is refused. `other_codes` are the other coupons on the same
    order: more than one coupon needs every one of them to be stackable."""
    if amount_fen < 0:
        raise CouponError("amount_fen (order amount in fen) cannot be negative")
    coupon = lock_coupon(session, program, code)
    spec = _spec(session, program, coupon.template)
    if coupon.status == "redeemed":
        if coupon.redeemed_order == order_id:
            return RedeemedCoupon(coupon.code, coupon.template, spec.kind, coupon.discount_fen or 0, order_id, True)
        raise CouponError(f"coupon {coupon.code} was already redeemed on order {coupon.redeemed_order} (券已核销)")
    if coupon.status != "issued":
        raise CouponError(f"coupon {coupon.code} is {coupon.status} and cannot be used (券已作废)")
    if at < utc(coupon.valid_from):
        raise CouponError(f"coupon {coupon.code} is valid from {utc(coupon.valid_from).isoformat()} (券未到使用时间)")
    if at >= utc(coupon.valid_to):
        raise CouponError(f"coupon {coupon.code} expired at {utc(coupon.valid_to).isoformat()} (券已过期)")
    allowed = spec.brands or program.brands
    if brand not in allowed:
        raise CouponError(f"coupon {coupon.code} is for brand(s) {', '.join(allowed)}, not {brand} (该品牌不可用)")
    if amount_fen < spec.threshold_fen:
        raise CouponError(
            f"coupon {coupon.code} needs an order of at least {spec.threshold_fen} fen, "
            f"this one is {amount_fen} (未达到使用门槛)"
        )
    _check_stacking(session, program, spec, coupon.code, other_codes)
    discount = discount_of(spec, amount_fen)
    coupon.status, coupon.redeemed_at, coupon.redeemed_order = "redeemed", at, order_id
    coupon.redeemed_brand, coupon.redeemed_channel, coupon.redeemed_store = brand, channel, store
    coupon.discount_fen = discount
    audit(
        session,
        at=at,
        actor=actor,
        action="coupon.redeem",
        program=program.program,
        account_id=coupon.account_id,
        subject=coupon.code,
        old={"status": "issued"},
        new={"status": "redeemed", "order_id": order_id, "brand": brand, "store": store, "discount_fen": discount},
    )
    return RedeemedCoupon(coupon.code, coupon.template, spec.kind, discount, order_id)


def _void(session: Session, program: Program, coupon: Coupon, *, at: dt.datetime, actor: str, reason: str) -> None:
    old = coupon.status
    coupon.status, coupon.voided_at = "voided", at
    audit(
        session,
        at=at,
        actor=actor,
        action="coupon.void",
        program=program.program,
        account_id=coupon.account_id,
        subject=coupon.code,
        old={"status": old},
        new={"status": "voided", "reason": reason},
    )


def do_void_coupon(session: Session, program: Program, code: str, *, at: dt.datetime, actor: str, reason: str) -> None:
    """Void a coupon (作废): it can no longer be used and no longer counts towards the member's
    limit; a voided redeemed coupon drops out of the cost report. Voiding twice changes nothing."""
    if not reason.strip():
        raise CouponError("voiding a coupon needs a reason (请填写作废原因)")
    coupon = lock_coupon(session, program, code)
    if coupon.status != "voided":
        _void(session, program, coupon, at=at, actor=actor, reason=reason)


def void_for_refund(session: Session, program: Program, order_id: str, *, at: dt.datetime, actor: str) -> list[str]:
    """When an order is fully refunded, void the coupons redeemed on it whose template says
    `void_on_refund` (the default). Returns the codes voided now (none on a repeat)."""
    coupons = session.scalars(
        select(Coupon)
        .where(Coupon.program == program.program, Coupon.redeemed_order == order_id, Coupon.status == "redeemed")
        .order_by(Coupon.code)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    voided = []
    for coupon in coupons:
        if _spec(session, program, coupon.template).void_on_refund:
            _void(session, program, coupon, at=at, actor=actor, reason=f"order {order_id} refunded")
            voided.append(coupon.code)
    return voided
