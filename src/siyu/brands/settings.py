"""A brand's settings as plain values: time zone and the FAST+ options (DESIGN §4)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.errors import NotFoundError, SiyuError
from siyu.store.models import Brand
from siyu.store.uow import UnitOfWork


class BadSettingError(SiyuError):
    code = "bad_setting"


@dataclass(frozen=True)
class BrandSettings:
    code: str
    timezone: str = "Asia/Shanghai"
    koc_reviews: bool = True  # positive reviews (rating ≥ 4) count as successful propagation
    attribution_days: int = 7  # share attribution window, days from the click

    def as_json(self) -> dict[str, object]:
        return {
            "brand": self.code,
            "timezone": self.timezone,
            "koc_reviews": self.koc_reviews,
            "attribution_days": self.attribution_days,
        }


def _value(brand: Brand) -> BrandSettings:
    return BrandSettings(brand.code, brand.timezone, brand.koc_reviews, brand.attribution_days)


def list_brands(app: App) -> list[BrandSettings]:
    with app.store.unit_of_work() as session:
        return [_value(b) for b in session.scalars(select(Brand).order_by(Brand.code)).all()]


def brand_settings(app: App, code: str) -> BrandSettings:
    with app.store.unit_of_work() as session:
        return _value(_brand(session, code))


def brand_in(session: Session, code: str) -> BrandSettings:
    """A brand's settings read in the caller's transaction; unknown brands raise NotFoundError."""
    return _value(_brand(session, code))


def _brand(session: Session, code: str) -> Brand:
    brand = session.get(Brand, code)
    if brand is None:
        known = ", ".join(b.code for b in session.scalars(select(Brand).order_by(Brand.code)).all()) or "none"
        raise NotFoundError(f"unknown brand {code!r} (未知品牌); known brands: {known}")
    return brand


def do_update_brand(
    uow: UnitOfWork,
    code: str,
    *,
    timezone: str | None = None,
    koc_reviews: bool | None = None,
    attribution_days: int | None = None,
) -> BrandSettings:
    """Change a brand's settings (audited: `brand.update`, before → after)."""
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadSettingError(f"unknown time zone {timezone!r}: use an IANA name such as Asia/Shanghai") from exc
    if attribution_days is not None and not 1 <= attribution_days <= 90:
        raise BadSettingError(f"attribution window {attribution_days} days: must be 1–90 (归因窗口天数)")
    brand = _brand(uow.session, code)
    before = _value(brand)
    if timezone is not None:
        brand.timezone = timezone
    if koc_reviews is not None:
        brand.koc_reviews = koc_reviews
    if attribution_days is not None:
        brand.attribution_days = attribution_days
    after = _value(brand)
    if after != before:
        uow.audit("brand.update", "brand", code, brand=code, before=before.as_json(), after=after.as_json())
    return after
