"""Segment track / page / screen / group → `events`: the event name becomes a canonical type (the
Segment spec names siyu knows map to its types), and the original name and properties are kept."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.ingest.segment_text import json_object, output

# Segment spec event names (compared in snake_case, so "Product Viewed" = "product_viewed") → types.
EVENT_TYPES: dict[str, str] = {
    "product_viewed": "view_item",
    "product_added": "add_cart",
    "product_shared": "share",
    "cart_shared": "share",
    "product_reviewed": "review",
    "signed_in": "sign_in",
    "coupon_applied": "coupon_claim",
    "coupon_entered": "coupon_claim",
}
LIVE_EVENTS = ("video_playback_started", "video_content_playing")  # live_watch when properties.livestream
EVENT_KINDS = ("track", "page", "screen", "group")


def snake_case(name: ir.StringValue) -> ir.StringValue:
    """An event name as a canonical type: snake_case ASCII, starting with a letter, ≤ 64 characters."""
    s = name.re_replace("([a-z])([A-Z])", r"\1_\2").lower().re_replace("[^a-z0-9]+", "_")
    s = s.re_replace("^_+|_+$", "")
    s = ibis.cases((s == "", "custom"), (s.re_search("^[0-9]"), "e_" + s), else_=s)
    return s.substr(0, 64).re_replace("_+$", "")


def events(p: ir.Table) -> ir.Table:
    """track / page / screen / group → events; the original name and properties are kept."""
    ev = p.filter(p.kind.isin(EVENT_KINDS))
    event_type = ibis.cases(
        (ev.kind.isin(("page", "screen")), "visit"),
        (ev.kind == "group", "group"),
        (ev.event_name.isin(LIVE_EVENTS) & ev.livestream, "live_watch"),
        else_=ev.event_name.substitute(EVENT_TYPES, else_=ev.event_name),
    )
    is_track = ev.kind == "track"
    extra = {
        "segment_event": ibis.ifelse(is_track, ev.event_json, ibis.null(str)),
        "segment_type": ibis.ifelse(is_track, ibis.null(str), '"' + ev.kind + '"'),
        "name": ev.name_json,
        "category": ev.category_json,
        "group_id": ev.group_json,
    }
    rest = ibis.ifelse(ev.kind == "group", ev.traits, ev.properties)
    values = {
        "brand": ev.brand,
        "source": ev.source,
        "event_id": ev.message_id,
        "field": ev.field,
        "type": event_type,
        "source_customer_id": ev.customer,
        "occurred_at": ev.occurred_at,
        "properties": json_object(extra, rest),
    }
    return output(ev, "events", values, ev.inbox_id)
