"""Money is integer fen (分) and points are integers; rates between them are exact fractions.

A rate (points per yuan, a multiplier, fen per point) is written as a decimal in a program file
(`1.5`, `0.01`) and held as a `fractions.Fraction`, never a float: ⌊30,000 fen × 1.1 / 100⌋ must be
330, not the 329 that float arithmetic (`330.00000000000006` or `329.99999999999994`, depending
on the order of operations) can give. Every product of an integer and a rate is rounded once, by
the rule its caller names: `floor_times` (points: never award a fraction) or `half_up_times`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

RATE_PLACES = 4  # a rate has at most 4 decimal places: exact integer sums stay far from 2⁶³


def format_fen(fen: int) -> str:
    """Format fen as yuan with two decimals: 123456 -> '¥1,234.56'."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def parse_rate(value: object) -> Fraction:
    """The exact value of a rate as written: an int, a decimal string ('1.1', '2'), a Decimal, a
    Fraction, or a float from a YAML/JSON parser, taken by its shortest text (1.1 → 11/10, not the
    binary 2476979795053773/2251799813685248). At most RATE_PLACES decimal places."""
    if isinstance(value, bool):
        raise ValueError("a rate is a number, not true/false")
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, int):
        rate = Fraction(value)
    elif isinstance(value, float | str | Decimal):
        text = repr(value) if isinstance(value, float) else str(value).strip()
        try:
            exact = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number (e.g. 1.5)") from None
        if not exact.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        rate = Fraction(exact)
    else:
        raise ValueError(f"a rate is a decimal number (e.g. 1.5), not {type(value).__name__}")
    if (10**RATE_PLACES) % rate.denominator:
        raise ValueError(f"{value!r}: a rate has at most {RATE_PLACES} decimal places (e.g. 1.25, 0.0125)")
    return rate


def rate_text(rate: Fraction) -> str:
    """A rate as the shortest exact decimal: 11/10 → '1.1', 2 → '2', 1/8 → '0.125'; a rate with
    no finite decimal (a product's 1/3) as '1/3'."""
    rest = rate.denominator
    for factor in (2, 5):
        while rest % factor == 0:
            rest //= factor
    if rest != 1:
        return f"{rate.numerator}/{rate.denominator}"
    places = 0
    while (rate * 10**places).denominator != 1:
        places += 1
    scaled = rate.numerator * 10**places // rate.denominator
    sign, digits = ("-" if scaled < 0 else ""), str(abs(scaled)).rjust(places + 1, "0")
    return sign + (f"{digits[:-places]}.{digits[-places:]}" if places else digits)


def floor_times(amount: int, rate: Fraction) -> int:
    """⌊amount × rate⌋ in exact integer arithmetic (toward −∞)."""
    return (amount * rate.numerator) // rate.denominator


def half_up_times(amount: int, rate: Fraction) -> int:
    """amount × rate rounded to the nearest integer, halves away from zero (Decimal ROUND_HALF_UP)."""
    product = abs(amount) * abs(rate.numerator)
    rounded = (2 * product + rate.denominator) // (2 * rate.denominator)
    return -rounded if (amount < 0) != (rate < 0) else rounded
