"""Canonical import schema v1 (DESIGN §5): entities, keys, column kinds and allowed values.

This module is the single source of truth for what a valid canonical row is. The readers, the
validator, the demo generator and `docs/import-schema.md` all follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """How a column's text is interpreted and checked."""

    TEXT = "text"  # free text, kept as given (trimmed)
    TIMESTAMP = "timestamp"  # ISO-8601, with offset or in the brand's time zone
    DATE = "date"  # YYYY-MM-DD
    FEN = "fen"  # money: non-negative integer number of fen
    INT = "int"  # non-negative integer
    JSON = "json"  # a JSON object
    DEGREES = "degrees"  # a decimal latitude / longitude, e.g. 31.2304


# Identifier columns a `customers` row may carry, by type, with their strength. Strong identifiers
# link source customers into one customer (One-ID); weak ones are kept but never link on their own.
# Masked / mixed platform values (Tmall mix_mobile, 138****1234) are their own weak types, never phones.
IDENTIFIER_TYPES: dict[str, str] = {
    "phone": "strong",
    "unionid": "strong",
    "member_no": "strong",
    "email": "strong",
    "tmall_ouid": "strong",
    "jd_pin": "strong",
    "douyin_openid": "strong",
    "alias": "strong",  # Segment alias (previousId → userId): a link the source itself asserts
    "openid": "weak",  # per app: the same person has a different openid in each app
    "external_userid": "weak",  # per WeCom corp
    "device_id": "weak",
    "anonymous_id": "weak",
    "mix_nick": "weak",
    "mix_mobile": "weak",
    "phone_masked": "weak",
}

ORDER_STATUSES = (
    "created",  # placed, not paid
    "paid",
    "shipped",
    "completed",
    "partially_refunded",
    "refunded",
    "cancelled",
)
# Statuses of an order that was paid (a purchase unless fully refunded).
PAID_STATUSES = ("paid", "shipped", "completed", "partially_refunded", "refunded")

# Built-in relation types (关系类型), pre-declared for every brand: code → (name_zh, name_en). They
# all count as a connection for the basic layer. A brand declares its own (or renames a built-in,
# or marks it as not a connection) in `relation_types.csv`; see `siyu.ingest.registry`.
BUILTIN_RELATION_TYPES: dict[str, tuple[str, str]] = {
    "follow_store": ("关注店铺", "Store follow"),
    "follow_live": ("关注直播间", "Live room follow"),
    "group_member": ("群成员", "Group chat member"),  # WeCom / Tmall group chat
    "exclusive_cs": ("专属客服", "Exclusive service"),
    "wecom_friend": ("企业微信好友", "WeCom friend"),
    "official_account_follow": ("公众号关注", "Official account follow"),
    "subscription": ("订阅", "Subscription"),  # mini-program subscription messages, newsletter
    "fan": ("粉丝", "Fan"),  # Douyin follow
}
RELATION_TYPES = tuple(BUILTIN_RELATION_TYPES)
RELATION_TYPE_COLUMNS = ("brand", "code", "name_zh", "name_en", "field", "connection")

STORE_TYPES = ("direct", "franchise")  # 直营 / 加盟
STAFF_ROLES = ("guide", "manager")  # 导购 / 店长
STAFF_STATUSES = ("active", "left")  # 在职 / 离职
MESSAGE_DIRECTIONS = ("in", "out")  # from the customer / from the staff member

# Event types with a meaning in siyu; other snake_case types are accepted and kept as they are.
EVENT_TYPES = (
    "visit",
    "view_item",
    "add_cart",
    "share",
    "share_click",
    "review",
    "sign_in",
    "coupon_claim",
    "live_watch",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind = Kind.TEXT
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entity:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    depends_on: tuple[str, ...] = ()
    # Columns holding a field (场域) code: unknown values are registered with a warning.
    field_columns: tuple[str, ...] = ()
    extra_checks: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _req(name: str, kind: Kind = Kind.TEXT, choices: tuple[str, ...] = ()) -> Column:
    return Column(name, kind, True, choices)


def _opt(name: str, kind: Kind = Kind.TEXT, choices: tuple[str, ...] = ()) -> Column:
    return Column(name, kind, False, choices)


_BASE = (_req("brand"), _req("source"))

ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity(
            "fields",
            key=("brand", "code"),
            columns=(
                _req("brand"),
                _req("code"),
                _opt("name_zh"),
                _opt("name_en"),
                _opt("platform"),
            ),
        ),
        Entity(
            "relation_types",
            key=("brand", "code"),
            columns=(
                _req("brand"),
                _req("code"),
                _opt("name_zh"),
                _opt("name_en"),
                _opt("field"),  # the field (场域) the type belongs to, for people reading it
                _opt("connection", choices=("true", "false")),  # counts for the basic layer; empty = true
            ),
            field_columns=("field",),
            extra_checks=("code_format",),
        ),
        Entity(
            "customers",
            key=("brand", "source", "source_customer_id"),
            columns=(
                *_BASE,
                _req("source_customer_id"),
                *(_opt(t) for t in IDENTIFIER_TYPES),
                _opt("name"),
                _opt("gender", choices=("male", "female", "unknown", "m", "f", "男", "女", "未知")),
                _opt("birthday", Kind.DATE),
                _opt("province"),
                _opt("city"),
                _opt("store_code"),
                _opt("guide_code"),
                _opt("created_at", Kind.TIMESTAMP),
            ),
        ),
        Entity(
            "identities",
            key=("brand", "source", "source_customer_id", "id_type", "id_value"),
            columns=(
                *_BASE,
                _req("source_customer_id"),
                _req("id_type", choices=tuple(IDENTIFIER_TYPES)),
                _req("id_value"),
            ),
            depends_on=("customers",),
        ),
        Entity(
            "memberships",
            key=("brand", "source", "member_no"),
            columns=(
                *_BASE,
                _req("member_no"),
                _req("source_customer_id"),
                _opt("program"),
                _req("joined_at", Kind.TIMESTAMP),
                _opt("left_at", Kind.TIMESTAMP),
                _opt("tier"),
                _opt("points_balance", Kind.INT),
                _opt("enrol_store"),
                _opt("enrol_guide"),
            ),
            depends_on=("customers",),
        ),
        Entity(
            "orders",
            key=("brand", "source", "order_id"),
            columns=(
                *_BASE,
                _req("order_id"),
                _req("source_customer_id"),
                _opt("store_code"),
                _opt("guide_code"),
                _req("status", choices=ORDER_STATUSES),
                _opt("paid_at", Kind.TIMESTAMP),
                _req("amount_fen", Kind.FEN),
                _opt("discount_fen", Kind.FEN),
                _opt("refund_fen", Kind.FEN),
                _opt("coupon_code"),
                _opt("points_used", Kind.INT),
                _opt("share_id"),
            ),
            depends_on=("customers",),
            extra_checks=("refund_not_above_amount", "paid_needs_paid_at"),
        ),
        Entity(
            "order_items",
            key=("brand", "source", "order_id", "line_no"),
            columns=(
                *_BASE,
                _req("order_id"),
                _req("line_no", Kind.INT),
                _opt("sku"),
                _opt("spu"),
                _opt("category"),
                _req("qty", Kind.INT),
                _opt("price_fen", Kind.FEN),
                _req("amount_fen", Kind.FEN),
            ),
            depends_on=("orders",),
            extra_checks=("qty_positive",),
        ),
        Entity(
            "relations",
            key=("brand", "source", "field", "relation_type", "source_customer_id", "started_at"),
            columns=(
                *_BASE,
                _req("field"),
                _req("relation_type"),  # built-in or declared in relation_types.csv
                _req("source_customer_id"),
                _req("started_at", Kind.TIMESTAMP),
                _opt("ended_at", Kind.TIMESTAMP),
                _opt("staff_code"),
                _opt("ended_by"),
            ),
            depends_on=("customers", "fields", "relation_types"),
            field_columns=("field",),
            extra_checks=("relation_type_declared", "ended_not_before_started"),
        ),
        Entity(
            "events",
            key=("brand", "source", "event_id"),
            columns=(
                *_BASE,
                _req("event_id"),
                _opt("field"),
                _req("type"),
                _req("source_customer_id"),
                _req("occurred_at", Kind.TIMESTAMP),
                _opt("properties", Kind.JSON),
            ),
            depends_on=("customers", "fields"),
            field_columns=("field",),
            extra_checks=("event_type_format",),
        ),
        # Guides domain (导购 · 门店): reference data with a plain key, no source (docs/guides.md).
        Entity(
            "stores",
            key=("brand", "store_code"),
            columns=(
                _req("brand"),
                _req("store_code"),
                _req("name"),
                _opt("type", choices=STORE_TYPES),
                _opt("region"),
                _opt("distributor"),
                _opt("province"),
                _opt("city"),
                _opt("lat", Kind.DEGREES),
                _opt("lng", Kind.DEGREES),
                _opt("opened_at", Kind.TIMESTAMP),
                _opt("closed_at", Kind.TIMESTAMP),
            ),
            extra_checks=("closed_not_before_opened", "lat_lng_range"),
        ),
        Entity(
            "staff",
            key=("brand", "staff_id"),
            columns=(
                _req("brand"),
                _req("staff_id"),  # the WeCom userid
                _opt("name"),
                _req("role", choices=STAFF_ROLES),
                _opt("store_code"),
                _opt("status", choices=STAFF_STATUSES),
                _opt("joined_at", Kind.TIMESTAMP),
                _opt("left_at", Kind.TIMESTAMP),
            ),
            depends_on=("stores",),
            extra_checks=("left_not_before_joined",),
        ),
        # Chat messages from WeCom session-archive (会话存档) exports.
        Entity(
            "messages",
            key=("brand", "msgid"),
            columns=(
                _req("brand"),
                _req("msgid"),
                _req("staff_id"),
                _req("external_userid"),
                _req("direction", choices=MESSAGE_DIRECTIONS),
                _req("sent_at", Kind.TIMESTAMP),
                _opt("type"),
                _opt("text"),
            ),
            depends_on=("staff",),
        ),
    )
}

# Import order for a folder: every entity after the ones it depends on.
IMPORT_ORDER = (
    "fields",
    "relation_types",
    "customers",
    "identities",
    "memberships",
    "orders",
    "order_items",
    "relations",
    "events",
    "stores",
    "staff",
    "messages",
)
assert set(IMPORT_ORDER) == set(ENTITIES)
# Entities that declare things (names, flags) in the store rather than rows in the lake.
DECLARATIONS = ("fields", "relation_types")
assert ENTITIES["relation_types"].column_names == RELATION_TYPE_COLUMNS
