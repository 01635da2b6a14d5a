"""Segment messages → canonical rows (siyu.ingest.segment) and the request models (siyu.api.schemas.segment).

Messages are written as Segment's spec and the official Python library send them; expected rows are
the exact canonical text a file would hold. A "later batch" sees the lake as the importer would
have left it: the earlier output validated into typed columns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import ibis
import orjson
import pyarrow as pa
import pytest
from pydantic import ValidationError

from siyu.api.schemas.segment import (
    Batch,
    Track,
    message_id,
    parse_batch,
    parse_message,
    to_inbox_rows,
)
from siyu.api.schemas.segment_values import MessageValueError
from siyu.engine.connect import Engine, connect
from siyu.ingest.schema import ENTITIES
from siyu.ingest.segment import segment_to_canonical
from siyu.ingest.validate import validate
from siyu.lake.tables import Lake as DeltaLake

RECEIVED = datetime(2024, 6, 18, 4, 0, tzinfo=UTC)
Rows = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The engine, so the portable builtins are spelled for it (and time is UTC, as siyu runs it)."""
    return connect("duckdb", DeltaLake(tmp_path_factory.mktemp("lake")), memory_limit="1GB")


def _messages(messages: list[dict[str, Any]], first_id: int = 1, source: str = "app") -> ibis.Table:
    n = len(messages)
    return ibis.memtable(
        pa.table(
            {
                "inbox_id": pa.array(range(first_id, first_id + n), pa.int64()),
                "brand": ["acme"] * n,
                "source": [source] * n,
                "message_id": [m.get("messageId") or f"m{first_id + i}" for i, m in enumerate(messages)],
                "payload": [json.dumps(m, ensure_ascii=False) for m in messages],
                "received_at": pa.array([RECEIVED] * n, pa.timestamp("us", tz="UTC")),
            }
        )
    )


class Lake:
    """The typed rows the importer would have stored (the last version of a key wins)."""

    def __init__(self) -> None:
        self.tables: dict[str, pa.Table] = {}

    def add(self, con: Engine, mapped: dict[str, pa.Table]) -> None:
        for entity, table in mapped.items():
            typed = validate(ibis.memtable(table), ENTITIES[entity], ibis.literal("Asia/Shanghai"))
            typed_rows = con.to_arrow(typed.filter(typed._valid).drop("_valid", "_line"))
            if entity in self.tables:
                key = list(ENTITIES[entity].key)
                old = ibis.memtable(self.tables[entity])
                kept = con.to_arrow(old.anti_join(ibis.memtable(typed_rows), key))
                typed_rows = pa.concat_tables([kept, typed_rows])
            self.tables[entity] = typed_rows

    def existing(self, entity: str) -> ibis.Table | None:
        table = self.tables.get(entity)
        return None if table is None else ibis.memtable(table)


def _map(con: Engine, messages: ibis.Table, lake: Lake | None = None) -> dict[str, pa.Table]:
    existing = lake.existing if lake is not None else (lambda entity: None)
    parsed = lambda table: con.materialise(table, "segment_parsed")  # noqa: E731
    mapped = segment_to_canonical(messages, existing, materialise=parsed)
    return {entity: con.to_arrow(expr.order_by(["_line", *ENTITIES[entity].key])) for entity, expr in mapped.items()}


def _rows(tables: dict[str, pa.Table]) -> Rows:
    """Rows without their NULL columns (easier to read and compare)."""
    return {e: [{k: v for k, v in r.items() if v is not None} for r in t.to_pylist()] for e, t in tables.items()}


def run(con: Engine, messages: list[dict[str, Any]], lake: Lake | None = None, first_id: int = 1) -> Rows:
    return _rows(_map(con, _messages(messages, first_id), lake))


def _base(**values: Any) -> dict[str, Any]:
    return {"brand": "acme", "source": "app", **values}


# -- output shape ---------------------------------------------------------------------------------


def test_every_entity_has_exactly_the_canonical_columns(con: Engine) -> None:
    tables = _map(con, _messages([{"type": "track", "userId": "u1", "event": "Signed In"}]))
    assert set(tables) == {"customers", "identities", "orders", "order_items", "events"}
    for entity, table in tables.items():
        rejected = ["_rejected"] if entity in ("orders", "order_items") else []  # an order is kept or rejected whole
        assert table.column_names == [*ENTITIES[entity].column_names, "_line", *rejected]
        assert all(pa.types.is_string(table.schema.field(c).type) for c in ENTITIES[entity].column_names)
        assert table.schema.field("_line").type == pa.int64()


# -- identify -------------------------------------------------------------------------------------

IDENTIFY = {
    "type": "identify",
    "userId": "u1",
    "anonymousId": "a1",
    "traits": {
        "phone": "13800138000",
        "email": "Li.Lei@example.com",
        "unionid": "UN1",
        "memberNo": 1001,
        "firstName": "雷",
        "lastName": "李",
        "gender": "M",
        "birthday": "1990-05-04T00:00:00.000Z",
        "address": {"city": "杭州", "state": "浙江"},
        "storeCode": "S01",
        "createdAt": "2024-01-02T10:00:00+08:00",
        "plan": "gold",
    },
    "context": {"device": {"id": "dev-1"}, "library": {"name": "analytics-python", "version": "2.4.0"}},
    "timestamp": "2024-06-18T12:00:00.000+08:00",
}


def test_identify_traits_become_identifiers_and_profile(con: Engine) -> None:
    rows = run(con, [IDENTIFY])
    assert rows["customers"] == [
        _base(
            source_customer_id="u1",
            phone="13800138000",
            unionid="UN1",
            member_no="1001",
            email="Li.Lei@example.com",
            device_id="dev-1",
            anonymous_id="a1",
            name="李雷",
            gender="male",
            birthday="1990-05-04",
            province="浙江",
            city="杭州",
            store_code="S01",
            created_at="2024-01-02T02:00:00.000000Z",
            _line=1,
        )
    ]
    # The device a signed-in user used is kept as a weak identifier of that user.
    assert rows["identities"] == [
        _base(source_customer_id="u1", id_type="anonymous_id", id_value="a1", _line=1),
    ]
    assert rows["events"] == [] and rows["orders"] == []


def test_identify_folds_within_a_batch_last_non_null_wins(con: Engine) -> None:
    rows = run(
        con,
        [
            {"type": "identify", "userId": "u1", "traits": {"phone": "13800138000", "name": "Li Lei"}},
            {"type": "track", "userId": "u1", "event": "Signed In"},
            {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "name": "Lei Li"}},
            {"type": "identify", "userId": "u1", "traits": {"gender": "female", "city": "上海", "name": None}},
        ],
    )
    assert rows["customers"] == [
        _base(
            source_customer_id="u1",
            phone="13800138000",
            email="a@example.com",
            name="Lei Li",
            gender="female",
            city="上海",
            _line=4,
        )
    ]


def test_identify_merges_over_the_lake_a_later_identify_keeps_earlier_traits(con: Engine) -> None:
    lake = Lake()
    lake.add(con, _map(con, _messages([IDENTIFY])))
    later = {"type": "identify", "userId": "u1", "traits": {"email": "new@example.com", "gender": "unsure"}}
    rows = run(con, [later, {"type": "track", "userId": "u1", "event": "Signed In"}], lake, first_id=10)
    (customer,) = rows["customers"]
    assert customer == _base(
        source_customer_id="u1",
        phone="13800138000",  # kept from the first batch
        unionid="UN1",
        member_no="1001",
        email="new@example.com",  # a new value wins
        device_id="dev-1",
        anonymous_id="a1",
        name="李雷",
        gender="unknown",  # not a known gender
        birthday="1990-05-04",
        province="浙江",
        city="杭州",
        store_code="S01",
        created_at="2024-01-02T02:00:00.000000Z",
        _line=11,
    )
    # Mapping a batch that only names the customer changes nothing of the profile.
    again = run(con, [{"type": "page", "userId": "u1"}], lake, first_id=20)["customers"]
    assert again == [
        {
            **{k: v for k, v in customer.items() if k != "email"},
            "email": "Li.Lei@example.com",
            "gender": "male",
            "_line": 20,
        }
    ]


def test_identify_first_and_last_name_latin_order(con: Engine) -> None:
    rows = run(con, [{"type": "identify", "userId": "u2", "traits": {"first_name": "Lei", "lastName": "Li"}}])
    assert rows["customers"][0]["name"] == "Lei Li"


# -- people without a userId, numeric ids, aliases ------------------------------------------------


def test_anonymous_only_user_is_a_source_customer_of_its_own(con: Engine) -> None:
    rows = run(con, [{"type": "track", "anonymousId": "anon-9", "event": "Product Viewed"}])
    assert rows["customers"] == [_base(source_customer_id="anon-9", anonymous_id="anon-9", _line=1)]
    assert rows["identities"] == []
    assert rows["events"][0]["source_customer_id"] == "anon-9"


def test_numeric_user_id_becomes_text(con: Engine) -> None:
    rows = run(con, [{"type": "track", "userId": 42, "event": "Signed In"}])
    assert rows["customers"] == [_base(source_customer_id="42", _line=1)]
    assert rows["events"][0]["source_customer_id"] == "42"


def test_alias_links_both_source_customers_with_a_strong_alias(con: Engine) -> None:
    rows = run(con, [{"type": "alias", "previousId": "anon-9", "userId": "u1", "timestamp": "2024-06-18T10:00:00Z"}])
    assert rows["identities"] == [
        _base(source_customer_id="anon-9", id_type="alias", id_value="app:u1", _line=1),
        _base(source_customer_id="u1", id_type="alias", id_value="app:u1", _line=1),
    ]
    assert rows["customers"] == [
        _base(source_customer_id="anon-9", _line=1),
        _base(source_customer_id="u1", _line=1),
    ]
    assert rows["events"] == []


# -- events ---------------------------------------------------------------------------------------


def _track(event: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "u1",
        "event": event,
        "properties": properties,
        "timestamp": "2024-06-18T10:00:00Z",
    }


def test_track_names_map_to_canonical_types_or_snake_case(con: Engine) -> None:
    names = {
        "Product Viewed": "view_item",
        "Product Added": "add_cart",
        "Product Shared": "share",
        "Product Reviewed": "review",
        "Signed In": "sign_in",
        "Coupon Entered": "coupon_claim",
        "coupon_applied": "coupon_claim",
        "share_click": "share_click",  # siyu's own types pass through
        "productAddedToWishlist": "product_added_to_wishlist",
        "Checkout Step Viewed!": "checkout_step_viewed",
        "3D View": "e_3d_view",
        "浏览商品": "custom",
    }
    rows = run(con, [_track(name) for name in names])
    assert [e["type"] for e in rows["events"]] == list(names.values())
    assert [json.loads(e["properties"])["segment_event"] for e in rows["events"]] == list(names)


def test_track_event_row_keeps_properties(con: Engine) -> None:
    rows = run(con, [{**_track("Product Reviewed", product_id="p1", rating=5, review_body="好"), "messageId": "msg-1"}])
    assert rows["events"] == [
        _base(
            event_id="msg-1",
            field="app",  # no field given: the source
            type="review",
            source_customer_id="u1",
            occurred_at="2024-06-18T10:00:00.000000Z",
            properties='{"segment_event":"Product Reviewed","product_id":"p1","rating":5,"review_body":"好"}',
            _line=1,
        )
    ]


def test_field_from_properties_then_context_then_source(con: Engine) -> None:
    rows = run(
        con,
        [
            _track("Signed In", field="mini_program"),
            {**_track("Signed In"), "context": {"field": "wecom"}},
            _track("Signed In"),
        ],
    )
    assert [e["field"] for e in rows["events"]] == ["mini_program", "wecom", "app"]


def test_live_video_is_live_watch(con: Engine) -> None:
    rows = run(con, [_track("Video Playback Started", livestream=True), _track("Video Playback Started")])
    assert [e["type"] for e in rows["events"]] == ["live_watch", "video_playback_started"]


def test_page_and_screen_are_visits(con: Engine) -> None:
    page = {
        "type": "page",
        "anonymousId": "a1",
        "name": "Home",
        "category": "Docs",
        "properties": {"url": "https://shop.example.com/", "path": "/", "title": "Shop"},
        "timestamp": "2024-06-18T10:00:00Z",
    }
    screen = {"type": "screen", "userId": "u1", "name": "商品详情", "timestamp": "2024-06-18T10:00:01Z"}
    rows = run(con, [page, screen])
    assert [(e["type"], json.loads(e["properties"])) for e in rows["events"]] == [
        (
            "visit",
            {
                "segment_type": "page",
                "name": "Home",
                "category": "Docs",
                "url": "https://shop.example.com/",
                "path": "/",
                "title": "Shop",
            },
        ),
        ("visit", {"segment_type": "screen", "name": "商品详情"}),
    ]


def test_group_is_kept_as_an_event(con: Engine) -> None:
    rows = run(con, [{"type": "group", "userId": "u1", "groupId": 7, "traits": {"name": "ACME"}}])
    assert [(e["type"], json.loads(e["properties"])) for e in rows["events"]] == [
        ("group", {"segment_type": "group", "group_id": 7, "name": "ACME"})
    ]
    assert rows["customers"] == [_base(source_customer_id="u1", _line=1)]  # group traits are not the person's


def test_occurred_at_timestamp_skew_corrected_original_or_received(con: Engine) -> None:
    rows = run(
        con,
        [
            {"type": "track", "userId": "u1", "event": "A", "timestamp": "2024-06-18T12:00:00+08:00"},
            # The client clock is 10 s ahead of the server: receivedAt − (sentAt − originalTimestamp).
            {
                "type": "track",
                "userId": "u1",
                "event": "B",
                "originalTimestamp": "2024-06-18T04:00:05Z",
                "sentAt": "2024-06-18T04:00:10Z",
            },
            {"type": "track", "userId": "u1", "event": "C", "originalTimestamp": "2024-06-18T03:00:00Z"},
            {"type": "track", "userId": "u1", "event": "D"},  # no time at all: when the server got it
            {"type": "track", "userId": "u1", "event": "E", "timestamp": "2024-06-18T03:30:00"},  # naive = UTC
        ],
    )
    assert [e["occurred_at"] for e in rows["events"]] == [
        "2024-06-18T04:00:00.000000Z",
        "2024-06-18T03:59:55.000000Z",
        "2024-06-18T03:00:00.000000Z",
        "2024-06-18T04:00:00.000000Z",
        "2024-06-18T03:30:00.000000Z",
    ]


def test_clock_skew_correction_only_when_sane_and_in_bounds(con: Engine) -> None:
    def track(event: str, **times: str) -> dict[str, Any]:
        return {"type": "track", "userId": "u1", "event": event, **times}

    rows = run(
        con,
        [
            # Before: 4:00 − (0001-01-01 − 9999-12-31) = about year 12026, which broke the customer view.
            track("A", originalTimestamp="9999-12-31T00:00:00Z", sentAt="0001-01-01T00:00:00Z"),
            # A phone reset to 1970 with a sane 2 s delay: the correction is what fixes it.
            track("B", originalTimestamp="1970-01-01T00:05:00Z", sentAt="1970-01-01T00:05:02Z"),
            # Sent 40 days after it happened: too long a delay to trust; originalTimestamp is in bounds.
            track("C", originalTimestamp="2024-05-01T00:00:00Z", sentAt="2024-06-10T00:00:00Z"),
            # Negative delay and an original out of bounds: when the server got it.
            track("D", originalTimestamp="1970-01-01T00:00:00Z", sentAt="1969-12-31T00:00:00Z"),
            track("E", originalTimestamp="2024-06-25T00:00:00Z"),  # a week ahead of receipt, no sentAt
        ],
    )
    assert [e["occurred_at"] for e in rows["events"]] == [
        "2024-06-18T04:00:00.000000Z",
        "2024-06-18T03:59:58.000000Z",
        "2024-05-01T00:00:00.000000Z",
        "2024-06-18T04:00:00.000000Z",
        "2024-06-18T04:00:00.000000Z",
    ]


def test_traits_in_context_fill_the_profile_under_top_level_traits(con: Engine) -> None:
    rows = run(
        con,
        [
            # RudderStack's SDKs send identify traits in context.traits only.
            {"type": "identify", "userId": "u1", "context": {"traits": {"phone": "13800000001", "email": "a@x.cn"}}},
            # Both: the top-level trait wins, context fills what the top level lacks.
            {"type": "identify", "userId": "u2", "traits": {"phone": "13800000002"},
             "context": {"traits": {"phone": "13900000000", "city": "杭州"}}},
            # A track's context.traits are the user's too (Segment spec); a group's traits are not.
            {"type": "track", "userId": "u3", "event": "A", "context": {"traits": {"email": "c@x.cn"}}},
            {"type": "group", "userId": "u4", "groupId": "g", "traits": {"email": "g@x.cn"}},
        ],
    )  # fmt: skip
    assert rows["customers"] == [
        _base(source_customer_id="u1", phone="13800000001", email="a@x.cn", _line=1),
        _base(source_customer_id="u2", phone="13800000002", city="杭州", _line=2),
        _base(source_customer_id="u3", email="c@x.cn", _line=3),
        _base(source_customer_id="u4", _line=4),
    ]


# -- orders ---------------------------------------------------------------------------------------

ORDER = {
    "type": "track",
    "userId": "u1",
    "event": "Order Completed",
    "messageId": "oc-1",
    "timestamp": "2024-06-18T20:15:00+08:00",
    "properties": {
        "order_id": "O-1",
        "total": 67.97,
        "revenue": 59.97,
        "discount": 2.5,
        "coupon": "SUMMER",
        "currency": "CNY",
        "store_code": "S01",
        "share_id": "SH1",
        "products": [
            {"product_id": "P1", "sku": "P1-M", "category": "tee", "name": "Tee", "price": 19.99, "quantity": 3},
            {"product_id": "P2", "sku": "P2", "price": "8"},
        ],
    },
}


def test_order_completed_becomes_an_order_with_its_items(con: Engine) -> None:
    rows = run(con, [ORDER])
    assert rows["orders"] == [
        _base(
            order_id="O-1",
            source_customer_id="u1",
            store_code="S01",
            status="paid",
            paid_at="2024-06-18T12:15:00.000000Z",
            amount_fen="6797",  # total, exact: 67.97 yuan
            discount_fen="250",
            coupon_code="SUMMER",
            share_id="SH1",
            _line=1,
        )
    ]
    assert rows["order_items"] == [
        _base(order_id="O-1", line_no="1", sku="P1-M", spu="P1", category="tee", qty="3", price_fen="1999",
              amount_fen="5997", _line=1),
        _base(order_id="O-1", line_no="2", sku="P2", spu="P2", qty="1", price_fen="800", amount_fen="800", _line=1),
    ]  # fmt: skip
    assert rows["events"][0]["type"] == "order_completed"
    assert rows["customers"] == [_base(source_customer_id="u1", _line=1)]


def test_order_revenue_when_no_total_and_last_completion_wins(con: Engine) -> None:
    first = {**ORDER, "properties": {"orderId": "O-2", "revenue": "10.005", "products": [{"sku": "A", "price": 1}]}}
    second = {**ORDER, "properties": {"orderId": "O-2", "revenue": "12.50"}}
    rows = run(con, [first, second])
    assert [(o["order_id"], o["amount_fen"], o["_line"]) for o in rows["orders"]] == [("O-2", "1250", 2)]
    assert rows["order_items"] == []  # the last completion listed no products
    rows = run(con, [first])
    assert rows["orders"][0]["amount_fen"] == "1000.5"  # never rounded: the importer rejects half a fen


def test_sub_fen_and_huge_amounts_are_never_rounded_or_overflowed(con: Engine) -> None:
    tiny = {**ORDER, "properties": {"order_id": "O-4", "total": 0.001}}
    huge = {**ORDER, "properties": {"order_id": "O-5", "total": 100000000000000000000, "points_used": 1e30}}
    rows = run(con, [tiny, huge])
    # 0.001 yuan = 0.1 fen: passed on as 0.1 for the importer to reject, not paid as 0 fen.
    assert [(o["order_id"], o["amount_fen"], o.get("points_used")) for o in rows["orders"]] == [
        ("O-4", "0.1", None),
        ("O-5", "100000000000000000000", "1e30"),  # beyond int64 fen: passed on, no overflow; quarantined
    ]
    lake = Lake()
    lake.add(con, _map(con, _messages([tiny, huge])))
    assert "orders" not in lake.tables or lake.tables["orders"].num_rows == 0


def test_money_that_is_not_a_number_is_passed_on_for_the_importer_to_reject(con: Engine) -> None:
    bad = {**ORDER, "properties": {"order_id": "O-3", "total": "lots", "products": [{"sku": "A", "quantity": 1.5}]}}
    rows = run(con, [bad])
    assert rows["orders"][0]["amount_fen"] == "lots"
    why = "order rejected: " + QTY_15.replace("line 2", "line 1")
    assert rows["order_items"] == [_base(order_id="O-3", line_no="1", sku="A", qty="1.5", _line=1, _rejected=why)]


QTY_15 = "item line 2 rejected (商品行无效): qty: must be a non-negative integer, got a decimal: 1.5"


@pytest.mark.parametrize("quantity", [-3, 1.5, 0])
def test_an_order_with_a_bad_item_line_is_rejected_whole(con: Engine, quantity: float) -> None:
    products = [{"sku": "A", "price": 10, "quantity": 1}, {"sku": "B", "price": 5, "quantity": quantity}]
    order = {**ORDER, "properties": {"order_id": "O-6", "total": 15, "products": products}}
    rows = run(con, [order])
    reason = rows["orders"][0]["_rejected"]
    assert reason.startswith("item line 2 rejected (商品行无效): qty: ")
    assert [i.get("_rejected") for i in rows["order_items"]] == [f"order rejected: {reason}"] * 2
    lake = Lake()
    lake.add(con, _map(con, _messages([order])))
    # Before: the order was stored as paid (15 yuan) with line 1 only; now neither the order nor a line is.
    assert lake.tables["orders"].num_rows == 0 and lake.tables["order_items"].num_rows == 0


def _refund(order_id: str, message_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "u1",
        "event": "Order Refunded",
        "messageId": message_id,
        "properties": {"order_id": order_id, **properties},
    }


def _order_state(rows: Rows) -> list[tuple[str, str, str | None, str]]:
    return [(o["order_id"], o["status"], o.get("refund_fen"), o["amount_fen"]) for o in rows["orders"]]


def test_refunds_in_the_same_batch(con: Engine) -> None:
    partial = run(con, [ORDER, _refund("O-1", "r1", total=19.99)])
    assert _order_state(partial) == [("O-1", "partially_refunded", "1999", "6797")]
    assert partial["orders"][0]["_line"] == 1
    two = run(con, [_refund("O-1", "r0", total="10"), ORDER, _refund("O-1", "r1", total=19.99)])
    assert _order_state(two) == [("O-1", "partially_refunded", "2999", "6797")]
    full = run(con, [ORDER, _refund("O-1", "r1")])  # no amount: the whole order
    assert _order_state(full) == [("O-1", "refunded", "6797", "6797")]
    by_products = run(con, [ORDER, _refund("O-1", "r1", products=[{"sku": "P1-M", "price": 19.99, "quantity": 2}])])
    assert _order_state(by_products) == [("O-1", "partially_refunded", "3998", "6797")]


def test_refunds_in_later_batches_are_summed_from_refund_events(con: Engine) -> None:
    lake = Lake()
    lake.add(con, _map(con, _messages([ORDER])))
    first = _messages([_refund("O-1", "r1", total=19.99)], first_id=10)
    mapped = _map(con, first, lake)
    assert _order_state(_rows(mapped)) == [("O-1", "partially_refunded", "1999", "6797")]
    order = _rows(mapped)["orders"][0]
    assert order["paid_at"] == "2024-06-18T12:15:00.000000Z" and order["_line"] == 10  # the lake's row, kept
    lake.add(con, mapped)
    # Mapping the same batch again (a loader re-run) gives the same total, not a double refund.
    assert _order_state(_rows(_map(con, first, lake))) == [("O-1", "partially_refunded", "1999", "6797")]
    second = _map(con, _messages([_refund("O-1", "r2", revenue="48")], first_id=20), lake)
    assert _order_state(_rows(second)) == [("O-1", "refunded", "6799", "6797")]  # over-refund: importer rejects
    third = _map(con, _messages([_refund("O-1", "r3")], first_id=30), lake)
    assert _order_state(_rows(third)) == [("O-1", "refunded", "6797", "6797")]


def test_refund_before_its_order_is_applied_when_the_order_arrives(con: Engine) -> None:
    lake = Lake()
    early = _map(con, _messages([_refund("O-1", "r1", total=19.99)]), lake)
    assert _rows(early)["orders"] == []  # nothing to refund yet; the refund event is kept
    assert [e["type"] for e in _rows(early)["events"]] == ["order_refunded"]
    lake.add(con, early)
    rows = run(con, [ORDER], lake, first_id=10)
    assert _order_state(rows) == [("O-1", "partially_refunded", "1999", "6797")]


def test_a_repeated_completion_keeps_earlier_refunds(con: Engine) -> None:
    lake = Lake()
    lake.add(con, _map(con, _messages([ORDER, _refund("O-1", "r1", total=19.99)])))
    rows = run(con, [{**ORDER, "messageId": "oc-2"}], lake, first_id=10)
    assert _order_state(rows) == [("O-1", "partially_refunded", "1999", "6797")]


# -- request models -------------------------------------------------------------------------------


def _library_messages() -> list[dict[str, Any]]:
    """What segment-analytics-python queues (send=False returns the message instead of sending it)."""
    from segment.analytics import Client

    client = Client("write-key", send=False, sync_mode=True)
    sent = [
        client.identify(user_id=42, traits={"phone": "13800138000"}),
        client.track(anonymous_id="a1", event="Product Viewed", properties={"price": 19.99}),
        client.page(user_id="u1", name="Home"),
        client.screen(user_id="u1", name="Cart"),
        client.group(user_id="u1", group_id="g1"),
        client.alias(previous_id="a1", user_id="u1"),
    ]
    return [json.loads(json.dumps(msg)) for _, msg in sent]


def test_batch_from_the_segment_library_validates() -> None:
    messages = _library_messages()
    assert messages[0]["userId"] == "42" and messages[1]["userId"] is None  # the library sends explicit nulls
    body = orjson.dumps({"batch": messages, "sentAt": "2024-06-18T04:00:00+00:00", "writeKey": "write-key"})
    rows = parse_batch(body)
    assert [r.type for r in rows] == ["identify", "track", "page", "screen", "group", "alias"]
    assert [r.message_id for r in rows] == [m["messageId"] for m in messages]
    payload = json.loads(rows[1].payload)
    assert payload["properties"] == {"price": 19.99}
    assert payload["sentAt"] == "2024-06-18T04:00:00+00:00"  # the batch's, for clock-skew correction
    assert payload["context"]["library"]["name"] == "analytics-python"


@pytest.mark.parametrize(
    ("message", "where", "says"),
    [
        ({"type": "track", "event": "A"}, ("batch", 0, "track"), "userId or anonymousId is required"),
        ({"type": "track", "userId": "", "event": "A"}, ("batch", 0, "track"), "userId or anonymousId is required"),
        ({"type": "track", "userId": "u1"}, ("batch", 0, "track", "event"), "Field required"),
        ({"type": "alias", "userId": "u1"}, ("batch", 0, "alias", "previousId"), "Field required"),
        ({"type": "fly", "userId": "u1"}, ("batch", 0), "does not match any of the expected tags"),
        ({"type": "page", "userId": "u1", "timestamp": "yesterday"}, ("batch", 0, "page", "timestamp"), "datetime"),
    ],
)
def test_bad_messages_are_rejected_with_their_place(message: dict[str, Any], where: tuple[Any, ...], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_batch(orjson.dumps({"batch": [message]}))
    error = caught.value.errors()[0]
    assert error["loc"] == where and says in error["msg"]


@pytest.mark.parametrize(
    ("message", "field", "says"),
    [
        ({"timestamp": "9999-12-31T00:00:00Z"}, "batch.0.timestamp", "out of range (1990-01-01 … now + 1 day(s))"),
        ({"timestamp": "1989-12-31T23:59:59Z"}, "batch.0.timestamp", "out of range"),
        ({"properties": {"deep": json.loads('{"a":' * 40 + "1" + "}" * 40)}}, "batch.0.properties", "deeper than 32"),
        ({"properties": {"blob": "x" * 40_000}}, "batch.0.", "larger than 32 KB"),
        ({"event": "Order Completed", "properties": {"total": 0.001}}, "batch.0.properties.total", "fen"),
        ({"event": "order_completed", "properties": {"total": 1e20}}, "batch.0.properties.total", "too large"),
        ({"event": "Order Refunded", "properties": {"revenue": -5}}, "batch.0.properties.revenue", "non-negative"),
        ({"event": "Order Completed", "properties": {"points_used": True}}, "batch.0.properties.points_used", "int"),
        *[
            ({"event": "Order Completed", "properties": {"products": [{"price": 1}, {"quantity": q}]}},
             "batch.0.properties.products.1.quantity", "positive integer")
            for q in (-3, 1.5, 0, "two")
        ],
    ],
)  # fmt: skip
def test_values_the_door_refuses(message: dict[str, Any], field: str, says: str) -> None:
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u1", "event": "A", **message}]})
    with pytest.raises(MessageValueError) as caught:
        parse_batch(body)
    assert caught.value.errors[0]["field"] == field and says in caught.value.errors[0]["reason"]


def test_json_nested_as_deep_as_orjson_allows_is_refused_not_a_crash() -> None:
    # 255–1024 levels parse, but could not be written back as JSON (orjson's limit is 254): it was a 500.
    for depth in (300, 1000):
        body = ('{"userId": "u1", "event": "A", "properties": ' + '{"a":' * depth + "1" + "}" * depth + "}").encode()
        with pytest.raises(MessageValueError, match="deeper than 32"):
            parse_message("track", body)
    with pytest.raises(ValidationError, match="recursion limit"):  # beyond orjson's own limit: invalid JSON
        parse_message("track", b'{"userId": "u1", "event": "A", "properties": ' + b'{"a":' * 2000 + b"1}")


def test_timestamps_must_be_iso_strings_not_numbers() -> None:
    # pydantic would read 1718683200 as a date; the mapping stored the receive time instead.
    with pytest.raises(ValidationError, match="ISO-8601"):
        parse_message("track", b'{"userId": "u1", "event": "A", "timestamp": 1718683200}')
    with pytest.raises(ValidationError, match="ISO-8601"):
        parse_batch(orjson.dumps({"batch": [], "sentAt": 1718683200000}))
    order = {
        "event": "Order Completed",
        "properties": {"total": 64.97, "products": [{"price": 19.99, "quantity": 3.0}]},
    }
    assert parse_message("track", orjson.dumps({"userId": "u1", **order}))  # exact money and whole counts pass


def test_broken_json_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="Invalid JSON"):
        parse_batch(b'{"batch": [')


def test_single_endpoint_message_type_comes_from_the_path() -> None:
    (row,) = parse_message("track", b'{"userId": 7, "event": "Signed In", "properties": {"a": 1}}')
    assert row.type == "track"
    assert json.loads(row.payload) == {
        "userId": "7",
        "event": "Signed In",
        "properties": {"a": 1},
        "type": "track",
        "messageId": row.message_id,
    }
    with pytest.raises(ValidationError):
        parse_message("track", b'{"type": "identify", "userId": "u1"}')
    assert Track.model_validate({"userId": 7, "event": "A"}).user_id == "7"


def test_message_id_is_given_or_a_stable_hash() -> None:
    assert message_id({"messageId": "m-1", "type": "track"}) == "m-1"
    one = {"type": "track", "userId": "u1", "event": "A", "sentAt": "2024-06-18T04:00:00Z"}
    retry = {"event": "A", "userId": "u1", "type": "track", "sentAt": "2024-06-18T04:00:09Z"}
    assert message_id(one) == message_id(retry)  # key order and send time do not matter
    assert message_id(one).startswith("sha256:") and len(message_id(one)) == 7 + 64
    assert message_id(one) != message_id({**one, "event": "B"})


def test_batch_context_merges_under_the_message_context() -> None:
    batch = Batch.model_validate(
        {
            "batch": [
                {"type": "track", "userId": "u1", "event": "A", "context": {"ip": "10.0.0.1"}},
                {"type": "track", "userId": "u1", "event": "B"},
            ],
            "context": {"ip": "10.0.0.9", "locale": "zh-CN"},
        }
    )
    rows = to_inbox_rows(batch.batch, context=batch.context)
    assert [json.loads(r.payload)["context"] for r in rows] == [
        {"ip": "10.0.0.1", "locale": "zh-CN"},
        {"ip": "10.0.0.9", "locale": "zh-CN"},
    ]
