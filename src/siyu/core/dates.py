"""Dates given by users (CLI options, API query parameters)."""

from __future__ import annotations

from datetime import date

from siyu.core.errors import SiyuError


class BadDateError(SiyuError):
    code = "bad_date"


def parse_date(text: str, option: str) -> date:
    """A YYYY-MM-DD value, or a clear error naming the option."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadDateError(f"{option} {text!r}: expected a date YYYY-MM-DD (日期格式错误)") from exc
