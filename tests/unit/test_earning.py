"""The earning rule and the rate helpers, with hand-computed numbers.

Each edge case is one where float arithmetic floors to a different integer than exact arithmetic
(the float result is written next to it); the exact one is asserted.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pyarrow as pa
import pytest

from siyu.core.money import floor_times, half_up_times, parse_rate, rate_text
from siyu.loyalty.earning import order_earning
from siyu.loyalty.program import Points, Tier
from siyu.loyalty.tiers import growth

F = Fraction


@pytest.mark.parametrize(
    ("written", "exact"),
    [
        (1.1, F(11, 10)),  # the YAML float 1.1, taken as written — not 2476979795053773/2⁵¹
        ("1.10", F(11, 10)),
        (2, F(2)),
        ("0.0125", F(1, 80)),
        (Decimal("1.5"), F(3, 2)),
        (0.58, F(29, 50)),
    ],
)
def test_rates_are_exact_as_written(written: object, exact: Fraction) -> None:
    assert parse_rate(written) == exact


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        (0.1 + 0.2, "at most 4 decimal places"),  # 0.30000000000000004: a float sum, not a written rate
        ("0.00001", "at most 4 decimal places"),
        ("1,5", "not a decimal number"),
        ("nan", "not a finite number"),
        (True, "not true/false"),
        ([1], "not list"),
    ],
)
def test_rates_that_are_refused(written: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_rate(written)


def test_rate_text_is_the_shortest_exact_decimal() -> None:
    assert [rate_text(r) for r in (F(11, 10), F(2), F(12, 5), F(1, 8), F(-3, 2), F(0), F(1, 3))] == [
        "1.1",
        "2",
        "2.4",
        "0.125",
        "-1.5",
        "0",
        "1/3",
    ]


def test_floor_and_half_up() -> None:
    # 3 × 1.1 = 3.3 → 3 (float: 3.3000000000000003, same floor; the exact product decides, not luck)
    assert floor_times(3, F(11, 10)) == 3
    # 100 × 1.15 = 115 exactly; float: 114.99999999999999 → 114
    assert floor_times(100, F(23, 20)) == 115
    # 50 × 0.58 = 29 exactly; float: 28.999999999999996 → 28
    assert floor_times(50, F(29, 50)) == 29
    # −7 × 0.5 = −3.5: floor −4; half-up (away from zero) −4; 7 × 0.5 → 4; 5 × 0.25 = 1.25 → 1
    assert (floor_times(-7, F(1, 2)), half_up_times(-7, F(1, 2)), half_up_times(7, F(1, 2))) == (-4, -4, 4)
    assert half_up_times(5, F(1, 4)) == 1


def test_order_earning_base_then_member_multipliers() -> None:
    # Q1 of the loyalty fixture: 10,000 fen 面霜 (×2) → base ⌊10,000 × 1 × 2 / 100⌋ = 200;
    # gold 1.2 × birthday 2 = 2.4 → ⌊200 × 2.4⌋ = 480
    e = order_earning(10_000, per_yuan=F(1), rule_multiplier=F(2), tier_multiplier=F(6, 5), birthday_multiplier=F(2))
    assert (e.base, e.multiplier, e.points, e.reason()) == (200, F(12, 5), 480, "order 订单 base 200 × 2.4")
    # R2: 5,000 fen, no multipliers, campaign bonus 88 → 50 + 88
    e = order_earning(5_000, per_yuan=F(1), bonus=88)
    assert (e.points, e.reason()) == (138, "order 订单 base 50 × 1 + bonus 88")


def test_order_earning_edges_where_floats_floor_differently() -> None:
    # A1 of the fixture: 30,000 fen, lines 面霜 20,000 ×2 + 洁面 10,000 ×1 → m = 50,000/30,000 = 5/3;
    # 300 × 5/3 = 500 exactly; float: 30,000 / 100 × 1.6666666666666667 = 499.99999999999994 → 499
    assert order_earning(30_000, per_yuan=F(1), rule_multiplier=F(50_000, 30_000)).base == 500
    # silver 1.15: base 100 → 115 exactly; float 100 × 1.15 = 114.99999999999999 → 114
    assert order_earning(10_000, per_yuan=F(1), tier_multiplier=F(23, 20)).points == 115
    # 1.1 × 3: base 3 (300 fen) × 1.1 = 3.3 → 3
    assert order_earning(300, per_yuan=F(1), tier_multiplier=F(11, 10)).points == 3
    # 0.58 points per yuan on ¥50: 29 exactly; float 50 × 0.58 = 28.999999999999996 → 28
    assert order_earning(5_000, per_yuan=F(29, 50)).base == 29
    # The old "+ 1e-9 before floor" erred the other way: lines 1 fen ×2 + 99,999,999 fen ×1, the
    # order 99,999,999 fen (1 fen off) → m = 100,000,001/100,000,000, base = 99,999,999 ×
    # 100,000,001 / 10¹⁰ = 999,999.99999999990… → 999,999 (float + 1e-9: 1,000,000)
    e = order_earning(99_999_999, per_yuan=F(1), rule_multiplier=F(100_000_001, 100_000_000))
    assert e.base == 999_999


def test_growth_is_exact_integer_arithmetic() -> None:
    # ⌊net × g / 100⌋: 29,999 fen × 1 → 299, 5,000 → 50; 5,000 fen × 0.58 → 29 (float: 28.999999999999996)
    assert growth(pa.array([29_999, 5_000, 0], pa.int64()), F(1)).to_pylist() == [299, 50, 0]
    assert growth(pa.array([5_000], pa.int64()), F(29, 50)).to_pylist() == [29]
    # beyond 2⁵³ fen a double cannot hold the spend: ⌊9,007,199,254,740,999 / 100⌋ = 90,071,992,547,409
    # (float: 9,007,199,254,741,000 / 100 → 90,071,992,547,410)
    assert growth(pa.array([9_007_199_254_740_999], pa.int64()), F(1)).to_pylist() == [90_071_992_547_409]


def test_program_rates_parse_exactly_and_dump_as_written() -> None:
    tier = Tier.model_validate({"code": "silver", "threshold": 1000, "points_multiplier": 1.1})
    assert tier.points_multiplier == F(11, 10)
    assert tier.model_dump(mode="json")["points_multiplier"] == "1.1"
    points = Points.model_validate({"per_yuan": "0.5", "settlement_fen_per_point": 0.25})
    assert (points.per_yuan, points.settlement_fen_per_point, points.birthday_multiplier) == (F(1, 2), F(1, 4), 1)
