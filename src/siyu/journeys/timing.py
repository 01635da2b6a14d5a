"""When a wait ends, in the journey's local time zone. Pure functions of (now, wait, zone).

Working days follow the Chinese public-holiday calendar (`chinesecalendar`), make-up workdays
(调休上班, e.g. Saturday 2026-02-14) included: a holiday Monday is no working day, that Saturday is.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import chinese_calendar

from siyu.journeys.definition import Wait
from siyu.journeys.errors import JourneyError


def _hhmm(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


def _local(day: dt.date, at: dt.time, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, at, zone).astimezone(dt.UTC)


def is_workday(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as e:  # the calendar covers the years the State Council announced
        raise JourneyError(
            f"no Chinese holiday calendar for {day.year} yet: upgrade chinesecalendar (节假日数据缺失)"
        ) from e


def next_workday(after: dt.date) -> dt.date:
    day = after + dt.timedelta(days=1)
    while not is_workday(day):
        day += dt.timedelta(days=1)
    return day


def wait_until(now: dt.datetime, wait: Wait, zone: ZoneInfo) -> dt.datetime:
    """The instant (UTC) a wait entered at `now` ends."""
    local = now.astimezone(zone)
    if wait.until_time is not None:
        at = _hhmm(wait.until_time)
        end = _local(local.date(), at, zone)
        return end if end > now else _local(local.date() + dt.timedelta(days=1), at, zone)
    if wait.until_date is not None:
        end = _local(wait.until_date, _hhmm(wait.at or "00:00"), zone)
        return max(end, now)
    if wait.next_workday:
        return _local(next_workday(local.date()), _hhmm(wait.at or "09:00"), zone)
    delta = dt.timedelta(days=wait.days or 0, hours=wait.hours or 0, minutes=wait.minutes or 0)
    return now + delta
