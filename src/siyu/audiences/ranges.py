"""The ranges of the numbers and dates in an audience rule: beyond them the engine's integer types
overflow, or dates leave the calendar. Money in fen is an int64, counts an int32, windows at most
about ten years. A rule that validates therefore compiles without overflow."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from siyu.audiences.errors import rule_error, short_value

MAX_FEN = 2**63 - 1
MAX_INT = 2**63 - 1
MAX_TIMES = 2**31 - 1
MAX_LAST_DAYS = 3_660
MAX_WINDOW_DAYS = 36_500  # an RFM window, as `siyu metrics rfm --window-days` takes
MAX_NUMBER = 1e18  # |x| of a decimal number compared with a metric
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)
_PERIOD_YEAR = re.compile(r"^\s*([0-9]{4})")


def check_number(value: Any, path: str) -> int | float:
    """A number compared with a metric or a tag: a 64-bit whole number or a finite decimal."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise rule_error(path, f"expected a number, got {short_value(value)}", "需要数字")
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise rule_error(
            path, f"a whole number must fit in 64 bits (int64), got {short_value(value)}", "整数超出 64 位范围"
        )
    if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_NUMBER):
        raise rule_error(path, f"a decimal number must be finite and within ±{MAX_NUMBER:.0e}", "数值超出范围")
    return value


def check_fen(value: Any, path: str) -> int:
    """An amount of money: whole fen, 0 … MAX_FEN."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEN:
        raise rule_error(
            path,
            f"money is a whole number of fen (分) from 0 to {MAX_FEN:,} (int64), got {short_value(value)}",
            "金额须为整数分",
        )
    return value


def check_day(value: Any, path: str) -> date:
    """A date of a rule (YYYY-MM-DD, or a `date`) within the years 1900–2999."""
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError as exc:
        raise rule_error(path, f"expected a date YYYY-MM-DD, got {short_value(value)}", "日期格式错误") from exc
    if not FIRST_DAY <= day <= LAST_DAY:
        raise rule_error(path, f"a date from {FIRST_DAY} to {LAST_DAY}, got {day}", "日期超出范围")
    return day


def check_whole(value: Any, lo: int, hi: int, path: str, name: str, zh: str) -> None:
    """A whole number `name` (`zh` in Chinese) from `lo` to `hi`: days, times."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise rule_error(
            path,
            f"{name} must be a whole number from {lo} to {hi:,}, got {short_value(value)}",
            f"{zh}须为 {lo}–{hi} 的整数",
        )


def check_period(label: Any, path: str) -> None:
    """The label itself is read when the rule compiles (it depends on the grain); here only what
    keeps it within the calendar."""
    if not isinstance(label, str):
        raise rule_error(path, "period is a label such as 2024-06", "周期格式错误")
    year = _PERIOD_YEAR.match(label)
    if year and not FIRST_DAY.year <= int(year[1]) <= LAST_DAY.year:
        raise rule_error(
            path, f"a period from {FIRST_DAY.year} to {LAST_DAY.year}, got {short_value(label)}", "周期超出范围"
        )
