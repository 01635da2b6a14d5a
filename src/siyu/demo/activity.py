"""What people do: orders and items, shares and attributed purchases, relations, events."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siyu.demo import catalog as cat
from siyu.demo.columns import as_text, local_ts, prefixed
from siyu.demo.people import Records
from siyu.demo.state import DAY, BrandState

HOUR = 3600
CHURN_COMPENSATION = 1.8  # 1 / the share of a 24-month window a customer is alive on average


def _ts(state: BrandState, seconds: np.ndarray, source: np.ndarray) -> pa.Array:
    return local_ts(seconds, naive=source == cat.POS)  # POS exports naive local time


def _purchase_times(state: BrandState, n: int) -> np.ndarray:
    day = state.rng.choice(state.days, size=n, p=state.day_weights())
    hour = np.clip(state.rng.normal(20.5, 3.5, n), 0, 23.99)
    return state.t0 + day.astype(np.int64) * DAY + (hour * HOUR).astype(np.int64)


def orders_and_shares(
    state: BrandState, recs: Records
) -> tuple[dict[str, pa.Array], dict[str, pa.Array], dict[str, Any]]:
    rng = state.rng
    months = state.days / 30.4
    # People stop buying at some point (moved, switched brands): each has a churn time, mean 18
    # months after the start, and buys as a Poisson process until then — the drop-out that BG/NBD
    # and P(alive) model. Rates are raised so the order volume stays what it was without churn.
    churn_at = state.t0 + (rng.exponential(540, state.n) * DAY).astype(np.int64)
    counts = rng.poisson(recs.rate * months * state.order_scale * CHURN_COMPENSATION)
    counts[recs.primary < 0] = 0
    buyer = np.repeat(np.arange(state.n), counts)
    paid = _purchase_times(state, len(buyer))
    alive = paid < churn_at[buyer]
    buyer, paid = buyer[alive], paid[alive]
    use_second = (recs.secondary[buyer] >= 0) & (rng.random(len(buyer)) < 0.3)
    record = np.where(use_second, recs.secondary[buyer], recs.primary[buyer])
    share_id = np.full(len(buyer), None, dtype=object)

    shares = _shares(state, recs)
    # Attributed purchases: 35% of share clicks lead to an order within 6.5 days (last click wins).
    click = shares["click_time"]
    buys = (rng.random(len(click)) < 0.35) & (recs.primary[shares["clicker"]] >= 0)
    a_time = click[buys] + (rng.random(buys.sum()) * 6.5 * DAY).astype(np.int64)
    keep = a_time < state.t1
    a_record = recs.primary[shares["clicker"][buys]][keep]
    record = np.concatenate([record, a_record])
    paid = np.concatenate([paid, a_time[keep]])
    share_id = np.concatenate([share_id, shares["click_share_id"][buys][keep]])
    n = len(record)

    source = recs.source[record]
    amount = np.clip(np.exp(rng.normal(np.log(30_000), 0.6, n)), 9_900, 299_900).astype(np.int64) // 100 * 100
    status = rng.choice(
        np.array(["completed", "refunded", "partially_refunded", "paid", "shipped", "created", "cancelled"]),
        size=n, p=[0.85, 0.04, 0.04, 0.02, 0.02, 0.02, 0.01],
    )  # fmt: skip
    status[share_id != None] = "completed"  # noqa: E711 - numpy elementwise comparison
    recent = paid > state.t1 - 3 * DAY
    status[recent & (status == "completed")] = "paid"
    unpaid = np.isin(status, ("created", "cancelled"))
    refund = np.where(status == "refunded", amount, 0)
    partial = status == "partially_refunded"
    refund[partial] = (amount[partial] * rng.uniform(0.1, 0.6, partial.sum())).astype(np.int64)
    discount = (amount * rng.uniform(0, 0.2, n)).astype(np.int64)
    order_seq = np.argsort(paid, kind="stable").argsort()
    order_id = pc.binary_join_element_wise(
        pa.array(np.array([f"{p.upper()}" for p in cat.PREFIX])[source]),
        "O",
        pc.utf8_lpad(as_text(order_seq), 10, "0"),
        "",
    )
    coupon = rng.random(n) < 0.15
    points = rng.random(n) < 0.1
    at_pos = source == cat.POS
    store = rng.integers(1, cat.STORES + 1, n)
    nulls = pa.nulls(n, pa.string())
    orders = {
        "brand": pa.array(np.full(n, state.brand)),
        "source": pa.array(np.array(cat.SOURCES)[source]),
        "order_id": order_id,
        "source_customer_id": recs.scid.take(pa.array(record)),
        "store_code": pc.if_else(pa.array(at_pos), prefixed("S", store, 3), nulls),
        "guide_code": pc.if_else(
            pa.array(at_pos & (rng.random(n) < 0.7)),
            prefixed("G", (store - 1) + cat.STORES * rng.integers(0, 4, n) + 1, 4), nulls,
        ),
        "status": pa.array(status),
        "paid_at": pc.if_else(pa.array(unpaid), nulls, _ts(state, paid, source)),
        "amount_fen": pa.array(amount),
        "discount_fen": pa.array(discount),
        "refund_fen": pa.array(refund),
        "coupon_code": pc.if_else(pa.array(coupon), prefixed("CP", rng.integers(0, 10**8, n), 8), nulls),
        "points_used": pa.array(np.where(points, rng.integers(1, 50, n) * 100, 0)),
        "share_id": pa.array(share_id, pa.string()),
    }  # fmt: skip
    items = _items(state, order_id, source, amount)
    reviews = (status == "completed") & np.isin(source, (cat.TM, cat.JD, cat.DY, cat.MP)) & (rng.random(n) < 0.12)
    shares["review"] = {
        "record": record[reviews],
        "paid": paid[reviews],
        "order_id": order_id.filter(pa.array(reviews)),
    }
    return orders, items, shares


def _items(state: BrandState, order_id: pa.Array, source: np.ndarray, amount: np.ndarray) -> dict[str, pa.Array]:
    rng = state.rng
    lines = rng.choice([1, 2, 3], size=len(amount), p=[0.6, 0.3, 0.1])
    order = np.repeat(np.arange(len(amount)), lines)
    line_no = np.arange(len(order)) - np.repeat(np.cumsum(lines) - lines, lines) + 1
    weight = rng.random(len(order)) + 0.2
    total_w = np.repeat(np.add.reduceat(weight, np.cumsum(lines) - lines), lines)
    share = (amount[order] * weight / total_w).astype(np.int64)
    # The last line takes the rounding remainder so lines sum exactly to the order amount.
    last = line_no == lines[order]
    paid_by_others = np.repeat(np.add.reduceat(share, np.cumsum(lines) - lines), lines) - share
    share[last] = amount[order][last] - paid_by_others[last]
    qty = rng.choice([1, 1, 1, 2, 3], size=len(order))
    category = rng.integers(0, len(cat.CATEGORIES), len(order))
    sku = category * 100 + rng.integers(0, 12, len(order))
    return {
        "brand": pa.array(np.full(len(order), state.brand)),
        "source": pa.array(np.array(cat.SOURCES)[source[order]]),
        "order_id": order_id.take(pa.array(order)),
        "line_no": pa.array(line_no),
        "sku": prefixed("SKU", sku, 5),
        "spu": prefixed("SPU", sku // 4, 4),
        "category": pa.array(np.array(cat.CATEGORIES)[category]),
        "qty": pa.array(qty),
        "price_fen": pa.array(np.maximum(share // qty, 1)),
        "amount_fen": pa.array(share),
    }


def _shares(state: BrandState, recs: Records) -> dict[str, Any]:
    rng = state.rng
    can_share = np.isin(recs.source, tuple(cat.SHARE_FIELDS))
    sharer = np.nonzero(
        can_share & (rng.random(len(recs.source)) < 0.04 + 0.2 * np.minimum(recs.rate[recs.person], 1))
    )[0]
    n_shares = 1 + rng.poisson(1.5, len(sharer))
    record = np.repeat(sharer, n_shares)
    when = state.times(len(record), state.t0, state.t1 - DAY)
    share_id = prefixed("SH", np.arange(len(record)), 9)
    clicks = rng.poisson(1.2, len(record))
    c_share = np.repeat(np.arange(len(record)), clicks)
    clicker = rng.integers(0, state.n, len(c_share))
    # A few people click (and buy through) their own share: attribution must exclude them.
    self_click = rng.random(len(c_share)) < 0.03
    clicker[self_click] = recs.person[record[c_share[self_click]]]
    click_time = np.minimum(when[c_share] + rng.exponential(6 * HOUR, len(c_share)).astype(np.int64), state.t1 - 1)
    return {
        "record": record, "time": when, "share_id": share_id,
        "click_share": c_share, "clicker": clicker, "click_time": click_time,
        "click_share_id": np.asarray(share_id.take(pa.array(c_share)).to_numpy(zero_copy_only=False), dtype=object),
    }  # fmt: skip


def relations(state: BrandState, recs: Records) -> dict[str, pa.Array]:
    rng = state.rng
    rows, fields, types = [], [], []
    for source, field_code, type_code, p in cat.RELATIONS:
        chosen = np.nonzero((recs.source == source) & (rng.random(len(recs.source)) < p))[0]
        rows.append(chosen)
        fields.append(np.full(len(chosen), field_code))
        types.append(np.full(len(chosen), type_code))
    record = np.concatenate(rows)
    n = len(record)
    field = np.concatenate(fields)
    relation_type = np.concatenate(types)
    started = state.times(n, state.t0 - 180 * DAY, state.t1 - DAY)
    ended_at = started + rng.exponential(150 * DAY, n).astype(np.int64)
    ended = (rng.random(n) < 0.35) & (ended_at < state.t1)
    nulls = pa.nulls(n, pa.string())
    staff = np.isin(relation_type, cat.STAFF_RELATIONS)
    return {
        "brand": pa.array(np.full(n, state.brand)),
        "source": pa.array(np.array(cat.SOURCES)[recs.source[record]]),
        "field": pa.array(field),
        "relation_type": pa.array(relation_type),
        "source_customer_id": recs.scid.take(pa.array(record)),
        "started_at": local_ts(started),
        "ended_at": pc.if_else(pa.array(ended), local_ts(ended_at), nulls),
        "staff_code": pc.if_else(pa.array(staff), prefixed("G", rng.integers(1, cat.GUIDES + 1, n), 4), nulls),
        "ended_by": pc.if_else(pa.array(ended), pa.array(np.where(rng.random(n) < 0.7, "customer", "staff")), nulls),
    }


def events(
    state: BrandState, recs: Records, orders: dict[str, pa.Array], shares: dict[str, Any]
) -> dict[str, pa.Array]:
    rng = state.rng
    months = state.days / 30.4
    parts: list[dict[str, object]] = []

    # Visits, item views and add-to-cart in each record's fields.
    has_field = np.isin(recs.source, tuple(cat.VISIT_FIELDS))
    rate = (0.12 + 0.8 * np.minimum(recs.rate[recs.person], 2.0)) * months * state.visit_scale
    counts = np.where(has_field, rng.poisson(rate), 0)
    record = np.repeat(np.arange(len(recs.source)), counts)
    field = np.empty(len(record), dtype=object)
    for source, options in cat.VISIT_FIELDS.items():
        mask = recs.source[record] == source
        names = np.array([o[0] for o in options])
        field[mask] = names[rng.choice(len(options), size=mask.sum(), p=[o[1] for o in options])]
    kind = rng.choice(np.array(["visit", "view_item", "add_cart"]), size=len(record), p=[0.8, 0.15, 0.05])
    parts.append({"record": record, "field": field, "type": kind, "time": _purchase_times(state, len(record)),
                  "properties": np.full(len(record), None, dtype=object)})  # fmt: skip

    # Shares and the clicks on them.
    share_field = np.array([cat.SHARE_FIELDS.get(s, "") for s in range(len(cat.SOURCES))], dtype=object)
    content = np.array(cat.CONTENT_TYPES)[rng.integers(0, len(cat.CONTENT_TYPES), len(shares["record"]))]
    share_props = pc.binary_join_element_wise(
        '{"share_id": "', shares["share_id"], '", "content_type": "', pa.array(content), '"}', ""
    )
    parts.append({"record": shares["record"], "field": share_field[recs.source[shares["record"]]],
                  "type": np.full(len(shares["record"]), "share"), "time": shares["time"],
                  "properties": np.asarray(share_props.to_numpy(zero_copy_only=False), dtype=object)})  # fmt: skip
    clicker_record = recs.primary[shares["clicker"]]
    ok = clicker_record >= 0
    click_props = pc.binary_join_element_wise(
        '{"share_id": "', pa.array(shares["click_share_id"][ok], pa.string()), '"}', ""
    )
    parts.append({"record": clicker_record[ok],
                  "field": share_field[recs.source[shares["record"][shares["click_share"][ok]]]],
                  "type": np.full(ok.sum(), "share_click"), "time": shares["click_time"][ok],
                  "properties": np.asarray(click_props.to_numpy(zero_copy_only=False), dtype=object)})  # fmt: skip

    # Reviews of completed orders: mostly positive.
    review = shares["review"]
    rating = rng.choice([1, 2, 3, 4, 5], size=len(review["record"]), p=[0.03, 0.03, 0.09, 0.25, 0.6])
    review_props = pc.binary_join_element_wise(
        '{"rating": ', as_text(rating), ', "order_id": "', review["order_id"], '"}', ""
    )
    review_field = np.array([cat.SHARE_FIELDS.get(s, "") for s in range(len(cat.SOURCES))], dtype=object)
    parts.append({"record": review["record"], "field": review_field[recs.source[review["record"]]],
                  "type": np.full(len(rating), "review"),
                  "time": np.minimum(review["paid"] + rng.integers(3, 11, len(rating)) * DAY, state.t1 - 1),
                  "properties": np.asarray(review_props.to_numpy(zero_copy_only=False), dtype=object)})  # fmt: skip

    record = np.concatenate([p["record"] for p in parts])
    when = np.concatenate([p["time"] for p in parts])
    order = np.argsort(when, kind="stable")
    record, when = record[order], when[order]
    field = np.concatenate([p["field"] for p in parts])[order]
    field[field == ""] = None
    n = len(record)
    return {
        "brand": pa.array(np.full(n, state.brand)),
        "source": pa.array(np.array(cat.SOURCES)[recs.source[record]]),
        "event_id": prefixed("E", np.arange(n), 10),
        "field": pa.array(field, pa.string()),
        "type": pa.array(np.concatenate([p["type"] for p in parts])[order]),
        "source_customer_id": recs.scid.take(pa.array(record)),
        "occurred_at": local_ts(when),
        "properties": pa.array(np.concatenate([p["properties"] for p in parts])[order], pa.string()),
    }
