"""Request and response bodies of the loyalty API (会员中台); their JSON keys are the contract.

Lengths are the store columns' and ids refuse control characters (PostgreSQL refuses NUL in
text), so a bad request is a 422 naming the field, never a database error.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from siyu.api.schemas.request import RequestBody
from siyu.loyalty.accounts import utc

MAX_POINTS = 10_000_000
MAX_FEN = 10**12  # ¥10 billion: far above any order, far below BIGINT
MAX_ISSUE = 10_000  # customers per coupon-issue request
EXPIRING_SHOWN = 3  # expiry dates listed in a balance
COUPONS_SHOWN = 50  # newest coupons listed in a balance

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
TEXT_PATTERN = r"^[^\x00]*$"
IdempotencyKey = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=ID_PATTERN, description="unique per request; a retry reuses it"),
]
# Strict: `true`, "7" or 7.0 are refused (422), not read as 1 or 7 — points and fen are integers.
Points = Annotated[int, Field(strict=True, gt=0, le=MAX_POINTS)]
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=TEXT_PATTERN)]
OrderId = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
Code64 = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
Code32 = Annotated[str, Field(min_length=1, max_length=32, pattern=ID_PATTERN)]
Utc = Annotated[dt.datetime, AfterValidator(utc)]  # SQLite hands back naive UTC datetimes


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- programs and members ----------------------------------------------------------------------


class TierPublic(_Out):
    code: str
    name_zh: str | None
    name_en: str | None
    threshold: int
    flags: list[str]


class ProgramPublic(BaseModel):
    code: str
    version: int
    level: str = Field(description="group | brand")
    name_zh: str | None
    name_en: str | None
    group: str | None
    brands: list[str]
    tier_basis: str = Field(description="growth | spend")
    tiers: list[TierPublic]


class ProgramsPublic(BaseModel):
    programs: list[ProgramPublic]


class Expiring(BaseModel):
    points: int
    expires_at: dt.datetime


class PointsSummary(BaseModel):
    balance: int = Field(description="points available (= Σ lots − debt)")
    debt: int = Field(description="points owed after a reversal; paid back from the next earnings")
    expiring: list[Expiring] = Field(description=f"the next {EXPIRING_SHOWN} expiry dates and the points due then")


class CouponBrief(_Out):
    code: str
    template: str
    status: str = Field(description="issued | redeemed | voided")
    valid_to: Utc


class MemberPublic(BaseModel):
    program: str
    member_no: str = Field(description="masked (`M01***41`) unless the key has `pii`")
    customer_id: str
    tier: str | None
    tier_name_zh: str | None
    tier_name_en: str | None
    growth: int
    points: PointsSummary
    flags: list[str] = Field(description="benefits of the tier, e.g. free_shipping")
    coupons: list[CouponBrief] = Field(description=f"the {COUPONS_SHOWN} newest coupons, any status")


class MemberCreate(RequestBody):
    customer_id: Code64
    member_no: Code64 | None = Field(None, description="default `{brand}-{customer_id}`")


class Enrolled(BaseModel):
    program: str
    customer_id: str
    member_no: str = Field(description="masked unless the key has `pii`")
    created: bool


# --- points ------------------------------------------------------------------------------------


class TxnPublic(_Out):
    id: int
    kind: str = Field(description="earn | redeem | expire | adjust | reverse")
    points: int = Field(description="signed change of the balance")
    balance_after: int
    brand: str | None
    channel: str | None
    order_id: str | None
    reason: str | None
    created_at: Utc
    reverses_id: int | None


class HistoryPublic(BaseModel):
    program: str
    customer_id: str
    transactions: list[TxnPublic] = Field(description="newest first")
    next_before: int | None = Field(description="pass as `before` for the next page; null on the last page")


class PointsRedeem(RequestBody):
    points: Points
    idempotency_key: IdempotencyKey
    order_id: OrderId | None = None
    reason: Reason | None = None


class PointsAdjust(RequestBody):
    points: int = Field(
        strict=True,
        ge=-MAX_POINTS,
        le=MAX_POINTS,
        description="signed, not 0: + credits a new lot, − spends",
        json_schema_extra={"not": {"const": 0}},
    )
    reason: Reason
    idempotency_key: IdempotencyKey

    @model_validator(mode="after")
    def _not_zero(self) -> PointsAdjust:
        if self.points == 0:
            raise ValueError("points: an adjustment of 0 changes nothing")
        return self


class PointsReverse(RequestBody):
    points: Points | None = Field(None, description="part of the transaction to undo; all that is left if omitted")
    idempotency_key: IdempotencyKey
    reason: Reason | None = None


class Posting(_Out):
    txn_id: int
    points: int = Field(description="signed change of the balance (a redemption of 300 is -300)")
    balance: int = Field(description="balance after this transaction")
    replayed: bool


# --- coupons -----------------------------------------------------------------------------------


class CouponsIssue(RequestBody):
    template: Code64 = Field(description="coupon template code of the program 券模板")
    customer_ids: list[Code64] = Field(min_length=1, max_length=MAX_ISSUE)
    idempotency_key: IdempotencyKey
    guide: Code64 | None = Field(None, description="the guide (导购) issuing, recorded with each coupon")


class IssuedPublic(BaseModel):
    customer_id: str
    code: str
    valid_to: Utc


class IssueResult(BaseModel):
    issued: int = Field(description="coupons issued by this request")
    replayed: int = Field(description="coupons issued before under the same idempotency key")
    skipped: dict[str, int] = Field(description="customers left out, by reason: not_a_member, limit_reached, …")
    coupons: list[IssuedPublic] = Field(description="the issued and replayed coupons, by customer id")


class CouponRedeem(RequestBody):
    order_id: OrderId
    amount_fen: int = Field(strict=True, ge=0, le=MAX_FEN, description="order amount before this coupon, in fen")
    channel: Code64 | None = None
    store_code: Code64 | None = None
    other_codes: list[Code32] = Field(
        default=[], max_length=20, description="the other coupons on the same order (stacking rules)"
    )


class CouponRedeemed(_Out):
    code: str
    template: str
    kind: str = Field(description="amount_off | percent_off | gift | free_shipping")
    order_id: str
    discount_fen: int
    replayed: bool


# --- points mall -------------------------------------------------------------------------------


class RewardPublic(_Out):
    code: str
    kind: str = Field(description="item | coupon | benefit")
    name_zh: str | None
    name_en: str | None
    points: int
    cash_fen: int
    stock: int | None = Field(description="units still available; null = unlimited")
    per_member_limit: int | None
    coupon_template: str | None


class RewardsPublic(BaseModel):
    program: str
    rewards: list[RewardPublic]


class MallRedeem(RequestBody):
    customer_id: Code64
    quantity: int = Field(1, strict=True, ge=1, le=1000)
    idempotency_key: IdempotencyKey


class MallOrderPublic(_Out):
    id: int
    reward: str
    customer_id: str
    quantity: int
    points: int = Field(description="points paid for the whole quantity")
    cash_fen: int
    status: str = Field(description="reserved | cancelled")
    coupon_code: str | None = Field(description="the coupon a coupon reward issued")
    replayed: bool
