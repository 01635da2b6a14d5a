"""What a Segment message's values must satisfy beyond their types, checked at the door (400).

The type schema (`siyu.api.schemas.segment`) stays lenient like Segment; these checks refuse what
would otherwise be stored and break later (docs/segment-mapping.md "Limits"):

- nesting: at most `MAX_DEPTH` levels of objects / arrays below a message's field (`properties`,
  `traits`, `context`…); deeper JSON cannot be stored as JSON again, so it used to answer 500;
- size: at most `MAX_MESSAGE_BYTES` per message as stored (Segment's own limit is 32 KB);
- time: an explicit `timestamp` within the import bounds (`siyu.ingest.bounds`);
- orders (`Order Completed`, `Order Refunded`): `total`, `revenue`, `discount` and each product's
  `price` non-negative yuan exact to the fen (0.01) and below 10^13 yuan; each `quantity` a
  positive integer; `points_used` a non-negative integer. Money is never rounded: 0.001 yuan is
  refused rather than stored as a paid order of 0 fen.

Plain Python over the parsed JSON: a 100-message batch is checked in well under a millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from siyu.ingest.bounds import TimeBounds

MAX_DEPTH = 32
MAX_MESSAGE_BYTES = 32 * 1024
MAX_FEN = 10**15  # as the importer: money and counts have at most 15 digits
ORDER_EVENTS = ("order_completed", "order_refunded")
MONEY = ("total", "revenue", "discount")
POINTS = ("points_used", "pointsUsed")


class MessageValueError(ValueError):
    """Messages whose values the door refuses; `errors` are `{"field", "reason"}` like a ValidationError's."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5]))
        self.errors = errors


@lru_cache(maxsize=4096)  # a source sends few distinct event names, over and over
def snake_case(name: str) -> str:
    """As `siyu.ingest.segment_events.snake_case` (the mapping compares event names this way)."""
    s = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return re.sub("[^a-z0-9]+", "_", s).strip("_")


def deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests objects / arrays more than `limit` levels (`value` itself is level 1).
    Level by level, not recursive: the JSON parser allows 1024 levels, Python's stack fewer."""
    level, depth = [value], 1
    while level:
        if depth > limit:
            return True
        below = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level, depth = below, depth + 1
    return False


def depth_problems(messages: list[Any], places: Sequence[str]) -> list[dict[str, str]]:
    """The fields nested deeper than `MAX_DEPTH` in a list of messages: one pass over the whole list
    (list → message → field is two levels above the field's own), then, only if that finds some,
    a look at each field to name it."""
    if not deeper_than(messages, MAX_DEPTH + 2):
        return []
    return [
        {"field": f"{place}{key}", "reason": f"nested deeper than {MAX_DEPTH} levels (嵌套过深)"}
        for message, place in zip(messages, places, strict=False)
        if isinstance(message, dict)
        for key, value in message.items()
        if isinstance(value, dict | list) and deeper_than(value, MAX_DEPTH)
    ]


def _yuan(value: Any) -> str | None:
    """Why `value` is not an amount of yuan exact to the fen, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"must be a number of yuan, got {value!r}"
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return f"must be a number of yuan, got {value!r}"
    if not amount.is_finite() or amount < 0:
        return f"must be a non-negative number of yuan, got {value!r}"
    fen = amount * 100
    if fen != fen.to_integral_value():
        return f"more precise than a fen (0.01 yuan), got {value!r} (金额精确到分)"
    if fen >= MAX_FEN:
        return f"too large (at most 9999999999999.99 yuan), got {value!r}"
    return None


def _count(value: Any, positive: bool) -> str | None:
    """Why `value` is not a (positive / non-negative) integer, or None. 3.0 counts as 3."""
    what = "a positive integer" if positive else "a non-negative integer"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"must be {what}, got {value!r}"
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return f"must be {what}, got {value!r}"
    whole = number.is_finite() and number == number.to_integral_value()
    if not whole or number < (1 if positive else 0) or number >= MAX_FEN:
        return f"must be {what}, got {value!r}"
    return None


def _order_problems(properties: Mapping[str, Any], where: str) -> Iterator[dict[str, str]]:
    for key in MONEY:
        if properties.get(key) is not None and (why := _yuan(properties[key])):
            yield {"field": f"{where}{key}", "reason": why}
    for key in POINTS:
        if properties.get(key) is not None and (why := _count(properties[key], positive=False)):
            yield {"field": f"{where}{key}", "reason": why}
    products = properties.get("products")
    if not isinstance(products, list):
        return
    for i, product in enumerate(products):
        if not isinstance(product, dict):
            continue
        if product.get("price") is not None and (why := _yuan(product["price"])):
            yield {"field": f"{where}products.{i}.price", "reason": why}
        if product.get("quantity") is not None and (why := _count(product["quantity"], positive=True)):
            yield {"field": f"{where}products.{i}.quantity", "reason": why}


def _instant(raw: Any, parsed: datetime) -> datetime:
    """The aware instant of a validated timestamp. Re-read from its text when the standard library
    can: comparing datetimes that carry pydantic's tzinfo costs ~5x more, per message."""
    try:
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else parsed
    except ValueError:  # a form pydantic accepts and the standard library does not
        value = parsed
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # naive = UTC, as Segment


def value_problems(
    message: Mapping[str, Any], timestamp: datetime | None, where: str, bounds: TimeBounds, latest: datetime
) -> list[dict[str, str]]:
    """What the door refuses in one validated message (`timestamp` is its parsed `timestamp`;
    `latest` = `bounds.latest(now)`, computed once per request)."""
    problems: list[dict[str, str]] = []
    if timestamp is not None and not bounds.earliest <= _instant(message.get("timestamp"), timestamp) <= latest:
        reason = f"out of range ({bounds.describe()}) (时间超出范围): {message.get('timestamp')}"
        problems.append({"field": f"{where}timestamp", "reason": reason})
    event, properties = message.get("event"), message.get("properties")
    if isinstance(event, str) and snake_case(event) in ORDER_EVENTS and isinstance(properties, dict):
        problems += _order_problems(properties, f"{where}properties.")
    return problems


def size_problems(payloads: Sequence[str], places: Sequence[str]) -> list[dict[str, str]]:
    return [
        {"field": place or "body", "reason": f"message larger than {MAX_MESSAGE_BYTES // 1024} KB (消息过大)"}
        for payload, place in zip(payloads, places, strict=True)
        if len(payload.encode()) > MAX_MESSAGE_BYTES
    ]
