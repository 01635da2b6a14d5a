"""Segment HTTP Tracking API messages: identify, track, page, screen, group, alias and batch.

Lenient like Segment: unknown fields are allowed and kept; `userId` / `anonymousId` may be
strings or numbers (numbers become strings); `messageId` is optional (`message_id()` derives a
stable one). Validation is by type (pydantic-core, no Python per field) plus one check that a
person is named, then the few value checks that keep out what would break later
(`segment_values`: nesting, size, time bounds, order money), so a 100-message batch validates in
about a millisecond.

The request path stores each validated message as JSON in the inbox (`to_inbox_rows`); the
mapping to canonical rows happens later, in `siyu.ingest.segment`. See docs/segment-mapping.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple, Self

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

from siyu.api.schemas.segment_fast import plain_batch
from siyu.api.schemas.segment_values import MessageValueError, depth_problems, size_problems, value_problems
from siyu.core.clock import utc_now
from siyu.ingest.bounds import TimeBounds

# Fields a client may set differently when it retries the same message; not part of its identity.
_TRANSPORT_FIELDS = ("sentAt", "receivedAt", "writeKey")
# Id fields Segment accepts as numbers; stored as strings.
_ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId", "messageId")

JSONObject = dict[str, Any]


def _iso_text(value: Any) -> Any:
    # Segment's timestamps are ISO-8601 strings. pydantic would read a number as epoch seconds or
    # milliseconds (guessing which by size) while the mapping could not read it at all: refuse it.
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be an ISO-8601 string such as 2024-06-18T12:00:00+08:00, not a number (须为 ISO-8601)")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_text)]


class SegmentMessage(BaseModel):
    """Fields common to every Segment message (the spec's "common fields")."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    message_id: str | None = Field(None, alias="messageId", description="client id of the message; derived if absent")
    timestamp: IsoTime | None = Field(None, description="when it happened (ISO-8601); naive = UTC")
    original_timestamp: IsoTime | None = Field(None, alias="originalTimestamp")
    sent_at: IsoTime | None = Field(None, alias="sentAt", description="client clock when sent (skew correction)")
    context: JSONObject | None = None
    integrations: JSONObject | None = None


class _PersonMessage(SegmentMessage):
    user_id: str | None = Field(None, alias="userId", description="the brand's id of the user")
    anonymous_id: str | None = Field(None, alias="anonymousId", description="device / browser id before sign-in")

    @model_validator(mode="after")
    def _names_someone(self) -> Self:
        if not (self.user_id or self.anonymous_id):
            raise ValueError("userId or anonymousId is required (需要 userId 或 anonymousId)")
        return self


class Identify(_PersonMessage):
    """Who the user is: traits (phone, email, unionid, name…) merged into their profile."""

    type: Literal["identify"] = "identify"
    traits: JSONObject | None = None


class Track(_PersonMessage):
    """Something the user did: `event` is the action's name (e.g. "Product Viewed")."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1)
    properties: JSONObject | None = None


class Page(_PersonMessage):
    """A web page view."""

    type: Literal["page"] = "page"
    name: str | None = None
    category: str | None = None
    properties: JSONObject | None = None


class Screen(_PersonMessage):
    """A mobile app screen view."""

    type: Literal["screen"] = "screen"
    name: str | None = None
    category: str | None = None
    properties: JSONObject | None = None


class Group(_PersonMessage):
    """Membership of a group (account, company); kept as an event only."""

    type: Literal["group"] = "group"
    group_id: str = Field(alias="groupId", min_length=1)
    traits: JSONObject | None = None


class Alias(SegmentMessage):
    """`previousId` and `userId` are the same person."""

    type: Literal["alias"] = "alias"
    previous_id: str = Field(alias="previousId", min_length=1)
    user_id: str = Field(alias="userId", min_length=1)


Message = Annotated[Identify | Track | Page | Screen | Group | Alias, Field(discriminator="type")]


class Batch(BaseModel):
    """`POST /v1/batch`: many messages; batch-level `context` applies to messages without it."""

    model_config = ConfigDict(extra="allow")

    batch: list[Message]
    sent_at: IsoTime | None = Field(None, alias="sentAt")
    context: JSONObject | None = None
    integrations: JSONObject | None = None


SINGLE_MODELS: dict[str, type[SegmentMessage]] = {
    "identify": Identify,
    "track": Track,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}
BatchAdapter: TypeAdapter[Batch] = TypeAdapter(Batch)
_SINGLE_ADAPTERS: dict[str, TypeAdapter[Any]] = {kind: TypeAdapter(model) for kind, model in SINGLE_MODELS.items()}


class InboxRow(NamedTuple):
    message_id: str
    type: str
    payload: str  # the message as JSON text


def message_id(msg: Mapping[str, Any]) -> str:
    """The client's `messageId`, or a hash of the message so that an identical retry is the same message.

    Transport fields (`sentAt`, `receivedAt`, `writeKey`) are left out of the hash: a retry may
    change them.
    """
    given = msg.get("messageId")
    if given is not None and given != "":
        return str(given)
    content = {k: v for k, v in msg.items() if k not in _TRANSPORT_FIELDS and k != "messageId"}
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest}"


def to_inbox_rows(
    messages: Iterable[Mapping[str, Any] | SegmentMessage],
    *,
    context: Mapping[str, Any] | None = None,
    sent_at: str | None = None,
) -> list[InboxRow]:
    """(message_id, type, payload JSON) for each validated message, ready for the inbox.

    A message is a validated model or the raw JSON object it was validated from (cheaper: no
    dump, and the client's own timestamp strings are kept). Ids given as numbers become strings;
    a missing `messageId` is derived (`message_id`); `context` (a batch's) is merged under each
    message's own (the message's keys win); `sent_at` (a batch's `sentAt`) is copied into messages
    without one, for clock-skew correction. The receive time is not put in the payload: the inbox
    keeps it in its own column.
    """
    rows = []
    for msg in messages:
        if isinstance(msg, BaseModel):
            data = msg.model_dump(mode="json", by_alias=True, exclude_none=True)
        else:
            data = dict(msg)
            for key in _ID_FIELDS:
                value = data.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    data[key] = str(value)
        mid = message_id(data)
        data["messageId"] = mid
        if context:
            data["context"] = {**context, **(data.get("context") or {})}
        if sent_at and not data.get("sentAt"):
            data["sentAt"] = sent_at
        rows.append(InboxRow(mid, data["type"], orjson.dumps(data).decode()))
    return rows


def _loads(body: bytes, adapter: TypeAdapter[Any]) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        adapter.validate_json(body)  # raises the ValidationError that says where the JSON is broken
        raise


def _check_depth(messages: Any, places: list[str]) -> None:
    """Before anything walks the JSON recursively (pydantic, orjson.dumps): refuse deep nesting."""
    if isinstance(messages, list) and (problems := depth_problems(messages, places)):
        raise MessageValueError(problems)


def _checked_rows(
    data: Sequence[Mapping[str, Any]],
    timestamps: Sequence[datetime | None],
    places: Sequence[str],
    bounds: TimeBounds,
    now: datetime | None,
    **batch: Any,
) -> list[InboxRow]:
    latest = bounds.latest(now or utc_now())
    problems = [
        p
        for raw, timestamp, place in zip(data, timestamps, places, strict=True)
        for p in value_problems(raw, timestamp, place, bounds, latest)
    ]
    if problems:
        raise MessageValueError(problems)
    rows = to_inbox_rows(data, **batch)
    if problems := size_problems([r.payload for r in rows], places):
        raise MessageValueError(problems)
    return rows


def parse_batch(body: bytes, bounds: TimeBounds = TimeBounds(), now: datetime | None = None) -> list[InboxRow]:
    """Validate a `/v1/batch` body and return its inbox rows; raises `pydantic.ValidationError` for a
    bad shape, `MessageValueError` for values the door refuses (`segment_values`)."""
    data = _loads(body, BatchAdapter)
    messages = data.get("batch") if isinstance(data, dict) else None
    _check_depth(messages, [f"batch.{i}." for i in range(len(messages or []))])
    if isinstance(data, dict) and isinstance(data.get("context"), dict | list):
        _check_depth([{"context": data["context"]}], [""])  # the batch's context
    # A plain batch (nearly all) is checked without pydantic; anything else by the models.
    timestamps = plain_batch(data)
    if timestamps is None:
        timestamps = [m.timestamp for m in BatchAdapter.validate_python(data).batch]
    sent_at = data.get("sentAt") if isinstance(data.get("sentAt"), str) else None
    places = [f"batch.{i}." for i in range(len(timestamps))]
    return _checked_rows(data["batch"], timestamps, places, bounds, now, context=data.get("context"), sent_at=sent_at)


def parse_message(
    kind: str, body: bytes, bounds: TimeBounds = TimeBounds(), now: datetime | None = None
) -> list[InboxRow]:
    """Validate the body of `/v1/<kind>` (one message; `type` may be omitted) and return its inbox row."""
    model = SINGLE_MODELS[kind]
    adapter = _SINGLE_ADAPTERS[kind]
    data = _loads(body, adapter)
    _check_depth([data], [""])
    message = model.model_validate(data)
    if isinstance(data, dict) and "type" not in data:
        data["type"] = kind
    return _checked_rows([data], [message.timestamp], [""], bounds, now)
