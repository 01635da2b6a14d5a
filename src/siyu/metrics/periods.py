"""Reporting periods (month, week, quarter, year) cut in the brand's time zone.

A period is a half-open interval [start, end) of local wall-clock time; its UTC instants are what
queries compare against, so an order at 2024-05-31T17:00Z is in June for Asia/Shanghai.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from siyu.core.errors import SiyuError

Grain = Literal["month", "week", "quarter", "year"]
GRAINS: tuple[Grain, ...] = ("month", "week", "quarter", "year")
DEFAULT_WINDOW_DAYS = 365  # the CLV window ending at a period's end (0 = lifetime); here so the CLI loads no Ibis


class BadPeriodError(SiyuError):
    code = "bad_period"


@dataclass(frozen=True)
class Period:
    grain: Grain
    first_day: date  # first local day of the period
    timezone: str

    @property
    def label(self) -> str:
        d = self.first_day
        if self.grain == "month":
            return f"{d.year:04d}-{d.month:02d}"
        if self.grain == "quarter":
            return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"
        if self.grain == "year":
            return f"{d.year:04d}"
        iso = d.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"

    @property
    def next_first_day(self) -> date:
        d = self.first_day
        if self.grain == "week":
            return d + timedelta(days=7)
        months = {"month": 1, "quarter": 3, "year": 12}[self.grain]
        total = d.year * 12 + d.month - 1 + months
        return date(total // 12, total % 12 + 1, 1)

    @property
    def start(self) -> datetime:
        """First instant of the period (aware, brand zone)."""
        return datetime.combine(self.first_day, datetime.min.time(), ZoneInfo(self.timezone))

    @property
    def end(self) -> datetime:
        """First instant after the period (aware, brand zone); the period is [start, end)."""
        return datetime.combine(self.next_first_day, datetime.min.time(), ZoneInfo(self.timezone))

    @property
    def last_day(self) -> date:
        return self.next_first_day - timedelta(days=1)

    def previous(self) -> Period:
        d = self.first_day
        if self.grain == "week":
            return Period(self.grain, d - timedelta(days=7), self.timezone)
        months = {"month": 1, "quarter": 3, "year": 12}[self.grain]
        total = d.year * 12 + d.month - 1 - months
        return Period(self.grain, date(total // 12, total % 12 + 1, 1), self.timezone)

    def following(self) -> Period:
        return Period(self.grain, self.next_first_day, self.timezone)


_PATTERNS = {
    "month": re.compile(r"^(\d{4})-(\d{2})$"),
    "quarter": re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE),
    "year": re.compile(r"^(\d{4})$"),
    "week": re.compile(r"^(\d{4})-?W(\d{2})$", re.IGNORECASE),
}
_EXAMPLES = {"month": "2024-06", "quarter": "2024-Q2", "year": "2024", "week": "2024-W23"}


def parse_period(text: str, grain: str = "month", timezone: str = "Asia/Shanghai") -> Period:
    """'2024-06' (month), '2024-Q2', '2024', '2024-W23'; a month label is also accepted for other
    grains and means the period that contains its first day."""
    if grain not in GRAINS:
        raise BadPeriodError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)} (周期粒度)")
    g: Grain = grain
    text = text.strip()
    try:
        m = _PATTERNS[g].match(text)
        if m and g == "month":
            return Period(g, date(int(m[1]), int(m[2]), 1), timezone)
        if m and g == "quarter":
            return Period(g, date(int(m[1]), 3 * int(m[2]) - 2, 1), timezone)
        if m and g == "year":
            return Period(g, date(int(m[1]), 1, 1), timezone)
        if m and g == "week":
            return Period(g, date.fromisocalendar(int(m[1]), int(m[2]), 1), timezone)
        month = _PATTERNS["month"].match(text)
        if month:
            return containing(date(int(month[1]), int(month[2]), 1), g, timezone)
    except ValueError as exc:
        raise BadPeriodError(f"invalid period {text!r}: {exc} (周期无效)") from exc
    raise BadPeriodError(f"invalid {g} period {text!r}: expected e.g. {_EXAMPLES[g]} (周期格式错误)")


def containing(day: date, grain: Grain, timezone: str) -> Period:
    """The period of `grain` that contains the local day `day`."""
    if grain == "week":
        return Period(grain, day - timedelta(days=day.weekday()), timezone)
    if grain == "month":
        return Period(grain, day.replace(day=1), timezone)
    if grain == "quarter":
        return Period(grain, date(day.year, 3 * ((day.month - 1) // 3) + 1, 1), timezone)
    return Period(grain, date(day.year, 1, 1), timezone)


def period_range(first: Period, last: Period) -> list[Period]:
    if last.first_day < first.first_day:
        raise BadPeriodError(f"--to {last.label} is before --from {first.label} (结束早于开始)")
    periods = [first]
    while periods[-1].first_day < last.first_day:
        periods.append(periods[-1].following())
    if len(periods) > 400:
        raise BadPeriodError("more than 400 periods asked for: use a coarser --grain (周期过多)")
    return periods
