"""An order posted over HTTP for an existing member earns its points within one loader cycle: the
import's commit writes `OrdersLanded`, and the loader runs the `loyalty_posting` handler after the
batch (it used to post only after an identity change, so such an order never earned)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from api.conftest import KeyMaker, bearer, running
from fixtures.outbox_wait import settle
from siyu.bootstrap import App
from siyu.ingest.loader import Loader
from siyu.loyalty.programs import do_apply_program

PROGRAM = """\
version: 1
program: shop_club
level: brand
brands: [shop]
timezone: Asia/Shanghai
enrolment: [membership, api]
tiers:
  levels:
    - {code: member, name_zh: 会员, name_en: Member, threshold: 0}
points:
  per_yuan: 1
  expiry: {policy: never}
"""


def test_an_api_order_of_a_member_earns_in_one_loader_cycle(app: App, tmp_path: Path, make_key: KeyMaker) -> None:
    program = tmp_path / "shop_club.yaml"
    program.write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, program, actor="test", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    ingest, loyalty = make_key("shop", "ingest"), make_key("shop", "read,loyalty")
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        customer = {"source": "pos", "source_customer_id": "c1", "phone": "13900000077"}
        assert client.post("/api/v1/ingest/customers", json=[customer], headers=bearer(ingest)).status_code == 200
        Loader(app).drain()  # loads the customer and resolves One-ID
        found = client.get("/api/v1/customers", params={"phone": "13900000077"}, headers=bearer(loyalty))
        (customer_id,) = found.json()["customers"]
        enrolled = client.post(
            "/api/v1/loyalty/shop_club/members", json={"customer_id": customer_id}, headers=bearer(loyalty)
        )
        assert enrolled.status_code == 201, enrolled.text

        # 128.50 yuan paid after enrolling → ⌊128.5 × 1⌋ = 128 points
        paid_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
        order = {"source": "pos", "order_id": "A1", "source_customer_id": "c1", "status": "paid",
                 "amount_fen": 12850, "paid_at": paid_at}  # fmt: skip
        assert client.post("/api/v1/ingest/orders", json=[order], headers=bearer(ingest)).status_code == 200
        loader = Loader(app, max_age=0.0)
        result = loader.tick()  # one cycle: load the batch, then the event handlers
        assert result is not None and result.messages == 1
        # On a shared PostgreSQL server another test worker's open transaction can keep the new
        # events from being final during that cycle (siyu.events.outbox); then the next run takes them.
        settle(app.store)
        loader.handle_events()
        member = client.get(f"/api/v1/loyalty/shop_club/members/{customer_id}", headers=bearer(loyalty)).json()
        assert member["points"]["balance"] == 128
        # a second cycle with nothing new changes nothing (the posting is exactly once)
        loader.tick()
        again = client.get(f"/api/v1/loyalty/shop_club/members/{customer_id}", headers=bearer(loyalty)).json()
        assert again["points"]["balance"] == 128
