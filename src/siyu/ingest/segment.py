"""Segment messages → canonical rows, as Ibis expressions (the rules are in docs/segment-mapping.md).

Input: one micro-batch of inbox messages (`inbox_id`, `brand`, `source`, `message_id`, `payload`
JSON, `received_at`). Output: per entity, a table of the canonical columns as text (what a
canonical file holds, so the importer validates and quarantines it like any file) plus `_line` =
the inbox id of the message a row came from.

The mapping is idempotent against the lake: mapping the same batch again after it was imported
yields the same rows (the importer then finds them `unchanged`). Profiles merge (a later identify
with fewer traits keeps earlier values) and refunds are summed from the refund events themselves,
never added to a stored total.

The parts: `segment_text` (reading the JSON, writing canonical text), `segment_people` (customers,
identities), `segment_orders` (orders, order_items), `segment_events` (events).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.ingest.bounds import TimeBounds
from siyu.ingest.readers import RawFile
from siyu.ingest.schema import IMPORT_ORDER
from siyu.ingest.segment_events import events, snake_case
from siyu.ingest.segment_orders import order_id_of, order_items, orders
from siyu.ingest.segment_people import customers, identities, profile
from siyu.ingest.segment_text import Existing, get, iso, raw_json, scalar

# How long a client may hold a message before sending it (offline mobile queues) for its clock-skew
# correction to be trusted.
MAX_CLIENT_DELAY = timedelta(days=30)


def occurred_at(
    timestamp: ir.StringValue,
    original: ir.StringValue,
    sent: ir.StringValue,
    received: ir.TimestampValue,
    bounds: TimeBounds,
) -> ir.TimestampValue:
    """When a message happened (docs/segment-mapping.md "occurred_at").

    An explicit `timestamp` is used as sent (the API refused it out of bounds; an older inbox row
    out of bounds is quarantined by the importer). Else Segment's clock-skew correction
    `receivedAt − (sentAt − originalTimestamp)`, but only when the client's own delay
    `sentAt − originalTimestamp` is sane (0 … MAX_CLIENT_DELAY): the client clock may be off by
    years (a phone reset to 1970) and the correction fixes that, but a negative or huge delay
    means one of the two is garbage. Else `originalTimestamp` when within the bounds; else
    `receivedAt`. The result is then always within [receivedAt − MAX_CLIENT_DELAY, receivedAt].
    """
    sent_ts, original_ts = sent.try_cast("timestamp('UTC')"), original.try_cast("timestamp('UTC')")
    sane = (original_ts <= sent_ts) & (original_ts >= sent_ts - ibis.interval(days=MAX_CLIENT_DELAY.days))
    earliest = ibis.literal(bounds.earliest.astimezone(UTC), type="timestamp('UTC')")
    ahead = ibis.interval(seconds=int(bounds.max_future.total_seconds()))
    plausible = (original_ts >= earliest) & (original_ts <= received + ahead)
    return ibis.coalesce(
        timestamp.try_cast("timestamp('UTC')"),
        ibis.ifelse(sane, received - (sent_ts - original_ts), ibis.null("timestamp('UTC')")),
        ibis.ifelse(plausible, original_ts, ibis.null("timestamp('UTC')")),
        received,
    )


def parse(messages: ir.Table, bounds: TimeBounds = TimeBounds()) -> ir.Table:
    """One row per message, every value the mapping needs extracted once into its own column.

    Customers values are `c_<column>` (profile ones only for identify), order values `o_<name>`;
    `properties` and `traits` stay JSON (kept whole in events; `products` unnested for items).
    """
    j = messages.payload.cast("json")
    user_id, anonymous_id = scalar(j["userId"]), scalar(j["anonymousId"])
    occurred = occurred_at(
        scalar(j["timestamp"]), scalar(j["originalTimestamp"]), scalar(j["sentAt"]), messages.received_at, bounds
    )
    top = messages.select(
        "inbox_id",
        "brand",
        "source",
        "message_id",
        kind=j["type"].str,
        user_id=user_id,
        anonymous_id=anonymous_id,
        customer=ibis.coalesce(user_id, anonymous_id),
        previous_id=scalar(j["previousId"]),
        event=scalar(j["event"]),
        event_json=raw_json(j["event"]),
        name_json=raw_json(j["name"]),
        category_json=raw_json(j["category"]),
        group_json=raw_json(j["groupId"]),
        traits=j["traits"],
        context_traits=j["context"]["traits"],
        properties=j["properties"],
        context=j["context"],
        occurred_at=iso(occurred),
    )
    props = top.properties
    return top.select(
        *[c for c in top.columns if c != "context"],
        event_name=snake_case(top.event),
        field=ibis.coalesce(get(props, "field"), get(top.context, "field"), top.source),
        livestream=scalar(props["livestream"]) == "true",
        c_device_id=get(top.context["device"], "id"),
        **{f"c_{c}": v for c, v in profile(top).items()},
        o_order_id=order_id_of(props),
        o_total=get(props, "total"),
        o_revenue=get(props, "revenue"),
        o_discount=get(props, "discount"),
        o_coupon=get(props, "coupon"),
        o_store_code=get(props, "store_code", "storeCode"),
        o_guide_code=get(props, "guide_code", "guideCode"),
        o_share_id=get(props, "share_id", "shareId"),
        o_points_used=get(props, "points_used", "pointsUsed"),
    )


def segment_to_canonical(
    messages: ir.Table,
    existing: Existing,
    *,
    materialise: Callable[[ir.Table], ir.Table] | None = None,
    bounds: TimeBounds = TimeBounds(),
) -> dict[str, ir.Table]:
    """Canonical text tables (plus `_line` = inbox id) for one batch of Segment inbox messages.

    `existing(entity)` gives the lake's current rows of an entity (or None); it is asked for
    `customers` (profile merge), `orders` (refunds of earlier orders) and `events` (earlier refund
    events, so refund totals stay exact when a batch is mapped again). `materialise`, if given,
    computes the parsed batch once (e.g. `Engine.materialise`) so the five outputs share it.
    `bounds` are the import bounds (`Settings.time_bounds`) the clock-skew rule keeps to.
    """
    p = parse(messages, bounds)
    if materialise is not None:
        p = materialise(p)
    return {
        "customers": customers(p, existing),
        "identities": identities(p),
        "orders": orders(p, existing),
        "order_items": order_items(p),
        "events": events(p),
    }


def to_raw_files(tables: dict[str, pa.Table], folder: Path = Path("inbox/segment")) -> list[RawFile]:
    """Mapped (or canonical inbox) tables as RawFiles for `import_file`, in import order (empty ones
    left out). The loader imports every inbox batch through this.

    Rows are numbered 1…n as `_line` (the importer needs one line per row); the inbox id moves to
    `_inbox_id`, which the importer keeps with quarantined rows.
    """
    files = []
    for entity in IMPORT_ORDER:
        table = tables.get(entity)
        if table is None or table.num_rows == 0:
            continue
        table = table.sort_by("_line")
        numbered = table.drop_columns(["_line"]).append_column("_inbox_id", table["_line"])
        numbered = numbered.append_column("_line", pa.array(range(1, table.num_rows + 1), pa.int64()))
        files.append(RawFile(folder / entity, entity, "inbox", "utf-8", numbered))
    return files
