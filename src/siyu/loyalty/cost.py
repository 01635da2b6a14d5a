"""Coupon cost allocation (优惠券成本分摊): who bears the discount of each redeemed coupon.

Each template names a bearer level (group | brand | region | distributor | store). The bearer's
code comes from where the coupon was used: the group of the program, the redeeming brand, the
redeeming store's region or distributor (from the program's `stores:` map) unless the template
names its own `cost_bearer_code` (a region's local coupon), or the redeeming store itself.
Voided coupons (refunded orders) bear no cost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from siyu.loyalty.models import Coupon, CouponTemplate
from siyu.loyalty.program import Program


@dataclass(frozen=True)
class CostRow:
    campaign: str | None
    template: str
    bearer: str
    bearer_code: str | None
    brand: str | None
    store: str | None
    redeemed: int
    discount_fen: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def bearer_code(
    program: Program, bearer: str, explicit: str | None, brand: str | None, store: str | None
) -> str | None:
    """The code of who pays, for one redemption place; None when the store is not in `stores:`."""
    if bearer == "group":
        return explicit or program.group or program.program
    if bearer == "brand":
        return explicit or brand
    if bearer == "store":
        return explicit or store
    if explicit:
        return explicit
    place = program.stores.get(store) if store else None
    if place is None:
        return None
    return place.region if bearer == "region" else place.distributor


def _day_start(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(timezone)).astimezone(dt.UTC)


def cost_report(
    session: Session,
    program: Program,
    *,
    campaign: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[CostRow]:
    """Redeemed coupons by campaign, template, bearer, brand and store, with the discount they
    cost. `start`/`end` are inclusive days of redemption in the program's time zone."""
    conditions = [Coupon.program == program.program, Coupon.status == "redeemed"]
    if campaign is not None:
        conditions.append(CouponTemplate.campaign == campaign)
    if start is not None:
        conditions.append(Coupon.redeemed_at >= _day_start(start, program.timezone))
    if end is not None:
        conditions.append(Coupon.redeemed_at < _day_start(end + dt.timedelta(days=1), program.timezone))
    keys = (
        CouponTemplate.campaign,
        Coupon.template,
        CouponTemplate.cost_bearer,
        CouponTemplate.cost_bearer_code,
        Coupon.redeemed_brand,
        Coupon.redeemed_store,
    )
    query = (
        select(*keys, func.count(), func.coalesce(func.sum(Coupon.discount_fen), 0))
        .join(CouponTemplate, and_(CouponTemplate.program == Coupon.program, CouponTemplate.code == Coupon.template))
        .where(*conditions)
        .group_by(*keys)
    )
    rows = [
        CostRow(
            campaign=camp,
            template=template,
            bearer=bearer,
            bearer_code=bearer_code(program, bearer, explicit, brand, store),
            brand=brand,
            store=store,
            redeemed=int(n),
            discount_fen=int(fen or 0),
        )
        for camp, template, bearer, explicit, brand, store, n, fen in session.execute(query)
    ]
    return sorted(rows, key=lambda r: (r.campaign or "", r.template, r.bearer_code or "", r.brand or "", r.store or ""))


def totals_by_bearer(rows: list[CostRow]) -> list[dict[str, object]]:
    """What each bearer owes over the report: {bearer, bearer_code, redeemed, discount_fen}."""
    sums: dict[tuple[str, str | None], list[int]] = {}
    for row in rows:
        total = sums.setdefault((row.bearer, row.bearer_code), [0, 0])
        total[0] += row.redeemed
        total[1] += row.discount_fen
    return [
        {"bearer": b, "bearer_code": c, "redeemed": n, "discount_fen": fen}
        for (b, c), (n, fen) in sorted(sums.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]
