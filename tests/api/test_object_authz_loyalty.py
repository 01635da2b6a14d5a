"""OWASP API1 for loyalty objects, over real HTTP: members (accounts), points transactions, mall
redemptions and coupons of the group of tests/fixtures/loyalty_brand.py (brands la and lb,
program lg_club), asked for by keys that may not see them. Every route that takes an object —
in its path or its body — answers 404, never 403 or 200:

- a key of another brand (zz, outside the program), every scope: any la object;
- a key of lb (in the same group program): Q, a member in la only (their account, their
  transactions, their redemption);
- a key bound to store st1 (Q's store) and a key bound to guide g1 (Q's guide): R's objects
  (store st2, guide g2). The same routes answer Q's objects, so the 404s are not vacuous.

tests/api/test_object_authorisation.py walks every route for another brand's customer ids; this
file adds the loyalty objects the walk cannot make up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.conftest import bearer, running
from fixtures.loyalty_brand import PROGRAM, SYNC_AT, build, customer_id
from siyu.api.keys import do_create_key, parse_scopes
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.guides.models import CurrentBinding
from siyu.ingest.importer import import_path
from siyu.loyalty import mall
from siyu.loyalty.coupons import do_issue_coupon
from siyu.loyalty.models import LoyaltyAccount
from siyu.loyalty.points import do_earn
from siyu.loyalty.programs import load_program
from siyu.loyalty.sync import enrol_only

BASE = "/api/v1/loyalty/lg_club"
WITH_MALL = PROGRAM + "mall:\n  - {code: mug, name_zh: 马克杯, name_en: Mug, kind: item, points: 10, stock: 10}\n"
SCOPE_FILES = {  # Q's store and guide are st1 / g1, R's st2 / g2
    "customers.csv": "brand,source,source_customer_id,phone,store_code\n"
    "la,crm,q1,13900000002,st1\nla,crm,r1,13900000003,st2\n",
}


def _key(app: App, brand: str, scopes: str, *, store: str | None = None, staff: str | None = None) -> str:
    with app.store.begin(Actor.system("tests")) as uow:
        secret, _ = do_create_key(uow, brand, parse_scopes([scopes]), None, None, None, staff_id=staff, store=store)
    return secret


def _objects(app: App, source_customer_id: str, member_no: str) -> dict[str, Any]:
    """customer id, a points transaction, a mall redemption and a coupon code of a member."""
    with app.store.write_unit() as session:
        program = load_program(session, "lg_club")
        account = session.scalar(select(LoyaltyAccount).where(LoyaltyAccount.member_no == member_no))
        assert account is not None
        txn = do_earn(session, program, account.id, 100, key=f"e-{member_no}", at=SYNC_AT, actor="t", brand="la").txn_id
        order = mall.do_mall_redeem(session, program, "mug", account.id, key=f"mug-{member_no}", at=SYNC_AT, actor="t")
        coupon = do_issue_coupon(session, program, "gold_gift", account.id, key=f"c-{member_no}", at=SYNC_AT, actor="t")
    return {
        "customer": customer_id(app, "la", source_customer_id),
        "txn": txn,
        "redemption": order.id,
        "coupon": coupon.code,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, str, dict[str, Any], dict[str, Any]]]:
    root = tmp_path_factory.mktemp("authz_loyalty")
    app = build(root, f"sqlite:///{root / 'store.db'}", program=WITH_MALL)
    enrol_only(app, "lg_club", at=SYNC_AT)  # accounts only: the points are posted directly (a sync costs seconds)
    scope = root / "scope"
    scope.mkdir()
    for name, text in SCOPE_FILES.items():
        (scope / name).write_text(text, encoding="utf-8")
    assert import_path(app, scope).as_json()["total"]["quarantined"] == 0
    q, r = _objects(app, "q1", "LA002"), _objects(app, "r1", "LA003")
    with app.store.write_unit() as session:
        for person, staff in ((q, "g1"), (r, "g2")):
            session.add(CurrentBinding(brand="la", customer_id=person["customer"], scope="brand", staff_id=staff,
                                       store_code=None, source="manual", since=SYNC_AT))  # fmt: skip
    with running(app) as url:
        yield app, url, q, r
    app.store.engine.dispose()


def _requests(o: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every loyalty route that takes one of the member's objects, with a valid body."""
    c, n = o["customer"], 0
    key = f"k-{c}"
    return [
        ("GET", f"{BASE}/members/{c}", None),
        ("GET", f"{BASE}/members/{c}/points", None),
        ("POST", f"{BASE}/members", {"customer_id": c}),
        ("POST", f"{BASE}/members/{c}/points/redeem", {"points": 1, "idempotency_key": f"{key}-r{n}"}),
        ("POST", f"{BASE}/members/{c}/points/adjust", {"points": 1, "reason": "t", "idempotency_key": f"{key}-a"}),
        ("POST", f"{BASE}/points/{o['txn']}/reverse", {"points": 1, "idempotency_key": f"{key}-v"}),
        ("POST", f"{BASE}/mall/mug/redeem", {"customer_id": c, "idempotency_key": f"{key}-m"}),
        ("POST", f"{BASE}/mall/redemptions/{o['redemption']}/cancel", None),
    ]


def _statuses(url: str, key: str, requests: list[tuple[str, str, dict[str, Any] | None]]) -> dict[str, int]:
    with httpx.Client(base_url=url, timeout=60) as http:
        return {f"{m} {p}": http.request(m, p, json=b, headers=bearer(key)).status_code for m, p, b in requests}


def _issue(url: str, key: str, customer: str) -> dict[str, Any]:
    body = {"template": "gold_gift", "customer_ids": [customer], "idempotency_key": f"i-{key[-6:]}-{customer}"}
    with httpx.Client(base_url=url, timeout=60) as http:
        got = http.post(f"{BASE}/coupons/issue", json=body, headers=bearer(key))
    assert got.status_code in (200, 201), got.text
    return dict(got.json())


def test_another_brand_store_and_guide_get_404_for_loyalty_objects(world: Any) -> None:
    app, url, q, r = world
    everything = "admin,read,loyalty,pii"
    zz = _key(app, "zz", everything + ",ingest")
    lb = _key(app, "lb", everything)
    store, guide = _key(app, "la", everything, store="st1"), _key(app, "la", everything, staff="g1")
    cases = {"brand zz": (zz, q), "brand lb": (lb, q), "store st1": (store, r), "guide g1": (guide, r)}
    leaks = {}
    for who, (key, victim) in cases.items():
        got = _statuses(url, key, _requests(victim))
        leaks |= {f"{who}: {route}": status for route, status in got.items() if status != 404}
        # issuing to someone the key may not see issues nothing (they are "not members" to it)
        if who != "brand zz":
            assert _issue(url, key, victim["customer"])["issued"] == 0, who
    with httpx.Client(base_url=url, timeout=60) as http:  # a coupon code of another brand's member
        body = {"order_id": "X1", "amount_fen": 10_000}
        got = http.post(f"{BASE}/coupons/{q['coupon']}/redeem", json=body, headers=bearer(zz))
        if got.status_code != 404:
            leaks["brand zz: coupon redeem"] = got.status_code
    assert not leaks, leaks
    # …and the same routes answer the objects the bound keys may see (Q is st1's and g1's)
    for key in (store, guide):
        mine = _statuses(url, key, _requests(q)[:2])
        assert set(mine.values()) == {200}, mine
    assert _issue(url, store, q["customer"])["skipped"] == {"limit_reached": 1}  # Q holds gold_gift already
