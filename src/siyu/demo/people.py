"""People and their source records: identifiers, customers.csv, identities.csv, memberships.csv."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siyu.demo import catalog as cat
from siyu.demo.columns import as_text, local_ts, prefixed
from siyu.demo.state import DAY, BrandState


@dataclass
class Records:
    person: np.ndarray  # person index of each source record
    source: np.ndarray  # source code (catalog index)
    scid: pa.Array  # source_customer_id
    created: np.ndarray  # epoch seconds (Shanghai wall clock)
    member: np.ndarray  # per person: has a crm membership
    primary: np.ndarray  # per person: index of the main purchase record (-1: none)
    secondary: np.ndarray  # per person: second purchase record (-1: none)
    rate: np.ndarray  # per person: purchases per month
    wecom_unionid_in_identities: np.ndarray  # per record


def _scramble(i: np.ndarray, modulus: int, salt: int) -> np.ndarray:
    """A bijection on [0, modulus): unique, random-looking numbers (7919 is coprime to 10^k·4)."""
    return (i.astype(np.int64) * 7919 + salt) % modulus


def records(state: BrandState) -> Records:
    rng, n = state.rng, state.n
    k = rng.choice([1, 2, 3, 4], size=n, p=[0.45, 0.33, 0.15, 0.07])
    keys = np.log(cat.SOURCE_WEIGHTS)[None, :] + rng.gumbel(size=(n, len(cat.SOURCES)))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    chosen = rank < k[:, None]
    person, source = np.nonzero(chosen)
    seq = np.zeros(len(person), dtype=np.int64)
    for s in range(len(cat.SOURCES)):
        mask = source == s
        seq[mask] = np.arange(mask.sum())
    prefixes = pa.array(np.array([f"{p}_" for p in cat.PREFIX])[source])
    scid = pc.binary_join_element_wise(prefixes, pc.utf8_lpad(as_text(seq), 7, "0"), "")

    rate = rng.gamma(shape=0.5, scale=0.75, size=n)  # purchases / month, heterogeneous
    capable = np.isin(source, cat.PURCHASE_SOURCES)
    # Main and second purchase record per person, preferring a random order of their sources.
    order = np.lexsort((rng.random(len(person)), ~capable, person))
    first_of_person = np.r_[True, person[order][1:] != person[order][:-1]]
    group_start = np.maximum.accumulate(np.where(first_of_person, np.arange(len(order)), 0))
    pos_in_person = np.arange(len(order)) - group_start
    primary = np.full(n, -1)
    secondary = np.full(n, -1)
    cap_sorted = capable[order]
    sel0 = (pos_in_person == 0) & cap_sorted
    sel1 = (pos_in_person == 1) & cap_sorted
    primary[person[order][sel0]] = order[sel0]
    secondary[person[order][sel1]] = order[sel1]
    member = np.zeros(n, dtype=bool)
    member[person[source == cat.CRM]] = True
    created = state.times(len(person), state.t0 - 365 * DAY, state.t1)
    return Records(
        person=person, source=source, scid=scid, created=created, member=member,
        primary=primary, secondary=secondary, rate=rate,
        wecom_unionid_in_identities=(source == cat.WC) & (rng.random(len(person)) < 0.25),
    )  # fmt: skip


def _phone_digits(person: np.ndarray) -> pa.Array:
    # 151xxxxxxxx–154xxxxxxxx: unique per person and clear of every blocklisted placeholder.
    return as_text(15_100_000_000 + _scramble(person, 400_000_000, 12_345))


def _formatted(rng: np.random.Generator, digits: pa.Array) -> pa.Array:
    """The same phone as platforms export it: plain, +86 with spaces, 0086-, 86 prefix, dashes."""
    a, b, c = (pc.utf8_slice_codeunits(digits, s, e) for s, e in ((0, 3), (3, 7), (7, 11)))
    variants = [
        digits,
        pc.binary_join_element_wise("+86 ", a, " ", b, " ", c, ""),
        pc.binary_join_element_wise("0086-", a, "-", b, "-", c, ""),
        pc.binary_join_element_wise("86 ", digits, ""),
        pc.binary_join_element_wise(a, "-", b, "-", c, ""),
    ]
    choice = pa.array(rng.choice(len(variants), size=len(digits), p=[0.5, 0.15, 0.1, 0.1, 0.15]).astype(np.int8))
    return pc.choose(choice, *variants)


def customers_columns(state: BrandState, recs: Records) -> dict[str, pa.Array]:
    rng, m = state.rng, len(recs.person)
    src, person = recs.source, recs.person
    has_phone = rng.random(state.n) < 0.9
    phone_p = np.array([0.5, 0.6, 0.5, 0.6, 0.3, 0.0, 0.95, 0.9])[src]
    with_phone = has_phone[person] & (rng.random(m) < phone_p)
    digits = _phone_digits(person)
    phone = pc.if_else(pa.array(with_phone), _formatted(rng, digits), pa.nulls(m, pa.string()))
    # Placeholders typed in by staff at the till or on the platform, on unrelated people.
    placeholder = np.isin(src, (cat.TM, cat.JD, cat.POS, cat.DY)) & (rng.random(m) < 0.015)
    fake = pa.array(np.array(cat.PLACEHOLDER_PHONES)[rng.integers(0, len(cat.PLACEHOLDER_PHONES), m)])
    phone = pc.if_else(pa.array(placeholder), fake, phone)
    masked_only = (src == cat.TM) & ~with_phone & ~placeholder & has_phone[person] & (rng.random(m) < 0.6)
    masked = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(digits, 0, 3), "****", pc.utf8_slice_codeunits(digits, 7, 11), ""
    )
    unionid_all = prefixed("oU", _scramble(person, 10**10, 777), 10)
    unionid_p = np.where(src == cat.MP, 0.9, np.where(src == cat.OA, 0.85, np.where(src == cat.WC, 0.65, 0.0)))
    with_unionid = (rng.random(m) < unionid_p) & ~recs.wecom_unionid_in_identities
    has_email = rng.random(state.n) < 0.25
    email = pc.binary_join_element_wise("p", as_text(_scramble(person, 10**9, 99)), "@mail.example.cn", "")
    with_email = has_email[person] & np.isin(src, (cat.CRM, cat.JD)) & (rng.random(m) < 0.8)
    junk_email = ~with_email & np.isin(src, (cat.CRM, cat.POS, cat.MP)) & (rng.random(m) < 0.03)
    email = pc.if_else(pa.array(with_email), email, pa.nulls(m, pa.string()))
    email = pc.if_else(pa.array(junk_email), pa.scalar(cat.JUNK_EMAIL), email)
    member_no = _member_no(person)
    with_member_no = recs.member[person] & ((src == cat.CRM) | ((src == cat.POS) & (rng.random(m) < 0.8)))
    store = rng.integers(1, cat.STORES + 1, m)
    guide = (store - 1) + cat.STORES * rng.integers(0, cat.GUIDES // cat.STORES, m) + 1
    at_store = src == cat.POS
    place = rng.integers(0, len(cat.PLACES), state.n)[person]
    name = np.char.add(
        cat.SURNAMES[rng.integers(0, len(cat.SURNAMES), m)], cat.GIVEN[rng.integers(0, len(cat.GIVEN), m)]
    )
    second = rng.random(m) < 0.6
    name = np.where(second, np.char.add(name, cat.GIVEN[rng.integers(0, len(cat.GIVEN), m)]), name)
    birthday = (np.datetime64("1965-01-01") + rng.integers(0, 365 * 40, state.n)[person]).astype(str)
    gender = np.array(["female", "male", "unknown"])[rng.choice(3, size=state.n, p=[0.72, 0.23, 0.05])[person]]

    def only(mask: np.ndarray, values: pa.Array | np.ndarray) -> pa.Array:
        return pc.if_else(pa.array(mask), pa.array(values) if not isinstance(values, pa.Array) else values,
                          pa.nulls(m, pa.string()))  # fmt: skip

    return {
        "brand": pa.array(np.full(m, state.brand)),
        "source": pa.array(np.array(cat.SOURCES)[src]),
        "source_customer_id": recs.scid,
        "phone": phone,
        "phone_masked": only(masked_only, masked),
        "unionid": only(with_unionid, unionid_all),
        "openid": only(np.isin(src, (cat.MP, cat.OA)), prefixed("o", _scramble(np.arange(m), 10**10, 31), 10)),
        "external_userid": only(src == cat.WC, prefixed("wm", _scramble(np.arange(m), 10**10, 53), 10)),
        "tmall_ouid": only(src == cat.TM, prefixed("TB", _scramble(person, 10**9, 5), 9)),
        "jd_pin": only(src == cat.JD, prefixed("jd_", _scramble(person, 10**9, 7), 9)),
        "douyin_openid": only(src == cat.DY, prefixed("dy", _scramble(person, 10**9, 11), 9)),
        "email": email,
        "member_no": only(with_member_no, member_no),
        "name": only(np.isin(src, (cat.POS, cat.CRM, cat.JD)), name),
        "gender": only(np.isin(src, (cat.POS, cat.CRM, cat.TM)), gender),
        "birthday": only(src == cat.CRM, birthday),
        "province": pa.array(np.array([p[0] for p in cat.PLACES])[place]),
        "city": pa.array(np.array([p[1] for p in cat.PLACES])[place]),
        "store_code": only(at_store, prefixed("S", store, 3)),
        "guide_code": only(at_store, prefixed("G", guide, 4)),
        "created_at": local_ts(recs.created, naive=at_store),
    }


def _member_no(person: np.ndarray) -> pa.Array:
    return prefixed("M", _scramble(person, 10**9, 4242), 9)


def identities_columns(state: BrandState, recs: Records) -> dict[str, pa.Array]:
    """WeCom contacts whose unionid comes from a separate lookup, as extra identity rows."""
    rows = recs.wecom_unionid_in_identities
    person = recs.person[rows]
    return {
        "brand": pa.array(np.full(len(person), state.brand)),
        "source": pa.array(np.full(len(person), "wecom")),
        "source_customer_id": recs.scid.filter(pa.array(rows)),
        "id_type": pa.array(np.full(len(person), "unionid")),
        "id_value": prefixed("oU", _scramble(person, 10**10, 777), 10),
    }


def truth_columns(recs: Records) -> dict[str, pa.Array]:
    return {
        "source": pa.array(np.array(cat.SOURCES)[recs.source]),
        "source_customer_id": recs.scid,
        "person_id": prefixed("P", recs.person, 8),
    }


def memberships_columns(state: BrandState, recs: Records) -> dict[str, pa.Array]:
    rng = state.rng
    rows = recs.source == cat.CRM
    person = recs.person[rows]
    n = len(person)
    # Members join over time, a third before the data window.
    joined = state.times(n, state.t0 - 540 * DAY, state.t1 - DAY)
    left = rng.random(n) < 0.03
    left_at = joined + (rng.random(n) * np.maximum(state.t1 - joined, DAY)).astype(np.int64)
    tier = np.array(cat.TIERS)[rng.choice(len(cat.TIERS), size=n, p=cat.TIER_WEIGHTS)]
    offline = rng.random(n) < 0.3
    store = rng.integers(1, cat.STORES + 1, n)
    return {
        "brand": pa.array(np.full(n, state.brand)),
        "source": pa.array(np.full(n, "crm")),
        "member_no": _member_no(person),
        "source_customer_id": recs.scid.filter(pa.array(rows)),
        "program": pa.array(np.full(n, f"{state.brand}_club")),
        "joined_at": local_ts(joined),
        "left_at": pc.if_else(pa.array(left), local_ts(left_at), pa.nulls(n, pa.string())),
        "tier": pa.array(tier),
        "points_balance": pa.array(rng.integers(0, 20_000, n)),
        "enrol_store": pc.if_else(pa.array(offline), prefixed("S", store, 3), pa.nulls(n, pa.string())),
        "enrol_guide": pc.if_else(
            pa.array(offline),
            prefixed("G", (store - 1) + cat.STORES * rng.integers(0, 4, n) + 1, 4),
            pa.nulls(n, pa.string()),
        ),
    }
