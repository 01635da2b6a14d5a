"""Loyalty center (会员中台) over HTTP: programs, member balances and history, points redemption,
adjustments and reversals, coupons and the points mall — the same `do_*` services as the CLI.

A key sees the programs that include its brand (any other program is 404 `unknown_program`), and
`{customer_id}` is a One-ID customer id of the key's brand. Reads need `read`; enrolling, redeeming,
issuing coupons and mall orders need `loyalty`; adjustments and reversals need `admin`. Every write
runs in one store transaction and is audited as `api-key:<id>`. Writes carry an `idempotency_key`
(coupon redemptions: the order id): a retry returns the first answer with `replayed: true` and 200.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from itertools import groupby
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.api.deps import (
    ApiState,
    ComputeDep,
    CustomerScope,
    ReadKey,
    StateDep,
    check_customers,
    require,
    visible_customers,
)
from siyu.api.errors import REQUEST_ID, ApiError
from siyu.api.gzip import GzipRoute
from siyu.api.keys import KeyInfo
from siyu.api.schemas.loyalty import (
    COUPONS_SHOWN,
    EXPIRING_SHOWN,
    ID_PATTERN,
    CouponBrief,
    CouponRedeem,
    CouponRedeemed,
    CouponsIssue,
    Enrolled,
    Expiring,
    HistoryPublic,
    IssuedPublic,
    IssueResult,
    MallOrderPublic,
    MallRedeem,
    MemberCreate,
    MemberPublic,
    PointsAdjust,
    PointsRedeem,
    PointsReverse,
    PointsSummary,
    Posting,
    ProgramPublic,
    ProgramsPublic,
    RewardPublic,
    RewardsPublic,
    TierPublic,
    TxnPublic,
)
from siyu.core.actor import Actor
from siyu.core.errors import NotFoundError
from siyu.events.catalogue import PointsChanged
from siyu.identity.normalise import mask_value
from siyu.identity.service import is_customer
from siyu.loyalty import coupons as wallet
from siyu.loyalty import mall
from siyu.loyalty import points as ledger
from siyu.loyalty.accounts import account_by_member_no, account_of, do_enrol_customer, linked_customers, utc
from siyu.loyalty.errors import NotMemberError, UnknownProgramError
from siyu.loyalty.models import Coupon, CouponTemplate, LoyaltyAccount, MallRedemption, PointsTxn
from siyu.loyalty.program import Program
from siyu.loyalty.programs import load_program, programs_of_brand
from siyu.store.uow import UnitOfWork

router = APIRouter(tags=["loyalty 会员中台"], route_class=GzipRoute, dependencies=[CustomerScope])
LoyaltyKey = Annotated[KeyInfo, Depends(require("loyalty"))]
AdminKey = Annotated[KeyInfo, Depends(require("admin"))]

MAX_ID = 2**63 - 1  # BIGINT ids: a larger number would overflow the database driver, not miss
CODE = r"^[A-Za-z0-9_\-]{1,64}$"
ProgramCode = Annotated[str, Path(pattern=CODE, description="program code 会员体系代码")]
CustomerId = Annotated[
    str, Path(max_length=64, pattern=ID_PATTERN, description="One-ID customer id of the key's brand")
]
TxnId = Annotated[int, Path(ge=1, le=MAX_ID, description="points transaction id 积分流水号")]
CouponCode = Annotated[str, Path(max_length=32, pattern=ID_PATTERN, description="coupon code 券码")]
RewardCode = Annotated[str, Path(pattern=CODE, description="mall reward code 商品代码")]
RedemptionId = Annotated[int, Path(ge=1, le=MAX_ID, description="mall redemption id 兑换单号")]

CREATED: dict[int | str, dict[str, Any]] = {
    201: {"description": "recorded 已记录"},
    200: {"description": "replayed: recorded before 重放"},
}


# --- helpers -----------------------------------------------------------------------------------


def _unit(state: ApiState, key: KeyInfo, request: Request) -> AbstractContextManager[UnitOfWork]:
    """The request's one unit of work: its actor is the key, its request id the X-Request-Id."""
    return state.app.store.begin(Actor.api_key(key.id), request_id=request.scope.get(REQUEST_ID))


def _points_changed(uow: UnitOfWork, spec: Program, posted: ledger.Posted, brand: str) -> None:
    if not posted.replayed:
        uow.emit(PointsChanged(brand, spec.program, (posted.account_id,), posted.kind))


def _program(session: Session, code: str, key: KeyInfo) -> Program:
    """The program, if it includes the key's brand; otherwise it does not exist for this key."""
    program = load_program(session, code)
    if key.brand not in program.brands:
        raise UnknownProgramError(f"no loyalty program {code!r} for brand {key.brand} (未找到会员体系)")
    return program


def _member(session: Session, program: Program, key: KeyInfo, customer_id: str) -> LoyaltyAccount:
    account = account_of(session, program.program, brand=key.brand, customer_id=customer_id)
    if account is None:
        raise NotMemberError(
            f"customer {customer_id!r} of brand {key.brand} is not a member of program {program.program!r} "
            f"(非会员); enrol with POST /api/v1/loyalty/{program.program}/members"
        )
    return account


def _member_no(number: str, key: KeyInfo) -> str:
    """Member numbers leave the API masked unless the key has `pii`: the customer 360's rule."""
    return number if key.allows("pii") else mask_value("member_no", number)


def _customer_of(session: Session, account_id: int, key: KeyInfo) -> str | None:
    """The key's brand's customer id of an account; None when the account is not one of the brand's."""
    return next((customer for brand, customer in linked_customers(session, account_id) if brand == key.brand), None)


def _posting(posted: ledger.Posted, response: Response) -> Posting:
    response.status_code = 200 if posted.replayed else 201
    return Posting.model_validate(posted)


def _expiring(session: Session, account_id: int) -> list[Expiring]:
    """Open lots grouped by expiry date, soonest first (lots that never expire are not listed)."""
    dated = [(utc(lot.expires_at), lot.remaining) for lot in ledger.open_lots(session, account_id) if lot.expires_at]
    grouped = [(at, sum(n for _, n in lots)) for at, lots in groupby(sorted(dated), key=lambda x: x[0])]
    return [Expiring(points=n, expires_at=at) for at, n in grouped[:EXPIRING_SHOWN]]


def _coupons(session: Session, account_id: int) -> list[CouponBrief]:
    return [CouponBrief.model_validate(c) for c in wallet.coupons_of(session, account_id)[:COUPONS_SHOWN]]


# --- programs and members ----------------------------------------------------------------------


@router.get("/api/v1/loyalty/programs", summary="Programs of the key's brand 会员体系")
def programs(key: ReadKey, state: StateDep) -> ProgramsPublic:
    with state.app.store.unit_of_work() as session:
        found = [load_program(session, code) for code in sorted(programs_of_brand(session, key.brand))]
    return ProgramsPublic(
        programs=[
            ProgramPublic(
                code=p.program,
                version=p.version,
                level=p.level,
                name_zh=p.name_zh,
                name_en=p.name_en,
                group=p.group,
                brands=list(p.brands),
                tier_basis=p.tiers.basis,
                tiers=[TierPublic.model_validate(t) for t in p.tiers.levels],
            )
            for p in found
        ]
    )


@router.get("/api/v1/loyalty/{program}/members/{customer_id}", summary="Member balance 会员积分与等级")
def member(program: ProgramCode, customer_id: CustomerId, key: ReadKey, state: StateDep) -> MemberPublic:
    with state.app.store.unit_of_work() as session:
        spec = _program(session, program, key)
        account = _member(session, spec, key, customer_id)
        tier = spec.tier(account.tier)
        return MemberPublic(
            program=spec.program,
            member_no=_member_no(account.member_no, key),
            customer_id=customer_id,
            tier=account.tier,
            tier_name_zh=tier.name_zh if tier else None,
            tier_name_en=tier.name_en if tier else None,
            growth=account.growth,
            points=PointsSummary(balance=account.balance, debt=account.debt, expiring=_expiring(session, account.id)),
            flags=list(tier.flags) if tier else [],
            coupons=_coupons(session, account.id),
        )


@router.get("/api/v1/loyalty/{program}/members/{customer_id}/points", summary="Points history 积分流水")
def points_history(
    program: ProgramCode,
    customer_id: CustomerId,
    key: ReadKey,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="`next_before` of the previous page")] = None,
) -> HistoryPublic:
    with state.app.store.unit_of_work() as session:
        spec = _program(session, program, key)
        account = _member(session, spec, key, customer_id)
        txns = ledger.history(session, account.id, limit + 1, before)
    page = txns[:limit]
    return HistoryPublic(
        program=spec.program,
        customer_id=customer_id,
        transactions=[TxnPublic.model_validate(t) for t in page],
        next_before=page[-1].id if len(txns) > limit else None,
    )


@router.post(
    "/api/v1/loyalty/{program}/members",
    summary="Enrol a customer 入会",
    status_code=201,
    responses={200: {"description": "already a member 已是会员"}},
)
def enrol(
    request: Request,
    program: ProgramCode,
    body: MemberCreate,
    key: LoyaltyKey,
    state: StateDep,
    compute: ComputeDep,
    response: Response,
) -> Enrolled:
    """Idempotent: 201 when the customer joined now, 200 when they were a member already; 404
    `unknown_customer` unless `customer_id` is a One-ID customer of the key's brand."""
    check_customers(state, key, [body.customer_id])
    with _unit(state, key, request) as uow:
        session = uow.session
        spec = _program(session, program, key)
        if "api" not in spec.enrolment:
            raise ApiError(
                409,
                "enrolment_not_allowed",
                f"program {spec.program!r} does not enrol via the API (enrolment: {', '.join(spec.enrolment)}) "
                "(该会员体系不支持接口入会)",
            )
        existing = account_by_member_no(session, spec.program, body.member_no) if body.member_no else None
        linked = account_of(session, spec.program, brand=key.brand, customer_id=body.customer_id)
        if existing is not None and linked is None and not key.allows("admin"):
            # Joining an existing member's account (积分互通) pools points with it: only an admin
            # key may do that, or any key could attach a customer to a guessed member number.
            raise ApiError(
                403,
                "forbidden",
                f"member_no {body.member_no!r} already belongs to a member; linking to it needs an admin key "
                "(关联已有会员需要管理员密钥)",
            )
        done = do_enrol_customer(
            session, spec, lambda brand, customer: is_customer(compute.engine, brand, customer),
            brand=key.brand, customer_id=body.customer_id, at=uow.now, actor=str(uow.actor), via="api",
            member_no=body.member_no,
        )  # fmt: skip
    response.status_code = 201 if done.created else 200
    shown = _member_no(done.member_no, key)
    return Enrolled(program=spec.program, customer_id=body.customer_id, member_no=shown, created=done.created)


# --- points --------------------------------------------------------------------------------------


@router.post(
    "/api/v1/loyalty/{program}/members/{customer_id}/points/redeem",
    summary="Redeem points 积分抵扣",
    status_code=201,
    responses=CREATED,
)
def redeem_points(
    request: Request,
    program: ProgramCode,
    customer_id: CustomerId,
    body: PointsRedeem,
    key: LoyaltyKey,
    state: StateDep,
    response: Response,
) -> Posting:
    """Spend points first-to-expire; 409 `insufficient_points` (nothing changes) when the balance is short."""
    with _unit(state, key, request) as uow:
        session = uow.session
        spec = _program(session, program, key)
        account = _member(session, spec, key, customer_id)
        posted = ledger.do_redeem(
            session, spec, account.id, body.points, key=body.idempotency_key, at=uow.now, actor=str(uow.actor),
            brand=key.brand, order_id=body.order_id, reason=body.reason,
        )  # fmt: skip
        _points_changed(uow, spec, posted, key.brand)
    return _posting(posted, response)


@router.post(
    "/api/v1/loyalty/{program}/members/{customer_id}/points/adjust",
    summary="Adjust points (admin) 积分调整",
    status_code=201,
    responses=CREATED,
)
def adjust_points(
    request: Request,
    program: ProgramCode,
    customer_id: CustomerId,
    body: PointsAdjust,
    key: AdminKey,
    state: StateDep,
    response: Response,
) -> Posting:
    """A signed manual correction with a reason: + credits a new lot, − spends and never overdraws."""
    with _unit(state, key, request) as uow:
        session = uow.session
        spec = _program(session, program, key)
        account = _member(session, spec, key, customer_id)
        posted = ledger.do_adjust(
            session, spec, account.id, body.points, key=body.idempotency_key, at=uow.now, actor=str(uow.actor),
            reason=body.reason,
        )  # fmt: skip
        _points_changed(uow, spec, posted, key.brand)
    return _posting(posted, response)


@router.post(
    "/api/v1/loyalty/{program}/points/{txn_id}/reverse",
    summary="Reverse a transaction (admin) 积分冲正",
    status_code=201,
    responses=CREATED,
)
def reverse_points(
    request: Request,
    program: ProgramCode,
    txn_id: TxnId,
    body: PointsReverse,
    key: AdminKey,
    state: StateDep,
    response: Response,
) -> Posting:
    """Undo all or part of an earning, redemption or adjustment of a member of the key's brand."""
    with _unit(state, key, request) as uow:
        session = uow.session
        spec = _program(session, program, key)
        txn = session.get(PointsTxn, txn_id)
        customer = _customer_of(session, txn.account_id, key) if txn and txn.program == spec.program else None
        if customer is None:
            raise NotFoundError(
                f"no points transaction {txn_id} of a brand {key.brand} member in program {spec.program!r} (未找到流水)"
            )
        check_customers(state, key, [customer])  # a store- or guide-bound key: their customers' only
        posted = ledger.do_reverse(
            session, spec, txn_id, key=body.idempotency_key, at=uow.now, actor=str(uow.actor), points=body.points,
            reason=body.reason,
        )  # fmt: skip
        _points_changed(uow, spec, posted, key.brand)
    return _posting(posted, response)


# --- coupons -------------------------------------------------------------------------------------


def _issued_coupons(session: Session, program: str, key: str, members: dict[str, int]) -> list[IssuedPublic]:
    """The coupons of this request, found by the per-account keys the bulk issue gives them."""
    customer_of = {f"{key}:{account_id}": customer for customer, account_id in members.items()}
    keys = list(customer_of)
    found: list[IssuedPublic] = []
    for i in range(0, len(keys), 1000):  # bound-parameter limits
        rows = session.scalars(
            select(Coupon).where(Coupon.program == program, Coupon.issue_key.in_(keys[i : i + 1000]))
        )
        found += [IssuedPublic(customer_id=customer_of[c.issue_key], code=c.code, valid_to=c.valid_to) for c in rows]
    return sorted(found, key=lambda c: c.customer_id)


@router.post(
    "/api/v1/loyalty/{program}/coupons/issue",
    summary="Issue coupons 发券",
    status_code=201,
    responses={200: {"description": "nothing new: replayed or all skipped"}},
)
def issue_coupons(
    request: Request, program: ProgramCode, body: CouponsIssue, key: LoyaltyKey, state: StateDep, response: Response
) -> IssueResult:
    """One coupon of `template` to each member among `customer_ids` (the key's brand). Idempotent:
    each customer's coupon is keyed `{idempotency_key}:{account}`, so a retry, or a retry with a
    longer list, replays what was issued and issues only the rest. Customers who are not members,
    have reached the template's per-customer limit, or come after the stock ran out are skipped."""
    customer_ids = visible_customers(state, key, body.customer_ids)  # others count as not members
    with _unit(state, key, request) as uow:
        spec = _program(uow.session, program, key)
        if uow.session.get(CouponTemplate, (spec.program, body.template)) is None:
            known = ", ".join(c.code for c in spec.coupons) or "none"
            raise NotFoundError(f"no coupon template {body.template!r} in program {spec.program!r}; known: {known}")
        members = wallet.accounts_of_customers(uow.session, spec.program, key.brand, customer_ids)
        outcome = wallet.do_issue_many(
            uow, spec, body.template, list(members.values()), key=body.idempotency_key,
            via="guide" if body.guide else "api", guide=body.guide,
        )  # fmt: skip
        issued = _issued_coupons(uow.session, spec.program, body.idempotency_key, members)
    skipped = dict(outcome.skipped)
    if outside := len(set(body.customer_ids)) - len(members):
        skipped["not_a_member"] = skipped.get("not_a_member", 0) + outside
    response.status_code = 201 if outcome.issued else 200
    return IssueResult(issued=outcome.issued, replayed=outcome.replayed, skipped=skipped, coupons=issued)


@router.post("/api/v1/loyalty/{program}/coupons/{code}/redeem", summary="Redeem a coupon on an order 核销")
def redeem_coupon(
    request: Request, program: ProgramCode, code: CouponCode, body: CouponRedeem, key: LoyaltyKey, state: StateDep
) -> CouponRedeemed:
    """Use a coupon on an order of the key's brand and get the discount. Idempotent by order: the
    same coupon on the same order again replays; on another order it is refused (409)."""
    with _unit(state, key, request) as uow:
        session = uow.session
        spec = _program(session, program, key)
        used = wallet.do_redeem_coupon(
            session, spec, code, order_id=body.order_id, brand=key.brand, channel=body.channel,
            store=body.store_code, amount_fen=body.amount_fen, at=uow.now, actor=str(uow.actor),
            other_codes=body.other_codes,
        )  # fmt: skip
    return CouponRedeemed.model_validate(used)


# --- points mall ---------------------------------------------------------------------------------


def _mall_order(order: mall.MallOrder, customer_id: str) -> MallOrderPublic:
    return MallOrderPublic.model_validate({**dataclasses.asdict(order), "customer_id": customer_id})


@router.get("/api/v1/loyalty/{program}/mall", summary="Points-mall rewards 积分商城")
def mall_rewards(program: ProgramCode, key: ReadKey, state: StateDep) -> RewardsPublic:
    with state.app.store.unit_of_work() as session:
        spec = _program(session, program, key)
        rows = mall.rewards(session, spec.program)
        return RewardsPublic(
            program=spec.program,
            rewards=[RewardPublic.model_validate(r) for r in rows],
        )


@router.post(
    "/api/v1/loyalty/{program}/mall/{reward}/redeem",
    summary="Redeem points for a reward 积分兑换",
    status_code=201,
    responses=CREATED,
)
def mall_redeem(
    request: Request,
    program: ProgramCode,
    reward: RewardCode,
    body: MallRedeem,
    key: LoyaltyKey,
    state: StateDep,
    response: Response,
) -> MallOrderPublic:
    """Points debited, stock taken and (coupon rewards) the coupon issued together, or nothing:
    409 `insufficient_points`, `out_of_stock` or `limit_reached`."""
    check_customers(state, key, [body.customer_id])
    with _unit(state, key, request) as uow:
        session = uow.session
        spec = _program(session, program, key)
        account = _member(session, spec, key, body.customer_id)
        order = mall.do_mall_redeem(
            session, spec, reward, account.id, key=body.idempotency_key, at=uow.now, actor=str(uow.actor),
            quantity=body.quantity,
        )  # fmt: skip
    response.status_code = 200 if order.replayed else 201
    return _mall_order(order, body.customer_id)


@router.post(
    "/api/v1/loyalty/{program}/mall/redemptions/{redemption_id}/cancel", summary="Cancel a redemption 取消兑换"
)
def mall_cancel(
    request: Request, program: ProgramCode, redemption_id: RedemptionId, key: LoyaltyKey, state: StateDep
) -> MallOrderPublic:
    """Points back to their lots (original expiry), stock restored, an unused coupon voided; a
    used coupon refuses (409 `coupon_not_usable`). Cancelling again replays."""
    with _unit(state, key, request) as uow:
        session = uow.session
        spec = _program(session, program, key)
        found = session.get(MallRedemption, redemption_id)
        customer = _customer_of(session, found.account_id, key) if found and found.program == spec.program else None
        if found is None or customer is None:
            raise NotFoundError(
                f"no mall redemption {redemption_id} of a brand {key.brand} member in program {spec.program!r} "
                "(兑换记录不存在)"
            )
        check_customers(state, key, [customer])
        order = mall.do_mall_cancel(session, spec, redemption_id, at=uow.now, actor=str(uow.actor))
    return _mall_order(order, customer)
