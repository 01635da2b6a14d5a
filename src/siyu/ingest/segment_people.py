"""Segment people → `customers` and `identities`: identify traits (also `context.traits` of any
call) become profile columns, `alias` links two ids, a signed-in user's anonymousId is a device."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.ingest.schema import ENTITIES
from siyu.ingest.segment_text import Existing, as_text, get, iso, output

PERSON_KINDS = ("identify", "track", "page", "screen", "group")
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
_CJK = "[\u3400-\u9fff]"


def _profile_values(t: ir.JSONValue) -> dict[str, ir.Value]:
    """Customers columns from one traits object."""
    values: dict[str, ir.Value] = {c: get(t, *names) for c, names in TRAITS.items()}
    first, last = get(t, "firstName", "first_name"), get(t, "lastName", "last_name")
    chinese = ibis.coalesce(first, "").re_search(_CJK) | ibis.coalesce(last, "").re_search(_CJK)
    joined = ibis.ifelse(
        chinese,
        ibis.literal("").join([last, first]),  # 张 + 三 → 张三
        ibis.literal(" ").join([first, last]),
    ).nullif("")
    gender = get(t, "gender")
    birthday = get(t, "birthday").replace("/", "-")
    created = get(t, "createdAt", "created_at").try_cast("timestamp('UTC')")
    address = t["address"]
    return values | {
        "name": ibis.coalesce(get(t, "name"), joined),
        "gender": ibis.ifelse(gender.isnull(), ibis.null(str), gender.lower().substitute(GENDERS, else_="unknown")),
        "birthday": ibis.ifelse(birthday.re_search(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"), birthday.substr(0, 10), None),
        "province": ibis.coalesce(get(address, "state", "province"), get(t, "province", "state")),
        "city": ibis.coalesce(get(address, "city"), get(t, "city")),
        "created_at": iso(created),
    }


def profile(p: ir.Table) -> dict[str, ir.Value]:
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
        return output(folded, "customers", {c: folded[c] for c in folded.columns}, folded._line)
    old = old.semi_join(folded.view(), key)
    old = old.select(*key, **{f"{c}__old": v for c, v in as_text(old, "customers").items() if c not in key})
    merged = folded.left_join(old, key)
    merged_values = {c: merged[c] for c in key} | {c: ibis.coalesce(merged[c], merged[f"{c}__old"]) for c in values}
    return output(merged, "customers", merged_values, merged._line)


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
    return output(distinct, "identities", {c: distinct[c] for c in key}, distinct._line)
