"""Points lots (积分批次): when points expire and which lots a spend takes from. Pure functions.

A spend takes first-to-expire: the lot expiring soonest first, never-expiring lots last, ties by
the order the lots were earned. Restoring (a refund of a redemption) puts points back into the
lots they were taken from, the last taken first, so apply then reverse is the identity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from siyu.loyalty.program import Expiry

_FAR = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Lot:
    id: int
    expires_at: dt.datetime | None
    remaining: int


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by whole months, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def expiry_of(policy: Expiry, earned_at: dt.datetime, timezone: str) -> dt.datetime | None:
    """The instant (UTC) points earned at `earned_at` expire, cut in the program's time zone.

    fixed_calendar, years=1: points earned any day of 2026 expire at the end of 2027 (the first
    instant of 2028-01-01 local time). rolling, months=24: 24 months after earning, at local midnight
    after that day ends.
    """
    if policy.policy == "never":
        return None
    zone = ZoneInfo(timezone)
    local = earned_at.astimezone(zone)
    if policy.policy == "fixed_calendar":
        end = dt.datetime(local.year + policy.years + 1, 1, 1, tzinfo=zone)
    else:
        day = add_months(local.date(), policy.months) + dt.timedelta(days=1)
        end = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return end.astimezone(dt.UTC)


def spend_order(lots: Sequence[Lot]) -> list[Lot]:
    """Lots in the order a spend consumes them: first to expire first, then by id (earning order)."""
    return sorted(lots, key=lambda lot: (lot.expires_at or _FAR, lot.id))


def take(lots: Sequence[Lot], points: int) -> list[tuple[int, int]]:
    """(lot id, points taken) to cover `points` first-to-expire; raises if the lots hold too few."""
    if points < 0:
        raise ValueError("points to take must be ≥ 0")
    plan: list[tuple[int, int]] = []
    left = points
    for lot in spend_order([lot for lot in lots if lot.remaining > 0]):
        if left == 0:
            break
        n = min(lot.remaining, left)
        plan.append((lot.id, n))
        left -= n
    if left:
        raise ValueError(f"lots hold {points - left} points, {points} needed")
    return plan


def give_back(taken: Sequence[tuple[int, int]], points: int) -> list[tuple[int, int]]:
    """(lot id, points restored) to undo `points` of an earlier take, the last taken first."""
    plan: list[tuple[int, int]] = []
    left = points
    for lot_id, n in reversed(taken):
        if left == 0:
            break
        k = min(n, left)
        plan.append((lot_id, k))
        left -= k
    if left:
        raise ValueError(f"only {points - left} points were taken, cannot restore {points}")
    return plan


def proportional(points: int, part_fen: int, whole_fen: int) -> int:
    """Points of a refund of `part_fen` out of `whole_fen` paid: rounded down, never above `points`."""
    if whole_fen <= 0:
        return points
    return min(points, points * max(part_fen, 0) // whole_fen)
