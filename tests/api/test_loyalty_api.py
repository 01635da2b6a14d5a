"""The loyalty API (会员中台) over real HTTP, on both store backends: a small brand program, points
earned directly through the ledger, then balances, history, redemption, idempotency, scopes,
adjustments and reversals, coupons and the points mall. Every number is worked out by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from api.conftest import KeyMaker, bearer, running
from siyu.bootstrap import App
from siyu.identity.service import MAP_TABLE
from siyu.loyalty import points as ledger
from siyu.loyalty.accounts import account_of
from siyu.loyalty.programs import do_apply_program, load_program

PROGRAM = """\
version: 1
program: shop_club
name_zh: 小店会员
name_en: Shop Club
level: brand
brands: [shop]
timezone: Asia/Shanghai
enrolment: [membership, api]
tiers:
  levels:
    - {code: member, name_zh: 会员, name_en: Member, threshold: 0}
    - {code: vip, name_zh: 贵宾, name_en: VIP, threshold: 5000, flags: [free_shipping]}
points:
  expiry: {policy: never}
coupons:
  - {code: off20, kind: amount_off, threshold_fen: 10000, amount_fen: 2000, valid_days: 30, per_customer_limit: 1}
  - {code: ship, kind: free_shipping, valid_days: 90, stackable: true}
mall:
  - {code: mug, name_zh: 马克杯, name_en: Mug, kind: item, points: 300, stock: 2, per_member_limit: 1}
  - {code: c20, kind: coupon, coupon: off20, points: 150}
"""
BASE = "/api/v1/loyalty/shop_club"
EARLY = dt.datetime(2099, 6, 30, 16, tzinfo=dt.UTC)  # 2099-07-01 00:00 in Shanghai
LATE = dt.datetime(2099, 12, 31, 16, tzinfo=dt.UTC)


class Api:
    """The shop_club endpoints with one key per call: `api.post("/members", pos, {...})`."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def get(self, path: str, key: str | None, **params: Any) -> httpx.Response:
        return self.client.get(BASE + path, params=params, headers=bearer(key) if key else {})

    def post(self, path: str, key: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.post(BASE + path, json=body, headers=bearer(key))

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def balance(self, key: str, customer_id: str) -> int:
        return int(self.ok(self.get(f"/members/{customer_id}", key))["points"]["balance"])

    def enrol(self, key: str, *customer_ids: str) -> None:
        for customer_id in customer_ids:
            self.ok(self.post("/members", key, {"customer_id": customer_id}), 201)


def one_id(app: App, customers: dict[str, list[str]]) -> None:
    """The One-ID map as `siyu resolve` leaves it, for hand-named customers ({brand: [customer_id]}):
    the API enrols only customers of the key's brand found there."""
    rows = [
        {"brand": brand, "source": "crm", "source_customer_id": customer, "customer_id": customer}
        for brand, ids in customers.items()
        for customer in ids
    ]
    stamp = pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * len(rows), pa.timestamp("us", tz="UTC"))
    app.lake.overwrite(MAP_TABLE, pa.Table.from_pylist(rows).append_column("resolved_at", stamp))


@pytest.fixture
def api(app: App, tmp_path: Path) -> Iterator[Api]:
    path = tmp_path / "shop_club.yaml"
    path.write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, path, actor="test", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    one_id(app, {"shop": [f"c{i}" for i in range(1, 10)], "other": ["o1"]})
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Api(client)


def earn(app: App, customer_id: str, points: int, order_id: str, expires_at: dt.datetime = LATE) -> int:
    """Points earned on an order, straight through the ledger (order sync is not an API thing)."""
    with app.store.write_unit() as session:
        program = load_program(session, "shop_club")
        account = account_of(session, "shop_club", brand="shop", customer_id=customer_id)
        assert account is not None
        posted = ledger.do_earn(
            session, program, account.id, points, key=f"order:{order_id}", at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
            actor="test", brand="shop", channel="pos", order_id=order_id, expires_at=expires_at,
        )  # fmt: skip
        return posted.txn_id


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_points_balance_history_redeem(app: App, api: Api, make_key: KeyMaker) -> None:
    read, pos, admin = make_key("shop", "read"), make_key("shop", "read,loyalty"), make_key("shop", "admin")
    programs = api.ok(api.client.get("/api/v1/loyalty/programs", headers=bearer(read)))["programs"]
    assert [(p["code"], p["version"], p["level"], p["brands"]) for p in programs] == [
        ("shop_club", 1, "brand", ["shop"])
    ]
    assert [(t["code"], t["name_zh"], t["threshold"], t["flags"]) for t in programs[0]["tiers"]] == [
        ("member", "会员", 0, []),
        ("vip", "贵宾", 5000, ["free_shipping"]),
    ]

    joined = api.ok(api.post("/members", pos, {"customer_id": "c1"}), 201)
    # Member numbers are masked without `pii`, by the customer 360's rule.
    assert joined == {"program": "shop_club", "customer_id": "c1", "member_no": "sho***c1", "created": True}
    assert api.ok(api.post("/members", pos, {"customer_id": "c1"}))["created"] is False  # 200: a member already
    # Attaching another customer to c1's member number would pool points with c1: admin only.
    hijack = api.post("/members", pos, {"customer_id": "c9", "member_no": "shop-c1"})
    assert hijack.status_code == 403 and hijack.json()["code"] == "forbidden", hijack.text
    with app.store.unit_of_work() as session:
        assert account_of(session, "shop_club", brand="shop", customer_id="c9") is None

    e1 = earn(app, "c1", 500, "o1", EARLY)
    e2 = earn(app, "c1", 300, "o2")
    e3 = earn(app, "c1", 200, "o3")
    assert api.ok(api.get("/members/c1", read)) == {
        "program": "shop_club", "member_no": "sho***c1", "customer_id": "c1", "tier": "member",
        "tier_name_zh": "会员", "tier_name_en": "Member", "growth": 0,
        "points": {"balance": 1000, "debt": 0, "expiring": [
            {"points": 500, "expires_at": "2099-06-30T16:00:00Z"},
            {"points": 500, "expires_at": "2099-12-31T16:00:00Z"},  # 300 + 200: one date
        ]},
        "flags": [], "coupons": [],
    }  # fmt: skip

    # Redeem 600: the lot expiring first (500) is emptied, then 100 of the later ones.
    body = {"points": 600, "idempotency_key": "pos-r1", "order_id": "o9", "reason": "抵扣 order o9"}
    r1 = api.ok(api.post("/members/c1/points/redeem", pos, body), 201)
    assert (r1["points"], r1["balance"], r1["replayed"]) == (-600, 400, False)
    assert api.ok(api.post("/members/c1/points/redeem", pos, body)) == {**r1, "replayed": True}  # 200
    problem(api.post("/members/c1/points/redeem", pos, {**body, "points": 601}), 409, "idempotency_conflict")
    short = api.post("/members/c1/points/redeem", pos, {"points": 401, "idempotency_key": "pos-r2"})
    problem(short, 409, "insufficient_points")
    assert "has 400 points, 401 needed" in short.json()["detail"]
    assert api.ok(api.get("/members/c1", read))["points"] == {
        "balance": 400,
        "debt": 0,
        "expiring": [{"points": 400, "expires_at": "2099-12-31T16:00:00Z"}],
    }
    # the refused key was not used up: it works once the amount fits
    r2 = api.ok(api.post("/members/c1/points/redeem", pos, {"points": 400, "idempotency_key": "pos-r2"}), 201)
    assert r2["balance"] == 0

    # History, newest first, in pages of 3.
    page = api.ok(api.get("/members/c1/points", read, limit=3))
    rows = page["transactions"]
    assert [(t["id"], t["kind"], t["points"], t["balance_after"]) for t in rows] == [
        (r2["txn_id"], "redeem", -400, 0),
        (r1["txn_id"], "redeem", -600, 400),
        (e3, "earn", 200, 1000),
    ]
    assert (rows[1]["order_id"], rows[1]["reason"], rows[1]["brand"]) == ("o9", "抵扣 order o9", "shop")
    assert (rows[2]["channel"], rows[2]["created_at"]) == ("pos", "2026-03-01T00:00:00Z")
    assert page["next_before"] == e3
    rest = api.ok(api.get("/members/c1/points", read, limit=3, before=e3))
    assert [t["id"] for t in rest["transactions"]] == [e2, e1] and rest["next_before"] is None

    # Adjust: admin only, signed, never 0, never overdraws.
    adjust = {"points": 50, "reason": "goodwill 补偿", "idempotency_key": "adj-1"}
    problem(api.post("/members/c1/points/adjust", pos, adjust), 403, "forbidden")
    adjusted = api.ok(api.post("/members/c1/points/adjust", admin, adjust), 201)
    assert (adjusted["points"], adjusted["balance"]) == (50, 50)
    problem(api.post("/members/c1/points/adjust", admin, {**adjust, "points": 0}), 422, "invalid_request")
    minus = {"points": -80, "reason": "too much", "idempotency_key": "adj-2"}
    problem(api.post("/members/c1/points/adjust", admin, minus), 409, "insufficient_points")

    # Reverse the 600 redemption: 100 first, then the 500 left; then nothing is left.
    reverse = f"/points/{r1['txn_id']}/reverse"
    problem(api.post(reverse, pos, {"idempotency_key": "rev-1"}), 403, "forbidden")
    part = api.ok(api.post(reverse, admin, {"points": 100, "idempotency_key": "rev-1"}), 201)
    assert (part["points"], part["balance"]) == (100, 150)
    rest_of_it = api.ok(api.post(reverse, admin, {"idempotency_key": "rev-2", "reason": "order o9 refunded"}), 201)
    assert (rest_of_it["points"], rest_of_it["balance"]) == (500, 650)
    problem(api.post(reverse, admin, {"idempotency_key": "rev-3"}), 409, "reversal_not_allowed")
    problem(api.post("/points/999999/reverse", admin, {"idempotency_key": "rev-4"}), 404, "not_found")
    last = api.ok(api.get("/members/c1/points", read, limit=1))["transactions"][0]
    assert (last["kind"], last["reverses_id"], last["reason"]) == ("reverse", r1["txn_id"], "order o9 refunded")
    # Back into the lots they came from, the last taken first: 100 to the late lot, then 500 to the early
    # one. The 50 adjusted sit in a lot that never expires (policy `never`), so they are not listed.
    assert api.ok(api.get("/members/c1", read))["points"] == {
        "balance": 650,
        "debt": 0,
        "expiring": [
            {"points": 500, "expires_at": "2099-06-30T16:00:00Z"},
            {"points": 100, "expires_at": "2099-12-31T16:00:00Z"},
        ],
    }


def test_scopes_and_brands(app: App, api: Api, make_key: KeyMaker) -> None:
    read, ingest, pos = make_key("shop", "read"), make_key("shop", "ingest"), make_key("shop", "loyalty")
    other = make_key("other", "admin")
    api.enrol(pos, "c1")
    earn(app, "c1", 100, "o1")
    redeem = {"points": 10, "idempotency_key": "k1"}
    problem(api.post("/members/c1/points/redeem", read, redeem), 403, "forbidden")
    problem(api.post("/members", read, {"customer_id": "c2"}), 403, "forbidden")
    problem(api.get("/members/c1", ingest), 403, "forbidden")
    problem(api.get("/members/c1", pos), 403, "forbidden")  # `loyalty` writes, `read` reads
    problem(api.get("/members/c1", None), 401, "unauthorized")

    # Another brand's key does not see the program at all, even with admin.
    assert api.ok(api.client.get("/api/v1/loyalty/programs", headers=bearer(other))) == {"programs": []}
    problem(api.get("/members/c1", other), 404, "unknown_program")
    problem(api.post("/members/c1/points/redeem", other, redeem), 404, "unknown_program")
    problem(api.post("/members", other, {"customer_id": "x"}), 404, "unknown_program")
    problem(api.client.get("/api/v1/loyalty/nope/members/c1", headers=bearer(read)), 404, "unknown_program")
    problem(api.get("/members/c2", read), 404, "not_a_member")
    problem(api.get("/members/c2/points", read), 404, "not_a_member")

    bad = api.post("/members/c1/points/redeem", pos, {"points": 0, "idempotency_key": ""})
    problem(bad, 422, "invalid_request")
    assert {e["field"] for e in bad.json()["errors"]} == {"points", "idempotency_key"}
    huge = {"points": 10_000_001, "idempotency_key": "k" * 201}
    problem(api.post("/members/c1/points/redeem", pos, huge), 422, "invalid_request")
    problem(api.post("/members/c1/points/redeem", pos, {"points": 1, "idempotency_key": "a\x00b"}), 422,
            "invalid_request")  # fmt: skip
    assert api.balance(read, "c1") == 100


def test_coupons_issue_and_redeem(api: Api, make_key: KeyMaker) -> None:
    read, pos, other = make_key("shop", "read"), make_key("shop", "read,loyalty"), make_key("other", "admin")
    api.enrol(pos, "c1", "c2", "c3")
    issue = {"template": "off20", "customer_ids": ["c1", "c2", "c4", "c1"], "idempotency_key": "camp-1", "guide": "g7"}
    problem(api.post("/coupons/issue", read, issue), 403, "forbidden")
    problem(api.post("/coupons/issue", other, issue), 404, "unknown_program")
    got = api.ok(api.post("/coupons/issue", pos, issue), 201)
    assert (got["issued"], got["replayed"], got["skipped"]) == (2, 0, {"not_a_member": 1})  # c4
    assert [x["customer_id"] for x in got["coupons"]] == ["c1", "c2"]
    codes = {x["customer_id"]: x["code"] for x in got["coupons"]}
    valid_to = dt.datetime.fromisoformat(got["coupons"][0]["valid_to"])
    assert abs(valid_to - (dt.datetime.now(dt.UTC) + dt.timedelta(days=30))) < dt.timedelta(minutes=5)

    again = api.ok(api.post("/coupons/issue", pos, issue))  # 200: nothing new
    assert (again["issued"], again["replayed"], again["coupons"]) == (0, 2, got["coupons"])
    longer = api.ok(api.post("/coupons/issue", pos, {**issue, "customer_ids": ["c1", "c2", "c3"]}), 201)
    assert (longer["issued"], longer["replayed"]) == (1, 2)
    codes["c3"] = longer["coupons"][2]["code"]
    limit = api.ok(api.post("/coupons/issue", pos, {**issue, "customer_ids": ["c1"], "idempotency_key": "camp-2"}))
    assert (limit["issued"], limit["skipped"]) == (0, {"limit_reached": 1})  # one per customer
    problem(api.post("/coupons/issue", pos, {**issue, "template": "caviar"}), 404, "not_found")
    wallet = api.ok(api.get("/members/c1", read))["coupons"]
    assert [(w["code"], w["template"], w["status"]) for w in wallet] == [(codes["c1"], "off20", "issued")]

    # ¥20 off an order of ¥150; the same order again replays, another order is refused.
    use = {"order_id": "A1", "amount_fen": 15000, "channel": "pos", "store_code": "S1"}
    redeemed = api.ok(api.post(f"/coupons/{codes['c1'].lower()}/redeem", pos, use))
    assert redeemed == {"code": codes["c1"], "template": "off20", "kind": "amount_off", "order_id": "A1",
                        "discount_fen": 2000, "replayed": False}  # fmt: skip
    assert api.ok(api.post(f"/coupons/{codes['c1']}/redeem", pos, use)) == {**redeemed, "replayed": True}
    problem(api.post(f"/coupons/{codes['c1']}/redeem", pos, {**use, "order_id": "A2"}), 409, "coupon_not_usable")
    below = {"order_id": "B1", "amount_fen": 9999}  # the threshold is ¥100
    problem(api.post(f"/coupons/{codes['c2']}/redeem", pos, below), 409, "coupon_not_usable")
    stacked = {"order_id": "B1", "amount_fen": 10000, "other_codes": [codes["c3"]]}  # neither is stackable
    problem(api.post(f"/coupons/{codes['c2']}/redeem", pos, stacked), 409, "coupon_not_usable")
    ok = api.ok(api.post(f"/coupons/{codes['c2']}/redeem", pos, {"order_id": "B1", "amount_fen": 10000}))
    assert ok["discount_fen"] == 2000
    problem(api.post("/coupons/NOSUCHCODE/redeem", pos, use), 409, "coupon_not_usable")
    problem(api.post(f"/coupons/{codes['c3']}/redeem", other, use), 404, "unknown_program")
    assert [w["status"] for w in api.ok(api.get("/members/c1", read))["coupons"]] == ["redeemed"]


def test_points_mall(app: App, api: Api, make_key: KeyMaker) -> None:
    read, pos = make_key("shop", "read"), make_key("shop", "read,loyalty")
    for customer, points in (("c1", 1000), ("c2", 200), ("c5", 400), ("c6", 500)):
        api.enrol(pos, customer)
        earn(app, customer, points, f"o-{customer}")
    rewards = api.ok(api.get("/mall", read))["rewards"]
    fields = ("code", "kind", "points", "stock", "per_member_limit", "coupon_template")
    assert [tuple(r[f] for f in fields) for r in rewards] == [
        ("c20", "coupon", 150, None, None, "off20"),
        ("mug", "item", 300, 2, 1, None),
    ]

    def mugs_left() -> int:
        return next(int(r["stock"]) for r in api.ok(api.get("/mall", read))["rewards"] if r["code"] == "mug")

    mug = {"customer_id": "c1", "idempotency_key": "m1"}
    problem(api.post("/mall/mug/redeem", read, mug), 403, "forbidden")
    order = api.ok(api.post("/mall/mug/redeem", pos, mug), 201)
    assert {k: order[k] for k in ("reward", "customer_id", "quantity", "points", "cash_fen", "status")} == {
        "reward": "mug",
        "customer_id": "c1",
        "quantity": 1,
        "points": 300,
        "cash_fen": 0,
        "status": "reserved",
    }
    assert api.ok(api.post("/mall/mug/redeem", pos, mug)) == {**order, "replayed": True}  # 200
    assert (api.balance(read, "c1"), mugs_left()) == (700, 1)
    problem(api.post("/mall/mug/redeem", pos, {**mug, "idempotency_key": "m2"}), 409, "limit_reached")  # 1 each
    problem(api.post("/mall/mug/redeem", pos, {"customer_id": "c2", "idempotency_key": "m3"}), 409,
            "insufficient_points")  # fmt: skip
    assert (api.balance(read, "c2"), mugs_left()) == (200, 1)
    problem(api.post("/mall/cake/redeem", pos, mug), 404, "unknown_reward")
    problem(api.post("/mall/mug/redeem", pos, {**mug, "customer_id": "c9"}), 404, "not_a_member")

    # A coupon reward: the points and the coupon together, or neither.
    coupon = api.ok(api.post("/mall/c20/redeem", pos, {"customer_id": "c5", "idempotency_key": "m5"}), 201)
    assert coupon["points"] == 150 and coupon["coupon_code"]
    assert api.balance(read, "c5") == 250
    wallet = api.ok(api.get("/members/c5", read))["coupons"]
    assert [(w["code"], w["status"]) for w in wallet] == [(coupon["coupon_code"], "issued")]
    # c5 holds the one off20 allowed: a second coupon reward is refused and its points stay.
    problem(api.post("/mall/c20/redeem", pos, {"customer_id": "c5", "idempotency_key": "m6"}), 409, "limit_reached")
    assert api.balance(read, "c5") == 250

    # Cancel: points back, coupon voided, stock restored; cancelling again replays.
    cancel = f"/mall/redemptions/{coupon['id']}/cancel"
    problem(api.post(cancel, read), 403, "forbidden")
    done = api.ok(api.post(cancel, pos))
    assert (done["status"], done["replayed"]) == ("cancelled", False)
    assert api.ok(api.post(cancel, pos))["replayed"] is True
    assert api.balance(read, "c5") == 400
    assert [w["status"] for w in api.ok(api.get("/members/c5", read))["coupons"]] == ["voided"]
    api.ok(api.post(f"/mall/redemptions/{order['id']}/cancel", pos))
    assert (api.balance(read, "c1"), mugs_left()) == (1000, 2)
    problem(api.post("/mall/redemptions/999999/cancel", pos), 404, "not_found")

    # Two mugs left, three members want one.
    api.ok(api.post("/mall/mug/redeem", pos, {"customer_id": "c1", "idempotency_key": "s-c1"}), 201)
    api.ok(api.post("/mall/mug/redeem", pos, {"customer_id": "c5", "idempotency_key": "s-c5"}), 201)
    problem(api.post("/mall/mug/redeem", pos, {"customer_id": "c6", "idempotency_key": "s-c6"}), 409, "out_of_stock")
    assert (mugs_left(), api.balance(read, "c6")) == (0, 500)


def test_enrol_only_customers_of_the_keys_brand(app: App, api: Api, make_key: KeyMaker, tmp_path: Path) -> None:
    """`customer_id` must be a One-ID customer of the key's brand: made-up ids and another brand's
    customers are 404 `unknown_customer`, and nothing is created."""
    pos = make_key("shop", "loyalty")
    problem(api.post("/members", pos, {"customer_id": "not-a-real-customer"}), 404, "unknown_customer")
    problem(api.post("/members", pos, {"customer_id": "o1"}), 404, "unknown_customer")  # brand `other`'s
    # In a group program both brands' keys see the program; each enrols only its own brand's customers.
    group = PROGRAM.replace("shop_club", "pair_club").replace("level: brand", "level: group\ngroup: pair")
    path = tmp_path / "pair_club.yaml"
    path.write_text(group.replace("brands: [shop]", "brands: [shop, other]"), encoding="utf-8")
    do_apply_program(app.store, path, actor="test", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    other = make_key("other", "loyalty")
    pair = "/api/v1/loyalty/pair_club/members"
    refused = api.client.post(pair, json={"customer_id": "c1"}, headers=bearer(other))
    problem(refused, 404, "unknown_customer")
    assert "not a customer of brand other" in refused.json()["detail"]
    assert api.ok(api.client.post(pair, json={"customer_id": "o1"}, headers=bearer(other)), 201)["created"]
    with app.store.unit_of_work() as session:
        assert account_of(session, "shop_club", brand="shop", customer_id="not-a-real-customer") is None
        assert account_of(session, "shop_club", brand="shop", customer_id="o1") is None
        assert account_of(session, "pair_club", brand="other", customer_id="c1") is None
        assert account_of(session, "pair_club", brand="other", customer_id="o1") is not None


def test_member_numbers_are_masked_without_pii(api: Api, make_key: KeyMaker) -> None:
    pos, read = make_key("shop", "loyalty"), make_key("shop", "read")
    pii_read, pii_pos = make_key("shop", "read,pii"), make_key("shop", "loyalty,pii")
    assert api.ok(api.post("/members", pos, {"customer_id": "c2", "member_no": "M013632841"}), 201)["member_no"] == (
        "M01***41"
    )
    assert api.ok(api.get("/members/c2", read))["member_no"] == "M01***41"
    assert api.ok(api.get("/members/c2", pii_read))["member_no"] == "M013632841"
    assert api.ok(api.post("/members", pii_pos, {"customer_id": "c2"}))["member_no"] == "M013632841"
    # A numeric member number masks like a phone, as in the customer 360.
    assert api.ok(api.post("/members", pos, {"customer_id": "c3", "member_no": "13632841"}), 201)["member_no"] == (
        "136****2841"
    )
