"""A loyalty program definition (会员体系): the YAML a brand's CRM team writes, validated.

Pure domain: no store access. `parse_program(text, path)` returns a `Program` or raises
`ProgramError` naming the file, line and field to fix (docs/loyalty.md shows a full file).
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from siyu.core.errors import SiyuError
from siyu.core.money import parse_rate, rate_text
from siyu.core.yaml_files import PlacedError, parse_definition

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
Fen = Annotated[int, Field(ge=0)]
# A rate or multiplier, exact: `1.1` in the file is 11/10 (not the float), at most 4 decimal places;
# written back as the same decimal text (the applied program's checksum is over that text).
Rate = Annotated[Fraction, BeforeValidator(parse_rate), PlainSerializer(rate_text, return_type=str)]
ONE = Fraction(1)


class ProgramError(SiyuError):
    code = "invalid_program"
    exit_code = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    code: Code
    name_zh: str | None = None
    name_en: str | None = None
    threshold: int = Field(ge=0, description="growth value, or spend in fen over the window")
    points_multiplier: Rate = Field(default=ONE, ge=0)
    coupons: tuple[Code, ...] = ()  # issued once on reaching the tier (exclusive coupons)
    flags: tuple[str, ...] = ()  # e.g. free_shipping, priority_service


class Tiers(_Strict):
    basis: Literal["growth", "spend"] = "growth"
    spend_window_months: int = Field(default=12, ge=1, le=60)
    evaluation: Literal["monthly", "quarterly", "yearly"] = "quarterly"
    protection_months: int = Field(default=3, ge=0, le=36)
    levels: tuple[Tier, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        thresholds = [t.threshold for t in self.levels]
        if thresholds != sorted(set(thresholds)):
            raise PlacedError(
                "levels must be listed from the lowest threshold up, thresholds strictly increasing", "levels"
            )
        if len({t.code for t in self.levels}) != len(self.levels):
            raise PlacedError("tier codes must be unique", "levels")
        return self


class Expiry(_Strict):
    policy: Literal["fixed_calendar", "rolling", "never"] = "fixed_calendar"
    years: int = Field(default=1, ge=0, le=10, description="fixed_calendar: expire at the end of year earned + years")
    months: int = Field(default=24, ge=1, le=120, description="rolling: expire N months after earning")


class EarnRule(_Strict):
    """Extra points for matching order lines: the highest matching multiplier applies, bonuses add up."""

    code: Code
    name_zh: str | None = None
    name_en: str | None = None
    brands: tuple[Code, ...] = ()
    channels: tuple[str, ...] = ()  # order source, e.g. tmall, jd, pos
    categories: tuple[str, ...] = ()
    multiplier: Rate = Field(default=ONE, ge=0)
    bonus: int = Field(default=0, ge=0, description="points added once per matching order (campaign bonus)")
    start: dt.date | None = Field(default=None, alias="from")
    end: dt.date | None = Field(default=None, alias="to")


class Points(_Strict):
    per_yuan: Rate = Field(default=ONE, gt=0, description="base points per yuan paid")
    expiry: Expiry = Expiry()
    birthday_multiplier: Rate = Field(default=ONE, ge=1)
    reversal_exceeds_balance: Literal["negative", "clamp", "reject"] = "negative"
    redeem_fen_per_point: Rate = Field(default=ONE, gt=0, description="order discount per point")
    settlement_fen_per_point: Rate = Field(default=ONE, ge=0, description="inter-brand settlement rate")
    earn_rules: tuple[EarnRule, ...] = ()


class CouponSpec(_Strict):
    code: Code
    name_zh: str | None = None
    name_en: str | None = None
    kind: Literal["amount_off", "percent_off", "gift", "free_shipping"]
    threshold_fen: Fen = 0
    amount_fen: Fen | None = None
    percent: int | None = Field(default=None, ge=1, le=99, description="percent_off: 15 = 15 % off")
    cap_fen: Fen | None = None
    gift_sku: str | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    valid_days: int | None = Field(default=None, ge=1)
    stock: int | None = Field(default=None, ge=0)
    per_customer_limit: int | None = Field(default=None, ge=1)
    stackable: bool = False
    brands: tuple[Code, ...] = ()
    void_on_refund: bool = True
    cost_bearer: Literal["group", "brand", "region", "distributor", "store"] = "brand"
    cost_bearer_code: str | None = None
    campaign: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CouponSpec:
        if self.kind == "amount_off" and not self.amount_fen:
            raise ValueError("amount_off needs amount_fen")
        if self.kind == "percent_off" and self.percent is None:
            raise ValueError("percent_off needs percent")
        if self.kind == "gift" and not self.gift_sku:
            raise ValueError("gift needs gift_sku")
        if (self.valid_days is None) == (self.valid_from is None and self.valid_to is None):
            raise ValueError("give either valid_days or valid_from/valid_to")
        if self.valid_days is None and (self.valid_from is None or self.valid_to is None):
            raise ValueError("give both valid_from and valid_to")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class RewardSpec(_Strict):
    code: Code
    name_zh: str | None = None
    name_en: str | None = None
    kind: Literal["item", "coupon", "benefit"]
    points: int = Field(gt=0)
    cash_fen: Fen = 0
    stock: int | None = Field(default=None, ge=0)
    per_member_limit: int | None = Field(default=None, ge=1)
    coupon: Code | None = None


class Store(_Strict):
    region: str | None = None
    distributor: str | None = None


class Program(_Strict):
    version: int = Field(ge=1)
    program: Code
    name_zh: str | None = None
    name_en: str | None = None
    level: Literal["group", "brand"]
    group: Code | None = None
    brands: tuple[Code, ...] = Field(min_length=1)
    timezone: str = "Asia/Shanghai"  # expiry dates, campaign dates and birthday months are cut here
    start: dt.date | None = Field(default=None, description="launch day: orders paid before it earn nothing")
    # `program` values of canonical memberships rows that enrol into this program (legacy programs
    # merged into a group program); the program's own code always counts.
    membership_programs: tuple[str, ...] = ()
    enrolment: tuple[Literal["membership", "api", "first_order", "wecom_friend", "follow"], ...] = (
        "membership",
        "api",
    )
    tiers: Tiers
    growth_per_yuan: Rate = Field(default=ONE, ge=0)
    points: Points = Points()
    coupons: tuple[CouponSpec, ...] = ()
    mall: tuple[RewardSpec, ...] = ()
    stores: dict[str, Store] = {}

    @model_validator(mode="after")
    def _references(self) -> Program:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise PlacedError(f"unknown timezone {self.timezone!r}", "timezone") from e
        if self.level == "group" and not self.group:
            raise ValueError("a group program needs `group`")
        if self.level == "brand" and len(self.brands) != 1:
            raise ValueError("a brand program has exactly one brand")
        coupons = {c.code for c in self.coupons}
        if len(coupons) != len(self.coupons):
            raise ValueError("coupon codes must be unique")
        for i, tier in enumerate(self.tiers.levels):
            for code in tier.coupons:
                if code not in coupons:
                    raise PlacedError(f"tier {tier.code} names unknown coupon {code}", "tiers", "levels", i, "coupons")
        for i, reward in enumerate(self.mall):
            if reward.kind == "coupon" and reward.coupon not in coupons:
                raise PlacedError(
                    f"mall reward {reward.code} needs `coupon` naming one of the program's coupons", "mall", i
                )
        return self

    def tier(self, code: str | None) -> Tier | None:
        return next((t for t in self.tiers.levels if t.code == code), None)

    def tier_named(self, name: str | None) -> Tier | None:
        """A tier by code or by its Chinese or English name (legacy exports use names: 金卡)."""
        if not name:
            return None
        return next((t for t in self.tiers.levels if name.strip() in (t.code, t.name_zh, t.name_en)), None)

    def tier_for(self, value: int) -> Tier:
        """The highest tier whose threshold `value` reaches."""
        reached = [t for t in self.tiers.levels if t.threshold <= value]
        return reached[-1] if reached else self.tiers.levels[0]

    def rank(self, code: str | None) -> int:
        return next((i for i, t in enumerate(self.tiers.levels) if t.code == code), -1)

    def coupon(self, code: str) -> CouponSpec | None:
        return next((c for c in self.coupons if c.code == code), None)


def parse_program(text: str, path: str = "<program>") -> Program:
    return parse_definition(
        text,
        path,
        Program,
        ProgramError,
        what="invalid program 会员体系定义有误",
        shape="a program file is a YAML mapping (program:, level:, brands:, tiers: …)",
    )
