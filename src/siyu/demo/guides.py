"""The demo brand's stores, staff and WeCom chat messages (门店 · 员工 · 会话存档) as canonical files.

50 stores in 10 cities (a few franchises, two closed), 200 guides (G0001…, guide g works in store
(g − 1) mod 50 + 1, the numbering `activity` uses for `guide_code` and relations' `staff_code`) and
one manager per store; some guides have left. Chat messages are conversations of WeCom contacts
with guides in the last 90 days: the customer writes, the guide answers after minutes (now and
then hours), a few guide messages contain a word the demo rules flag (sensitive words).

The live half (channel codes and a month of WeCom callbacks through the real receiver) is
`siyu.demo.wecom_month`; it runs after the import.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siyu.demo import catalog as cat
from siyu.demo.columns import local_ts, prefixed
from siyu.demo.people import Records
from siyu.demo.state import DAY, BrandState

MINUTE = 60
CITY_LAT_LNG = (
    (31.23, 121.47), (39.90, 116.40), (23.13, 113.26), (22.54, 114.06), (30.27, 120.16),
    (32.06, 118.80), (31.30, 120.58), (30.57, 104.07), (30.59, 114.31), (34.34, 108.94),
)  # fmt: skip
REGIONS = ("华东", "华北", "华南", "华南", "华东", "华东", "华东", "西南", "华中", "西北")
INBOUND = (
    "这款面霜适合敏感肌吗？",
    "双11有什么活动？",
    "我的订单什么时候发货？",
    "有小样可以试用吗？",
    "会员积分怎么用？",
)
OUTBOUND = ("您好，适合的，成分很温和～", "活动11月1日开始，提前给您留券", "已帮您催单，今天发出", "可以的，到店领取")
FLAGGED = ("加我私人微信，给您返现", "直接转账给我更便宜")  # contain the demo rules' sensitive words
MANAGER_PREFIX = "SM"  # store managers SM001…


def _names(state: BrandState, n: int) -> pa.Array:
    rng = state.rng
    s, g = cat.SURNAMES[rng.integers(0, len(cat.SURNAMES), n)], cat.GIVEN[rng.integers(0, len(cat.GIVEN), n)]
    return pa.array(np.char.add(s.astype(str), g.astype(str)))


def stores(state: BrandState) -> dict[str, pa.Array]:
    rng = state.rng
    n = cat.STORES
    city = np.arange(n) % len(cat.PLACES)
    lat_lng = np.array(CITY_LAT_LNG)[city] + rng.normal(0, 0.05, (n, 2))
    opened = state.t0 - rng.integers(30, 1500, n) * DAY
    closed = np.zeros(n, dtype=bool)
    closed[[n - 1, n - 2]] = True  # two stores closed during the data
    nulls = pa.nulls(n, pa.string())
    return {
        "brand": pa.array(np.full(n, state.brand)),
        "store_code": prefixed("S", np.arange(1, n + 1), 3),
        "name": pa.array([f"{cat.PLACES[c][1]}{i + 1}号店" for i, c in enumerate(city)]),
        "type": pa.array(np.where(rng.random(n) < 0.75, "direct", "franchise")),
        "region": pa.array(np.array(REGIONS)[city]),
        "distributor": nulls,
        "province": pa.array([cat.PLACES[c][0] for c in city]),
        "city": pa.array([cat.PLACES[c][1] for c in city]),
        "lat": pa.array(np.round(lat_lng[:, 0], 5)),
        "lng": pa.array(np.round(lat_lng[:, 1], 5)),
        "opened_at": local_ts(opened),
        "closed_at": pc.if_else(pa.array(closed), local_ts(state.t1 - rng.integers(20, 200, n) * DAY), nulls),
    }


def staff(state: BrandState) -> dict[str, pa.Array]:
    rng = state.rng
    guides, managers = cat.GUIDES, cat.STORES
    n = guides + managers
    store = np.concatenate([(np.arange(guides) % cat.STORES) + 1, np.arange(1, managers + 1)])
    joined = state.t0 - rng.integers(0, 900, n) * DAY
    left = np.zeros(n, dtype=bool)
    left[:guides] = rng.random(guides) < 0.06
    left_at = np.maximum(state.t1 - rng.integers(1, 150, n) * DAY, joined + DAY)
    nulls = pa.nulls(n, pa.string())
    ids = pa.concat_arrays(
        [prefixed("G", np.arange(1, guides + 1), 4), prefixed(MANAGER_PREFIX, np.arange(1, managers + 1), 3)]
    )
    return {
        "brand": pa.array(np.full(n, state.brand)),
        "staff_id": ids,
        "name": _names(state, n),
        "role": pa.array(np.where(np.arange(n) < guides, "guide", "manager")),
        "store_code": prefixed("S", store, 3),
        "status": pa.array(np.where(left, "left", "active")),
        "joined_at": local_ts(joined),
        "left_at": pc.if_else(pa.array(left), local_ts(left_at), nulls),
    }


def messages(state: BrandState, recs: Records, external_userid: pa.Array) -> dict[str, pa.Array]:
    """Conversations of WeCom contacts (the records' external_userid) with guides, last 90 days."""
    rng = state.rng
    wecom = np.nonzero((recs.source == cat.WC) & (rng.random(len(recs.source)) < 0.3))[0]
    turns = rng.integers(1, 5, len(wecom))  # question → answer pairs per conversation
    lengths = 2 * turns
    conv = np.repeat(np.arange(len(wecom)), lengths)
    pos = np.arange(len(conv)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    inbound = pos % 2 == 0
    # the guide answers in minutes (sometimes hours); the customer writes again hours later
    gap = np.where(
        inbound,
        rng.exponential(8 * 3600, len(conv)),
        np.where(
            rng.random(len(conv)) < 0.85, rng.exponential(6 * MINUTE, len(conv)), rng.exponential(4 * 3600, len(conv))
        ),
    ).astype(np.int64)
    gap[pos == 0] = 0
    starts = state.t1 - 90 * DAY + (rng.random(len(wecom)) * 85 * DAY).astype(np.int64)
    offsets = np.cumsum(gap) - np.repeat(np.cumsum(gap)[np.cumsum(lengths) - lengths], lengths)
    sent = np.minimum(starts[conv] + offsets, state.t1 - 1)
    guide = rng.integers(1, cat.GUIDES + 1, len(wecom))[conv]
    text = np.where(
        inbound,
        np.array(INBOUND)[rng.integers(0, len(INBOUND), len(conv))],
        np.array(OUTBOUND)[rng.integers(0, len(OUTBOUND), len(conv))],
    ).astype(object)
    flagged = ~inbound & (rng.random(len(conv)) < 0.01)
    text[flagged] = np.array(FLAGGED, dtype=object)[rng.integers(0, len(FLAGGED), int(flagged.sum()))]
    n = len(conv)
    return {
        "brand": pa.array(np.full(n, state.brand)),
        "msgid": prefixed("MSG", np.arange(n), 9),
        "staff_id": prefixed("G", guide, 4),
        "external_userid": external_userid.take(pa.array(wecom[conv])),
        "direction": pa.array(np.where(inbound, "in", "out")),
        "sent_at": local_ts(sent),
        "type": pa.array(np.full(n, "text")),
        "text": pa.array(text, pa.string()),
    }


def files(state: BrandState, recs: Records, external_userid: pa.Array) -> dict[str, dict[str, pa.Array]]:
    """file name → columns of the guides entities (drawn after every other file, so those stay as they were)."""
    return {
        "stores.csv": stores(state),
        "staff.csv": staff(state),
        "messages.csv": messages(state, recs, external_userid),
    }
