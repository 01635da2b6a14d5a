"""Points lots rules (siyu.loyalty.lots): expiry instants cut in the program's time zone, month
arithmetic, and which lots a spend takes from and a refund gives back to. Hand-computed numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.loyalty.lots import Lot, add_months, expiry_of, give_back, proportional, spend_order, take
from siyu.loyalty.program import Expiry

SH = "Asia/Shanghai"  # UTC+8, no daylight saving


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# -- expiry_of ------------------------------------------------------------------------------------


def test_fixed_calendar_cuts_the_year_in_the_program_time_zone() -> None:
    one_year = Expiry(policy="fixed_calendar", years=1)
    # 2026-12-31T16:30Z is 2027-01-01 00:30 in Shanghai: earned in 2027, expires at the end of 2028
    assert expiry_of(one_year, utc(2026, 12, 31, 16, 30), SH) == utc(2028, 12, 31, 16, 0)
    # half an hour earlier it is still 2026 locally: expires at the end of 2027
    assert expiry_of(one_year, utc(2026, 12, 31, 15, 59), SH) == utc(2027, 12, 31, 16, 0)
    assert expiry_of(one_year, utc(2026, 1, 1, 0, 0), SH) == utc(2027, 12, 31, 16, 0)
    # the same instant in a UTC program is still 2026
    assert expiry_of(one_year, utc(2026, 12, 31, 16, 30), "UTC") == utc(2028, 1, 1)


def test_fixed_calendar_years_zero_and_more() -> None:
    assert expiry_of(Expiry(policy="fixed_calendar", years=0), utc(2026, 6, 1), SH) == utc(2026, 12, 31, 16)
    assert expiry_of(Expiry(policy="fixed_calendar", years=3), utc(2026, 6, 1), SH) == utc(2029, 12, 31, 16)


def test_rolling_expires_at_local_midnight_after_the_day_n_months_on() -> None:
    two_years = Expiry(policy="rolling", months=24)
    # earned 2026-01-31 18:00 local → 2028-01-31 ends → 2028-02-01 00:00 local = 2028-01-31T16:00Z
    assert expiry_of(two_years, utc(2026, 1, 31, 10), SH) == utc(2028, 1, 31, 16)
    one_month = Expiry(policy="rolling", months=1)
    # Jan 31 + 1 month is Feb 28 (2026 is not a leap year); the day after is Mar 1 local
    assert expiry_of(one_month, utc(2026, 1, 31, 10), SH) == utc(2026, 2, 28, 16)
    # 2027-01-31 + 13 months = 2028-02-29 (leap year) → 2028-03-01 local
    assert expiry_of(Expiry(policy="rolling", months=13), utc(2027, 1, 31, 10), SH) == utc(2028, 2, 29, 16)
    # 2026-03-31T17:00Z is already Apr 1 in Shanghai: Apr 1 + 1 month = May 1, ends May 2 local
    assert expiry_of(one_month, utc(2026, 3, 31, 17), SH) == utc(2026, 5, 1, 16)


def test_rolling_in_a_zone_with_daylight_saving() -> None:
    # New York: earned 2026-02-10 12:00 local (EST) → 2026-03-10 ends → 2026-03-11 00:00 EDT = 04:00Z
    assert expiry_of(Expiry(policy="rolling", months=1), utc(2026, 2, 10, 17), "America/New_York") == utc(
        2026, 3, 11, 4
    )


def test_never_expires() -> None:
    assert expiry_of(Expiry(policy="never"), utc(2026, 5, 5), SH) is None


def test_expiry_is_always_after_earning_and_in_utc() -> None:
    @given(
        at=st.datetimes(
            min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1), timezones=st.just(dt.UTC)
        ),
        policy=st.sampled_from(["fixed_calendar", "rolling"]),
        years=st.integers(0, 10),
        months=st.integers(1, 120),
    )
    @settings(max_examples=200, deadline=None)
    def check(at: dt.datetime, policy: str, years: int, months: int) -> None:
        expires = expiry_of(Expiry(policy=policy, years=years, months=months), at, SH)  # type: ignore[arg-type]
        assert expires is not None and expires > at and expires.utcoffset() == dt.timedelta(0)
        # always a local midnight
        local = expires.astimezone(dt.timezone(dt.timedelta(hours=8)))
        assert (local.hour, local.minute, local.second) == (0, 0, 0)

    check()


# -- add_months -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),
        (dt.date(2026, 3, 31), -1, dt.date(2026, 2, 28)),
        (dt.date(2026, 8, 31), 1, dt.date(2026, 9, 30)),
        (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
        (dt.date(2024, 2, 29), 48, dt.date(2028, 2, 29)),
        (dt.date(2026, 12, 15), 1, dt.date(2027, 1, 15)),
        (dt.date(2026, 1, 15), -1, dt.date(2025, 12, 15)),
        (dt.date(2026, 1, 15), -13, dt.date(2024, 12, 15)),
        (dt.date(2026, 5, 31), 0, dt.date(2026, 5, 31)),
        (dt.date(2026, 1, 30), 25, dt.date(2028, 2, 29)),
    ],
)
def test_add_months_clamps_to_the_last_day(day: dt.date, months: int, expected: dt.date) -> None:
    assert add_months(day, months) == expected


# -- spend order, take and give back --------------------------------------------------------------


def test_spend_order_first_to_expire_never_last_ties_by_id() -> None:
    lots = [
        Lot(1, None, 5),
        Lot(2, utc(2027, 12, 31, 16), 5),
        Lot(3, utc(2026, 12, 31, 16), 5),
        Lot(4, utc(2027, 12, 31, 16), 5),
        Lot(0, None, 5),
    ]
    assert [lot.id for lot in spend_order(lots)] == [3, 2, 4, 0, 1]


def test_take_first_to_expire_and_skips_empty_lots() -> None:
    lots = [Lot(1, None, 100), Lot(2, utc(2027, 1, 1), 30), Lot(3, utc(2026, 1, 1), 0), Lot(4, utc(2026, 6, 1), 20)]
    assert take(lots, 45) == [(4, 20), (2, 25)]
    assert take(lots, 50) == [(4, 20), (2, 30)]
    assert take(lots, 51) == [(4, 20), (2, 30), (1, 1)]
    assert take(lots, 150) == [(4, 20), (2, 30), (1, 100)]
    assert take(lots, 0) == []


def test_take_refuses_more_than_the_lots_hold_and_negative() -> None:
    with pytest.raises(ValueError, match="lots hold 150 points, 151 needed"):
        take([Lot(1, None, 100), Lot(2, utc(2027, 1, 1), 50)], 151)
    with pytest.raises(ValueError):
        take([Lot(1, None, 100)], -1)


def test_give_back_last_taken_first() -> None:
    taken = [(4, 20), (2, 30), (1, 1)]
    assert give_back(taken, 51) == [(1, 1), (2, 30), (4, 20)]
    assert give_back(taken, 10) == [(1, 1), (2, 9)]
    assert give_back(taken, 1) == [(1, 1)]
    assert give_back(taken, 0) == []
    with pytest.raises(ValueError, match="only 51 points were taken, cannot restore 52"):
        give_back(taken, 52)


lots_strategy = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(0, 1000)), st.integers(0, 50)), min_size=0, max_size=8
).map(
    lambda xs: [Lot(i, None if d is None else utc(2026, 1, 1) + dt.timedelta(days=d), r) for i, (d, r) in enumerate(xs)]
)


@given(lots=lots_strategy, data=st.data())
@settings(max_examples=300, deadline=None)
def test_take_then_give_back_is_the_identity(lots: list[Lot], data: st.DataObject) -> None:
    total = sum(lot.remaining for lot in lots)
    points = data.draw(st.integers(0, total))
    plan = take(lots, points)
    assert sum(n for _, n in plan) == points and all(n > 0 for _, n in plan)
    remaining = {lot.id: lot.remaining for lot in lots}
    for lot_id, n in plan:
        remaining[lot_id] -= n
        assert remaining[lot_id] >= 0
    # first to expire: no lot is touched while an earlier-expiring one still holds points
    order = [lot.id for lot in spend_order(lots)]
    touched = [order.index(lot_id) for lot_id, _ in plan]
    assert touched == sorted(touched)
    assert all(remaining[order[i]] == 0 for i in touched[:-1])
    # refunds in several parts restore exactly what was taken
    parts = data.draw(st.lists(st.integers(1, max(points, 1)), max_size=4))
    restored_so_far: list[tuple[int, int]] = []
    left = points
    for part in [*parts, points]:
        part = min(part, left)
        net = _net(plan, restored_so_far)
        for lot_id, n in give_back(net, part):
            remaining[lot_id] += n
            restored_so_far.append((lot_id, n))
        left -= part
    assert remaining == {lot.id: lot.remaining for lot in lots}


def _net(taken: list[tuple[int, int]], restored: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """What is still taken per lot, in the order taken (as do_reverse computes it from the moves)."""
    net: dict[int, int] = {}
    for lot_id, n in taken:
        net[lot_id] = net.get(lot_id, 0) + n
    for lot_id, n in restored:
        net[lot_id] -= n
    return [(lot_id, n) for lot_id, n in net.items() if n > 0]


def test_proportional_rounds_down_and_never_exceeds() -> None:
    assert proportional(100, 5000, 10000) == 50
    assert proportional(101, 5000, 10000) == 50
    assert proportional(100, 3333, 10000) == 33
    assert proportional(100, 20000, 10000) == 100
    assert proportional(100, -5, 10000) == 0
    assert proportional(100, 500, 0) == 100
