"""The pydantic-free check of plain Segment batches (`siyu.api.schemas.segment_fast`) never accepts
what the pydantic models refuse, reads the same timestamps, and does take the common SDK batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from siyu.api.schemas.segment import BatchAdapter, parse_batch
from siyu.api.schemas.segment_fast import plain_batch

TIMES = [
    "2024-06-18T12:00:00Z", "2024-06-18T12:00:00.123+08:00", "2024-06-18T12:00:00", "2024-06-18T12:00:00.1234567Z",
    "2024-06-18", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-06-18 12:00:00", "2024-06-18t12:00:00z",
    "2024-06-18T12:00:00+24:00", "20240618T120000Z", "", "now",
]  # fmt: skip
DROP = object()  # a field left out
VALUES: list[Any] = [None, "", "u1", 7, 1.5, True, {}, {"a": {"b": [1]}}, [], *TIMES]
KEYS = [
    "type", "userId", "anonymousId", "messageId", "event", "name", "category", "groupId", "previousId", "timestamp",
    "originalTimestamp", "sentAt", "context", "integrations", "properties", "traits",
]  # fmt: skip
TYPES: list[Any] = ["identify", "track", "page", "screen", "group", "alias", "bogus", 1, DROP]

VALID = {  # one valid message per type; the generator changes or drops up to three of its fields
    "identify": {"userId": "u1", "traits": {"phone": "13800000000"}},
    "track": {"anonymousId": "a1", "event": "Product Viewed", "properties": {"sku": "A1"}},
    "page": {"userId": "u1", "name": "home", "category": "shop"},
    "screen": {"anonymousId": "a1", "name": "cart"},
    "group": {"userId": "u1", "groupId": "g1"},
    "alias": {"previousId": "a1", "userId": "u1"},
}
message = st.builds(
    lambda kind, changes: {
        k: v for k, v in {"type": kind, **VALID.get(kind, VALID["track"]), **changes}.items() if v is not DROP
    },
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from([*VALUES, DROP]), max_size=3),
)
body = st.fixed_dictionaries(
    {"batch": st.lists(message, max_size=4)},
    optional={"sentAt": st.sampled_from(VALUES), "context": st.sampled_from(VALUES)},
)


def _sdk_track(i: int) -> dict[str, Any]:
    return {
        "type": "track", "event": "Product Viewed", "userId": f"u{i}", "anonymousId": f"a-{i}",
        "messageId": f"m-{i}", "timestamp": "2026-05-01T10:00:00.123+08:00", "sentAt": "2026-05-01T02:00:01Z",
        "properties": {"sku": "A1", "price": 99.5}, "context": {"library": {"name": "analytics.js"}},
    }  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(body)
def test_never_accepts_what_the_models_refuse(data: dict[str, Any]) -> None:
    times = plain_batch(data)
    if times is None:
        return
    models = BatchAdapter.validate_python(data).batch  # raises if the fast check let a bad body through
    # the same instants (naive = UTC, as Segment and `value_problems` read them)
    assert times == [t if t is None or t.tzinfo else t.replace(tzinfo=UTC) for t in (m.timestamp for m in models)]


def test_models_refuse_what_it_passes_on() -> None:
    bad = {"batch": [{"type": "track", "event": "", "userId": "u1"}]}
    assert plain_batch(bad) is None
    try:
        BatchAdapter.validate_python(bad)
    except ValidationError:
        pass
    else:
        raise AssertionError("an empty event name must be refused")


def test_the_common_sdk_batch_is_plain() -> None:
    data = {"batch": [_sdk_track(i) for i in range(100)], "sentAt": "2026-05-01T02:00:01Z", "context": {"ip": "::1"}}
    times = plain_batch(data)
    assert times == [datetime(2026, 5, 1, 2, 0, 0, 123000, tzinfo=UTC)] * 100
    rows = parse_batch(orjson.dumps(data), now=datetime(2026, 5, 2, tzinfo=UTC))
    assert [r.message_id for r in rows] == [f"m-{i}" for i in range(100)]
    assert orjson.loads(rows[0].payload)["context"] == {"ip": "::1", "library": {"name": "analytics.js"}}
