"""When waits end, worked by hand in Asia/Shanghai (UTC+8), with the 2026 holiday calendar:
Spring Festival off 02-15 … 02-23, make-up workdays Saturday 02-14 and Saturday 02-28."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from siyu.journeys.definition import Wait
from siyu.journeys.report import newcombe
from siyu.journeys.timing import next_workday, wait_until

SH = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)  # type: ignore[misc]


def test_next_workday_takes_the_make_up_saturday_and_skips_the_holiday() -> None:
    # Friday 02-13 → the make-up Saturday 02-14 (调休上班), not Monday 02-16 (a holiday)
    assert wait_until(local(2026, 2, 13, 15, 0), Wait(next_workday=True, at="10:00"), SH) == local(2026, 2, 14, 10, 0)
    # Saturday 02-14 → the holiday runs to 02-23 (Monday) → Tuesday 02-24
    assert next_workday(dt.date(2026, 2, 14)) == dt.date(2026, 2, 24)
    # an ordinary weekend: Friday 03-06 → Monday 03-09
    assert next_workday(dt.date(2026, 3, 6)) == dt.date(2026, 3, 9)


def test_until_time_across_midnight_and_until_date() -> None:
    # 23:30 local waits for 10:00 → the next morning; 09:00 → the same morning
    assert wait_until(local(2026, 3, 1, 23, 30), Wait(until_time="10:00"), SH) == local(2026, 3, 2, 10, 0)
    assert wait_until(local(2026, 3, 1, 9, 0), Wait(until_time="10:00"), SH) == local(2026, 3, 1, 10, 0)
    # until a date at a time; a date already past does not wait
    assert wait_until(local(2026, 3, 1, 9, 0), Wait(until_date=dt.date(2026, 6, 18), at="09:00"), SH) == local(
        2026, 6, 18, 9, 0
    )
    assert wait_until(local(2026, 7, 1, 9, 0), Wait(until_date=dt.date(2026, 6, 18)), SH) == local(2026, 7, 1, 9, 0)
    assert wait_until(local(2026, 3, 1, 9, 0), Wait(days=1, hours=2), SH) == local(2026, 3, 2, 11, 0)


def test_newcombe_interval_by_hand() -> None:
    """40/100 vs 10/50: Wilson 95 % of 0.4 (n 100) = [0.3094, 0.4980], of 0.2 (n 50) =
    [0.1124, 0.3304]; d = 0.2; lower = 0.2 − √(0.0906² + 0.1304²) = 0.0412,
    upper = 0.2 + √(0.0980² + 0.0876²) = 0.3314."""
    lo, hi = newcombe(40, 100, 10, 50) or (0.0, 0.0)
    assert round(lo, 3) == 0.041 and round(hi, 3) == 0.331
    assert newcombe(1, 10, 0, 0) is None
