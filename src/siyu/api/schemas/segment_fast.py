"""The common Segment batch, checked without pydantic: the hot path of `/v1/batch`.

pydantic validates a 100-message batch in about 1.5 ms — a quarter of the door's work per
request. Nearly every batch an SDK sends is plain: known `type`s, string ids, ISO-8601 timestamps
in the RFC 3339 form, objects where objects go. `plain_batch` accepts exactly such a batch, with
a few dictionary look-ups per message, and answers None for anything else, which then goes
through the pydantic models (`siyu.api.schemas.segment`) — they stay the one definition of what
is accepted, and the only source of error answers. So this module may refuse more than the models
(a number as a `userId`, a date without a time, …) but never accepts anything they refuse;
tests/unit/test_segment_fast.py holds it to that.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# RFC 3339 date-times (the SDKs' form), which pydantic and `datetime.fromisoformat` both read.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?")
_TIMES = ("timestamp", "originalTimestamp", "sentAt")
_OBJECTS = ("context", "integrations")
# per type: fields that must be non-empty strings, optional strings, optional objects
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "identify": ((), (), ("traits",)),
    "track": (("event",), (), ("properties",)),
    "page": ((), ("name", "category"), ("properties",)),
    "screen": ((), ("name", "category"), ("properties",)),
    "group": (("groupId",), (), ("traits",)),
    "alias": (("previousId", "userId"), (), ()),
}
_PERSON_IDS = ("userId", "anonymousId")


def _time(value: Any) -> datetime | bool | None:
    """The instant of a plain timestamp value (None when absent); False when not plain."""
    if value is None:
        return None
    if type(value) is not str or _RFC3339.fullmatch(value) is None:
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # 2024-02-30 and the like: pydantic refuses it too, with the answer to send
        return False
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _plain_message(message: Any) -> datetime | bool | None:
    """The parsed `timestamp` of a plain message (None when it has none); False when not plain."""
    if type(message) is not dict:
        return False
    kind = message.get("type")
    if type(kind) is not str or (fields := _FIELDS.get(kind)) is None:
        return False
    required, strings, objects = fields
    for key in required:
        value = message.get(key)
        if type(value) is not str or not value:
            return False
    for key in (*strings, "messageId"):
        value = message.get(key)
        if value is not None and type(value) is not str:
            return False
    for key in (*objects, *_OBJECTS):
        value = message.get(key)
        if value is not None and type(value) is not dict:
            return False
    if message["type"] != "alias":
        named = False
        for key in _PERSON_IDS:
            value = message.get(key)
            if value is None:
                continue
            if type(value) is not str:
                return False
            named = named or bool(value)
        if not named:
            return False
    timestamp = _time(message.get("timestamp"))
    if timestamp is False:
        return False
    for key in _TIMES[1:]:
        if _time(message.get(key)) is False:
            return False
    return timestamp


def plain_batch(data: Any) -> list[datetime | None] | None:
    """For a plain batch body (parsed JSON), each message's `timestamp` (None where it has none);
    None when the body is not plain and must be validated by the models."""
    if type(data) is not dict or type(batch := data.get("batch")) is not list:
        return None
    if _time(data.get("sentAt")) is False:
        return None
    for key in _OBJECTS:
        if data.get(key) is not None and type(data[key]) is not dict:
            return None
    times: list[datetime | None] = []
    for message in batch:
        timestamp = _plain_message(message)
        if timestamp is False:
            return None
        times.append(timestamp)  # type: ignore[arg-type]
    return times
