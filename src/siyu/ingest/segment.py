"""Segment messages → canonical rows, as Ibis expressions (the rules are in docs/segment-mapping.md).

Input: one micro-batch of inbox messages (`inbox_id`, `brand`, `source`, `message_id`, `payload`
JSON, `received_at`). Output: per entity, a table of the canonical columns as text (what a
canonical file holds, so the importer validates and quarantines it like any file) plus `_line` =
the inbox id of the message a row came from.

The mapping is idempotent against the lake: mapping the same batch again after it was imported
yields the same rows (the importer then finds them `unchanged`). Profiles merge (a later identify
with fewer traits keeps earlier values) and refunds are summed from the refund events themselves,
never added to a stored total.
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
from siyu.ingest.schema import ENTITIES, IMPORT_ORDER, Kind
from siyu.ingest.validate import REJECTED, first_problem

Existing = Callable[[str], ir.Table | None]

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
ORDER_COMPLETED = "order_completed"
ORDER_REFUNDED = "order_refunded"
PERSON_KINDS = ("identify", "track", "page", "screen", "group")
EVENT_KINDS = ("track", "page", "screen", "group")
CONTEXT_TRAIT_KINDS = ("identify", "track", "page", "screen")  # whose context.traits are the user's

# Identify traits → customers columns, first present wins (snake and camel spellings).
TRAITS: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "mobile"),
    "email": ("email",),
    "unionid": ("unionid", "unionId", "union_id"),
    "openid": ("openid", "openId", "open_id"),
    "member_no": ("member_no", "memberNo", "memberNumber", "member_number"),
    "tmall_ouid": ("tmall_ouid", "tmallOuid"),
    "jd_pin": ("jd_pin", "jdPin"),
    "douyin_openid": ("douyin_openid", "douyinOpenid", "douyinOpenId"),
    "external_userid": ("external_userid", "externalUserid", "externalUserId", "external_user_id"),
    "mix_nick": ("mix_nick", "mixNick"),
    "mix_mobile": ("mix_mobile", "mixMobile"),
    "store_code": ("store_code", "storeCode"),
    "guide_code": ("guide_code", "guideCode"),
}
GENDERS = {
    **dict.fromkeys(("male", "m", "man", "男"), "male"),
    **dict.fromkeys(("female", "f", "woman", "女"), "female"),
}
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"
# How long a client may hold a message before sending it (offline mobile queues) for its clock-skew
# correction to be trusted.
MAX_CLIENT_DELAY = timedelta(days=30)
MAX_FEN = 10**15  # as the importer: fen and counts have at most 15 digits
FEN_DECIMAL = "decimal(38, 6)"  # fen computed exactly, before the check that they are whole
_CJK = "[\u3400-\u9fff]"


# -- reading JSON ---------------------------------------------------------------------------------


def _scalar(j: ir.JSONValue) -> ir.StringValue:
    """A JSON scalar as text (numbers and booleans as written), trimmed; NULL for null, "", objects, arrays."""
    raw = j.cast("string")
    text = ibis.coalesce(j.str, ibis.ifelse(raw.re_search(r"^[-0-9tf]"), raw, ibis.null(str)))
    return text.strip().nullif("")


def _get(j: ir.JSONValue, *names: str) -> ir.StringValue:
    return ibis.coalesce(*[_scalar(j[n]) for n in names]) if len(names) > 1 else _scalar(j[names[0]])


def _raw_json(j: ir.JSONValue) -> ir.StringValue:
    """The JSON text of a value (a string keeps its quotes), NULL when absent or null."""
    return j.cast("string").nullif("null")


def _object(pairs: dict[str, ir.StringValue], rest: ir.JSONValue) -> ir.StringValue:
    """A JSON object: `pairs` (key → JSON text; NULL ones, and keys `rest` has, left out) followed
    by the members of the object `rest`."""
    text = rest.cast("string")
    inner = ibis.ifelse(text.startswith("{"), text.substr(1, text.length() - 2), ibis.null(str)).nullif("")
    members = [ibis.ifelse(rest[key].isnull(), f'"{key}":' + value, ibis.null(str)) for key, value in pairs.items()]
    return "{" + ibis.literal(",").join([*members, inner]) + "}"


def _decimal(text: ir.StringValue) -> ir.DecimalValue:
    return text.try_cast("decimal(38, 6)")


def _fen_text(fen: ir.DecimalValue) -> ir.StringValue:
    """A fen amount as canonical text: the integer when exact and in range, else the decimal as
    written (e.g. `0.1` for 0.001 yuan), which the importer quarantines: money is never rounded."""
    ok = (fen == fen.round(0)) & (fen.abs() < MAX_FEN)
    # CASE is evaluated lazily: the int64 cast never sees an out-of-range value.
    written = fen.cast("string").re_replace(r"[.]?0+$", "")  # 1000.500000 → 1000.5
    return ibis.ifelse(ok, fen.cast("int64").cast("string"), written)


def _fen_or_raw(text: ir.StringValue) -> ir.StringValue:
    """Fen from a yuan amount, exact to the fen; a value that is not a number is passed on as is."""
    amount = _decimal(text)
    small = amount.abs() < MAX_FEN  # yuan × 100 must not overflow the decimal either
    return ibis.ifelse(amount.notnull() & small, _fen_text(amount * 100), text)


def _count_or_raw(text: ir.StringValue) -> ir.StringValue:
    """A whole count as text ("3", also from 3.0); anything else passed on for the importer to reject."""
    number = _decimal(text)
    whole = number.notnull() & (number == number.round(0)) & (number.abs() < MAX_FEN)
    return ibis.ifelse(whole, number.cast("int64").cast("string"), text)


def _iso(ts: ir.TimestampValue) -> ir.StringValue:
    return ts.strftime(ISO)


def snake_case(name: ir.StringValue) -> ir.StringValue:
    """An event name as a canonical type: snake_case ASCII, starting with a letter, ≤ 64 characters."""
    s = name.re_replace("([a-z])([A-Z])", r"\1_\2").lower().re_replace("[^a-z0-9]+", "_")
    s = s.re_replace("^_+|_+$", "")
    s = ibis.cases((s == "", "custom"), (s.re_search("^[0-9]"), "e_" + s), else_=s)
    return s.substr(0, 64).re_replace("_+$", "")


# -- the parsed batch -----------------------------------------------------------------------------


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
    user_id, anonymous_id = _scalar(j["userId"]), _scalar(j["anonymousId"])
    occurred = occurred_at(
        _scalar(j["timestamp"]), _scalar(j["originalTimestamp"]), _scalar(j["sentAt"]), messages.received_at, bounds
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
        previous_id=_scalar(j["previousId"]),
        event=_scalar(j["event"]),
        event_json=_raw_json(j["event"]),
        name_json=_raw_json(j["name"]),
        category_json=_raw_json(j["category"]),
        group_json=_raw_json(j["groupId"]),
        traits=j["traits"],
        context_traits=j["context"]["traits"],
        properties=j["properties"],
        context=j["context"],
        occurred_at=_iso(occurred),
    )
    props = top.properties
    return top.select(
        *[c for c in top.columns if c != "context"],
        event_name=snake_case(top.event),
        field=ibis.coalesce(_get(props, "field"), _get(top.context, "field"), top.source),
        livestream=_scalar(props["livestream"]) == "true",
        c_device_id=_get(top.context["device"], "id"),
        **{f"c_{c}": v for c, v in _profile(top).items()},
        o_order_id=_order_id(props),
        o_total=_get(props, "total"),
        o_revenue=_get(props, "revenue"),
        o_discount=_get(props, "discount"),
        o_coupon=_get(props, "coupon"),
        o_store_code=_get(props, "store_code", "storeCode"),
        o_guide_code=_get(props, "guide_code", "guideCode"),
        o_share_id=_get(props, "share_id", "shareId"),
        o_points_used=_get(props, "points_used", "pointsUsed"),
    )


def _output(
    table: ir.Table, entity: str, values: dict[str, ir.Value], line: ir.Value, rejected: ir.Value | None = None
) -> ir.Table:
    """Exactly the entity's canonical columns as text (missing ones NULL), plus `_line` (and, for
    orders and their items, `_rejected`: why the importer must quarantine the row, or NULL)."""
    columns = {c: values.get(c, ibis.null(str)).cast("string") for c in ENTITIES[entity].column_names}
    extra = {} if rejected is None else {REJECTED: rejected.cast("string")}
    return table.select(**columns, _line=line.cast("int64"), **extra)


def as_text(table: ir.Table, entity: str) -> dict[str, ir.StringValue]:
    """A lake table's typed canonical columns back as canonical text (the inverse of validation)."""
    out: dict[str, ir.StringValue] = {}
    for column in ENTITIES[entity].columns:
        if column.name not in table.columns:
            out[column.name] = ibis.null(str)
            continue
        value = table[column.name]
        is_ts = column.kind is Kind.TIMESTAMP and value.type().is_timestamp()
        out[column.name] = _iso(value) if is_ts else value.cast("string")
    return out


# -- customers and identities ---------------------------------------------------------------------


def _profile_values(t: ir.JSONValue) -> dict[str, ir.Value]:
    """Customers columns from one traits object."""
    values: dict[str, ir.Value] = {c: _get(t, *names) for c, names in TRAITS.items()}
    first, last = _get(t, "firstName", "first_name"), _get(t, "lastName", "last_name")
    chinese = ibis.coalesce(first, "").re_search(_CJK) | ibis.coalesce(last, "").re_search(_CJK)
    joined = ibis.ifelse(
        chinese,
        ibis.literal("").join([last, first]),  # 张 + 三 → 张三
        ibis.literal(" ").join([first, last]),
    ).nullif("")
    gender = _get(t, "gender")
    birthday = _get(t, "birthday").replace("/", "-")
    created = _get(t, "createdAt", "created_at").try_cast("timestamp('UTC')")
    address = t["address"]
    return values | {
        "name": ibis.coalesce(_get(t, "name"), joined),
        "gender": ibis.ifelse(gender.isnull(), ibis.null(str), gender.lower().substitute(GENDERS, else_="unknown")),
        "birthday": ibis.ifelse(birthday.re_search(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"), birthday.substr(0, 10), None),
        "province": ibis.coalesce(_get(address, "state", "province"), _get(t, "province", "state")),
        "city": ibis.coalesce(_get(address, "city"), _get(t, "city")),
        "created_at": _iso(created),
    }


def _profile(p: ir.Table) -> dict[str, ir.Value]:
    """The person's traits: an identify's `traits`, merged over `context.traits` (top-level wins per
    column). Segment lets any call carry the user's traits in `context.traits`, and some SDKs put
    identify traits only there (RudderStack); `group` traits describe the group, never the person."""
    own = _profile_values(p.traits)
    from_context = _profile_values(p.context_traits)
    is_identify = p.kind == "identify"
    reads_context = p.kind.isin(CONTEXT_TRAIT_KINDS)
    return {
        c: ibis.coalesce(
            ibis.ifelse(is_identify, own[c], ibis.null(str)),
            ibis.ifelse(reads_context, from_context[c], ibis.null(str)),
        )
        for c in own
    }


def _customer_rows(t: ir.Table, customer: ir.StringValue, values: dict[str, ir.Value]) -> ir.Table:
    columns = [c for c in ENTITIES["customers"].column_names if c not in ("brand", "source", "source_customer_id")]
    return t.select(
        "brand",
        "source",
        "inbox_id",
        source_customer_id=customer,
        **{c: values.get(c, ibis.null(str)).cast("string") for c in columns},
    )


def customers(p: ir.Table, existing: Existing) -> ir.Table:
    """One row per source customer named in the batch: traits folded in inbox order (last non-NULL
    wins), then merged over the lake's current row (a new non-NULL value wins, else the old one)."""
    people = p.filter(p.kind.isin(PERSON_KINDS) & p.customer.notnull())
    own = {"anonymous_id": people.anonymous_id} | {c[2:]: people[c] for c in people.columns if c.startswith("c_")}
    aliases = p.filter(p.kind == "alias")
    rows = ibis.union(
        _customer_rows(people, people.customer, own),
        *[
            _customer_rows(aliases.filter(aliases[side].notnull()), aliases[side], {})
            for side in ("previous_id", "user_id")
        ],
        distinct=False,
    )
    key = list(ENTITIES["customers"].key)
    values = [c for c in ENTITIES["customers"].column_names if c not in key]
    folded = rows.group_by(key).aggregate(
        **{c: rows[c].last(order_by=rows.inbox_id) for c in values}, _line=rows.inbox_id.max()
    )
    old = existing("customers")
    if old is None:
        return _output(folded, "customers", {c: folded[c] for c in folded.columns}, folded._line)
    old = old.semi_join(folded.view(), key)
    old = old.select(*key, **{f"{c}__old": v for c, v in as_text(old, "customers").items() if c not in key})
    merged = folded.left_join(old, key)
    merged_values = {c: merged[c] for c in key} | {c: ibis.coalesce(merged[c], merged[f"{c}__old"]) for c in values}
    return _output(merged, "customers", merged_values, merged._line)


def identities(p: ir.Table) -> ir.Table:
    """Alias links (a strong `alias` identifier both sides share) and the devices a user signed in on."""
    aliases = p.filter((p.kind == "alias") & p.previous_id.notnull() & p.user_id.notnull())
    link = aliases.source + ":" + aliases.user_id  # per source: another source's userId 42 is someone else
    parts = [
        aliases.select(
            "brand", "source", "inbox_id", source_customer_id=side, id_type=ibis.literal("alias"), id_value=link
        )
        for side in (aliases.previous_id, aliases.user_id)
    ]
    devices = p.filter(p.kind.isin(PERSON_KINDS) & p.user_id.notnull() & p.anonymous_id.notnull())
    parts.append(
        devices.select(
            "brand",
            "source",
            "inbox_id",
            source_customer_id=devices.user_id,
            id_type=ibis.literal("anonymous_id"),
            id_value=devices.anonymous_id,
        )
    )
    rows = ibis.union(*parts, distinct=False)
    key = list(ENTITIES["identities"].key)
    distinct = rows.group_by(key).aggregate(_line=rows.inbox_id.max())
    return _output(distinct, "identities", {c: distinct[c] for c in key}, distinct._line)


# -- events ---------------------------------------------------------------------------------------


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
        "properties": _object(extra, rest),
    }
    return _output(ev, "events", values, ev.inbox_id)


# -- orders and their items -----------------------------------------------------------------------


def _order_id(props: ir.JSONValue) -> ir.StringValue:
    return _get(props, "order_id", "orderId")


def _completed(p: ir.Table) -> ir.Table:
    """The last `Order Completed` message of each order in the batch."""
    done = p.filter((p.kind == "track") & (p.event_name == ORDER_COMPLETED)).rename(order_id="o_order_id")
    rank = ibis.row_number().over(group_by=["brand", "source", "order_id"], order_by=ibis.desc("inbox_id"))
    done = done.mutate(_rank=rank)
    return done.filter(done._rank == 0).drop("_rank")


def _refund_amounts(t: ir.Table) -> ir.Table:
    """brand, source, order_id, event_id, refund (int fen; NULL = the whole order) of refund events
    (`t`: brand, source, event_id, `props` JSON).

    The refunded amount is `total`, else `revenue`, else Σ price × quantity of the listed products
    (priced ones), else the whole order."""
    event = ["brand", "source", "event_id"]
    items = t.mutate(_product=t.props["products"].array).unnest("_product")
    price = _decimal(_get(items._product, "price"))
    qty = ibis.coalesce(_decimal(_get(items._product, "quantity")), ibis.literal(1).cast("decimal(38, 6)"))
    large = (price.abs() >= MAX_FEN) | (qty.abs() >= MAX_FEN)
    per_event = items.group_by(event).aggregate(_products=ibis.ifelse(large, MAX_FEN, price * qty).sum())
    t = t.left_join(per_event.view(), event)
    amount = ibis.coalesce(_decimal(_get(t.props, "total")), _decimal(_get(t.props, "revenue")), t._products)
    # Exact fen, never rounded (a sub-fen refund makes the order's refund_fen a decimal the importer
    # quarantines); an absurd amount is capped where it is still rejected, not overflowed.
    fen = ibis.ifelse(amount.abs() >= MAX_FEN, ibis.literal(MAX_FEN).cast(FEN_DECIMAL), amount * 100)
    out = t.select(*event, order_id=_order_id(t.props), refund=fen.cast(FEN_DECIMAL))
    return out.view()


def _refunds(p: ir.Table, existing: Existing) -> ir.Table:
    """Every known refund event (this batch's and the lake's) of the orders this batch touches."""
    batch = p.filter((p.kind == "track") & (p.event_name == ORDER_REFUNDED))
    refunds = _refund_amounts(batch.select("brand", "source", event_id=batch.message_id, props=batch.properties))
    old = existing("events")
    if old is None:
        return refunds
    old = old.filter(old.type == ORDER_REFUNDED).anti_join(refunds.view(), ["brand", "source", "event_id"])
    earlier = _refund_amounts(old.select("brand", "source", "event_id", props=old.properties.cast("json")))
    return refunds.union(earlier, distinct=False)


def orders(p: ir.Table, existing: Existing) -> ir.Table:
    """`Order Completed` → a paid order; `Order Refunded` → its refund total and status.

    An order refunded here but completed in an earlier batch is re-emitted from the lake's row; a
    refund for an order not seen yet emits nothing (its event waits in `events` and is applied when
    the order arrives)."""
    key = list(ENTITIES["orders"].key)
    done = _completed(p)
    completed = _output(
        done,
        "orders",
        {
            "brand": done.brand,
            "source": done.source,
            "order_id": done.order_id,
            "source_customer_id": done.customer,
            "store_code": done.o_store_code,
            "guide_code": done.o_guide_code,
            "status": ibis.literal("paid"),
            "paid_at": done.occurred_at,
            "amount_fen": _fen_or_raw(ibis.coalesce(done.o_total, done.o_revenue)),
            "discount_fen": _fen_or_raw(done.o_discount),
            "coupon_code": done.o_coupon,
            "points_used": _count_or_raw(done.o_points_used),
            "share_id": done.o_share_id,
        },
        done.inbox_id,
    )
    rejected = _rejected_orders(_item_lines(p))
    completed = completed.left_join(rejected, key).drop(*[f"{k}_right" for k in key])
    refunds = _refunds(p, existing)
    refunded_here = p.filter((p.kind == "track") & (p.event_name == ORDER_REFUNDED))
    refunded_here = refunded_here.select("brand", "source", "inbox_id", order_id=refunded_here.o_order_id)
    touched = refunded_here.group_by(key).aggregate(_line=refunded_here.inbox_id.max())
    old = existing("orders")
    base = completed
    if old is not None:
        old_text = old.select(**as_text(old, "orders"))
        reopened = old_text.join(touched.anti_join(completed.view(), key).view(), key)
        reopened = reopened.mutate(**{REJECTED: ibis.null(str)})
        base = completed.union(reopened.select(*completed.columns), distinct=False)
        previous = old_text.select(*key, _old_refund=old_text.refund_fen).semi_join(base.view(), key)
        base = base.left_join(previous.view(), key).drop(*[f"{k}_right" for k in key])
    else:
        base = base.mutate(_old_refund=ibis.null(str))
    totals = refunds.semi_join(base.view(), key)
    totals = totals.group_by(key).aggregate(_full=totals.refund.isnull().any(), _partial=totals.refund.sum())
    out = base.left_join(totals.view(), key).drop(*[f"{k}_right" for k in key])
    amount = out.amount_fen.try_cast("int64").cast(FEN_DECIMAL)
    refund = ibis.coalesce(
        ibis.ifelse(out._full, amount, out._partial), out._old_refund.try_cast("int64").cast(FEN_DECIMAL)
    )
    status = ibis.cases(
        (refund.isnull() | (refund == 0), out.status),
        (refund >= amount, "refunded"),
        else_="partially_refunded",
    )
    values = {c: out[c] for c in ENTITIES["orders"].column_names} | {
        "refund_fen": ibis.coalesce(_fen_text(refund), out.refund_fen),
        "status": status,
    }
    return _output(out, "orders", values, out._line, out[REJECTED])


def _item_lines(p: ir.Table) -> ir.Table:
    """The `products` of each order's last `Order Completed`, one line each (line_no from 1), as
    canonical text plus `_line`."""
    done = _completed(p)
    items = done.mutate(_product=done.properties["products"].array).unnest("_product", offset="_offset")
    product = items._product
    price = _decimal(_get(product, "price"))
    qty_text = ibis.coalesce(_get(product, "quantity"), ibis.literal("1"))
    qty = _decimal(qty_text)
    computable = (price.abs() < MAX_FEN) & (qty.abs() < MAX_FEN)  # no decimal overflow
    values = {
        "brand": items.brand,
        "source": items.source,
        "order_id": items.order_id,
        "line_no": (items._offset + 1).cast("string"),
        "sku": _get(product, "sku"),
        "spu": _get(product, "product_id", "productId"),
        "category": _get(product, "category"),
        "qty": _count_or_raw(qty_text),
        "price_fen": _fen_or_raw(_get(product, "price")),
        "amount_fen": ibis.ifelse(computable, _fen_text(price * qty * 100), ibis.null(str)),
    }
    return _output(items, "order_items", values, items.inbox_id)


def _rejected_orders(lines: ir.Table) -> ir.Table:
    """brand, source, order_id, `_rejected` of orders with an item line the importer would reject:
    "item line N rejected: <field>: <reason>" for the first such line. An order is accepted or
    quarantined whole: a paid order missing some of its lines would overstate nothing visibly but
    be wrong everywhere its items are used (categories, RFM by product)."""
    field, reason = first_problem(lines, ENTITIES["order_items"], ibis.literal("UTC"))
    line_no = lines.line_no.try_cast("int64")
    why = "item line " + lines.line_no + " rejected (商品行无效): " + field + ": " + reason
    bad = lines.mutate(_why=why, _n=line_no).filter(reason.notnull())
    return bad.group_by(list(ENTITIES["orders"].key)).aggregate(_rejected=bad._why.first(order_by=bad._n))


def order_items(p: ir.Table) -> ir.Table:
    """Item lines (see `_item_lines`); every line of a rejected order is rejected with it."""
    lines = _item_lines(p)
    key = list(ENTITIES["orders"].key)
    marked = lines.left_join(_rejected_orders(lines), key).drop(*[f"{k}_right" for k in key])
    rejected = ibis.ifelse(marked._rejected.isnull(), ibis.null(str), "order rejected: " + marked._rejected)
    return _output(marked, "order_items", {c: marked[c] for c in ENTITIES["order_items"].column_names},
                   marked._line, rejected)  # fmt: skip


# -- the whole batch ------------------------------------------------------------------------------


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
