"""`siyu.loyalty.sync` against the hand-made group of tests/fixtures/loyalty_brand.py, on SQLite and
PostgreSQL: enrolment, base points, tier and birthday multipliers, campaign bonus at the midnight
edges, points used and restored, refunds, exactly-once, cross-brand settlement, customer view.

The workspace is built and synced once per backend (a sync compiles a few large Ibis queries);
the read-only tests come first, `test_exactly_once_then_bigger_refund_then_first_order` changes
the workspace and is last in the file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fixtures.loyalty_brand import BACKENDS, FIRST_SYNC, PROGRAM, REFUND_CHANGE, SYNC_AT, backend_url, build, reimport
from siyu.bootstrap import App
from siyu.customers.view import _loyalty, customer_view
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.loyalty.members import member_summary
from siyu.loyalty.models import AccountLink, LoyaltyAccount, OrderPosting, PointsTxn
from siyu.loyalty.programs import do_apply_program
from siyu.loyalty.settlement import SettlementLine, settlement
from siyu.loyalty.sync import SyncResult, sync

Synced = tuple[App, SyncResult, Path]


@pytest.fixture(scope="module", params=BACKENDS)
def synced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    root = tmp_path_factory.mktemp(f"lg_{request.param}")
    with backend_url(request.param, root) as url:
        app = build(root, url)
        result = sync(app, "lg_club", at=SYNC_AT, actor="test")
        yield app, result, root
        app.store.engine.dispose()


def accounts(app: App) -> dict[str, LoyaltyAccount]:
    with app.store.unit_of_work() as s:
        rows = list(s.scalars(select(LoyaltyAccount).where(LoyaltyAccount.program == "lg_club")))
        s.expunge_all()
    return {a.member_no: a for a in rows}


def ledger(app: App, member_no: str) -> list[tuple[str, int, int, str | None, str]]:
    """(kind, points, balance_after, brand, idempotency key) in posting order."""
    with app.store.unit_of_work() as s:
        account = s.scalar(select(LoyaltyAccount).where(LoyaltyAccount.member_no == member_no))
        assert account is not None
        txns = s.scalars(select(PointsTxn).where(PointsTxn.account_id == account.id).order_by(PointsTxn.id))
        return [(t.kind, t.points, t.balance_after, t.brand, t.idempotency_key) for t in txns]


def test_first_sync_counts(synced: Synced) -> None:
    _, result, _ = synced
    assert result.as_dict() == FIRST_SYNC


def test_base_points_rules_and_edges(synced: Synced) -> None:
    app, _, _ = synced
    assert ledger(app, "LA003") == [
        # R0 (02-14 23:59:59 local) is one second before R's enrolment (02-15 00:00 local): nothing.
        # R1 at the enrolment instant: 面霜 60,000 ×2 + 精华 40,000 ×1 → m = 160,000/100,000 = 1.6
        # → ⌊1,000 × 1.6⌋ = 1,600
        ("earn", 1_600, 1_600, "la", "order:la:crm:R1"),
        # R4 03-07 23:59:59 local: the day before the campaign → 5,000 fen → 50, no bonus
        ("earn", 50, 1_650, "la", "order:la:crm:R4"),
        # R2 03-08 00:00 local (03-07T16:00Z, still the 7th in UTC): campaign day → 50 + 88
        ("earn", 138, 1_788, "la", "order:la:crm:R2"),
        # R3 03-09 00:00 local (03-08T16:00Z, the campaign day in UTC): the day after → 50
        ("earn", 50, 1_838, "la", "order:la:crm:R3"),
        # R5 20,000 fen fully refunded: 200 earned, then all 200 taken back (⌊200 × 20,000/20,000⌋)
        ("earn", 200, 2_038, "la", "order:la:crm:R5"),
        ("reverse", -200, 1_838, "la", "order:la:crm:R5:refund:20000:earn"),
    ]
    with app.store.unit_of_work() as s:
        query = select(PointsTxn.order_id, PointsTxn.reason).where(PointsTxn.order_id.in_(["R2", "Q1"]))
        reasons = {order: reason for order, reason in s.execute(query)}
    assert reasons == {"R2": "order 订单 base 50 × 1 + bonus 88", "Q1": "order 订单 base 200 × 2.4"}


def test_tier_and_birthday_month_in_local_time(synced: Synced) -> None:
    app, _, _ = synced
    q = accounts(app)["LA002"]
    # legacy tier 金卡 is the gold tier (by its Chinese name); birthday 1990-03-15 → month 3
    assert (q.tier, q.birthday_month, q.balance) == ("gold", 3, 600)
    assert ledger(app, "LA002") == [
        # Q1 2026-03-01 00:30 local = 02-28T16:30Z: March locally → 面霜 ×2: 200 base × 1.2 × 2 = 480
        ("earn", 480, 480, "la", "order:la:crm:Q1"),
        # Q2 2026-04-01 07:00 local = 03-31T23:00Z: April locally → 100 base × 1.2 = 120
        ("earn", 120, 600, "la", "order:la:crm:Q2"),
    ]


def test_insufficient_points_redeem_nothing_but_still_earn(synced: Synced) -> None:
    app, _, _ = synced
    # S1 uses 500 points with a balance of 0: the redemption is refused as a whole, the order
    # still earns ⌊100 × 1⌋ = 100
    assert ledger(app, "LB002") == [("earn", 100, 100, "lb", "order:lb:crm:S1")]


def test_shared_member_across_brands_redeems_and_restores(synced: Synced) -> None:
    app, _, _ = synced
    found = accounts(app)
    # LB001 (P in lb) shares the number of P's earlier membership LA001: one account, two links
    assert sorted(found) == ["LA001", "LA002", "LA003", "LB002"]
    p = found["LA001"]
    assert (p.brand, p.tier, p.enrolled_at.replace(tzinfo=dt.UTC)) == (
        "la",
        "regular",
        dt.datetime(2025, 12, 1, 2, 0, tzinfo=dt.UTC),  # LA001 joined 2025-12-01 10:00 local
    )
    with app.store.unit_of_work() as s:
        links = sorted(s.scalars(select(AccountLink.brand).where(AccountLink.account_id == p.id)))
    assert links == ["la", "lb"]
    assert ledger(app, "LA001") == [
        # A0 (2025-12-31 23:59:59 local) is one second before the launch day: nothing.
        # A1 at 2026-01-01 00:00 local: m = (20,000 × 2 + 10,000 × 1)/30,000 = 5/3 → ⌊300 × 5/3⌋ = 500
        ("earn", 500, 500, "la", "order:la:crm:A1"),
        # B1 in lb uses 300 points (from the la lot) before earning its own 200
        ("redeem", -300, 200, "lb", "order:lb:crm:B1:redeem"),
        ("earn", 200, 400, "lb", "order:lb:crm:B1"),
        # refund 5,000 of 20,000: ⌊200 × 5,000/20,000⌋ = 50 back, ⌊300 × 5,000/20,000⌋ = 75 restored
        ("reverse", -50, 350, "lb", "order:lb:crm:B1:refund:5000:earn"),
        ("reverse", 75, 425, "lb", "order:lb:crm:B1:refund:5000:redeem"),
    ]


def test_settlement_earned_in_la_spent_in_lb(synced: Synced) -> None:
    app, _, _ = synced
    with app.store.unit_of_work() as s:
        # 300 la points spent in lb, 75 restored: 225 × 0.5 fen = 112.5 → 113 (half up)
        assert settlement(s, "lg_club") == [SettlementLine("la", "lb", 225, 113)]
        # the window is by the redemption's time (2026-04-01T02:00Z)
        april = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
        assert settlement(s, "lg_club", end=april) == []
        assert settlement(s, "lg_club", start=april) == [SettlementLine("la", "lb", 225, 113)]


def test_member_summary_and_customer_view_masking(synced: Synced) -> None:
    app, _, _ = synced
    view = customer_view(app, "13900000001", brand="la")
    (loyalty,) = view["loyalty"]
    assert (loyalty["program"], loyalty["member_no"], loyalty["tier"], loyalty["tier_name_zh"]) == (
        "lg_club",
        "LA0***01",  # masked: first 3 and last 2 characters
        "regular",
        "普通会员",
    )
    assert loyalty["points"]["balance"] == 425 and loyalty["points"]["debt"] == 0
    # the lots left: A1's lot 500 − 300 + 75 = 275 (restored into the lot it came from) and B1's
    # lot 200 − 50 = 150; both earned in 2026 → expire at 2028-01-01 00:00 local = 2027-12-31T16:00Z
    assert loyalty["points"]["lots"] == [
        {"points": 275, "brand": "la", "expires_at": "2027-12-31T16:00:00+00:00"},
        {"points": 150, "brand": "lb", "expires_at": "2027-12-31T16:00:00+00:00"},
    ]
    assert sorted(c["brand"] for c in loyalty["customers"]) == ["la", "lb"]
    # unmasked for PII-scoped callers (the same function customer_view calls with mask=False; the
    # whole view takes seconds to build, once is enough)
    (plain,) = _loyalty(app, "la", view["customer_id"], mask=False)
    assert plain["member_no"] == "LA001" and {**plain, "member_no": "LA0***01"} == loyalty
    with app.store.unit_of_work() as s:
        account = s.scalar(select(LoyaltyAccount).where(LoyaltyAccount.member_no == "LA003"))
        assert account is not None
        summary: dict[str, Any] = member_summary(s, account)
    assert (summary["member_no"], summary["tier"], summary["growth"], summary["points"]["balance"]) == (
        "LA003",
        "silver",
        1_150,
        1_838,
    )
    assert [(h["from"], h["to"], h["reason"]) for h in summary["tier_history"]] == [
        ("regular", "silver", "upgrade: growth 成长值 1150 ≥ silver 1000"),
        (None, "regular", "enrolled (membership)"),
    ]


def test_exactly_once_then_bigger_refund_then_first_order(synced: Synced) -> None:
    app, _, root = synced
    assert accounts(app)["LA001"].balance == 425  # the state the tests above saw
    with app.store.unit_of_work() as s:
        keys = set(s.scalars(select(OrderPosting.key).where(OrderPosting.program == "lg_club")))
    # one posting per order and one per refund amount handled
    assert {k for k in keys if "B1" in k or "R5" in k} == {
        "order:lb:crm:B1",
        "order:lb:crm:B1:refund:5000",
        "order:la:crm:R5",
        "order:la:crm:R5:refund:20000",
    }

    # 1. a second sync of an unchanged lake posts nothing
    again = sync(app, "lg_club", at=SYNC_AT, actor="test")
    assert (again.enrolled, again.orders, again.earned, again.redeemed, again.reversed) == (0, 0, 0, 0, 0)
    assert again.problems == {}  # S1's refused redemption is not retried

    # 2. B1 re-exported with 10,000 fen refunded instead of 5,000: only the difference moves.
    # earned: ⌊200 × 10,000/20,000⌋ = 100, 50 already back → 50 more; used: ⌊300 × ½⌋ = 150,
    # 75 already restored → 75 more
    reimport(app, root / "refund_change", REFUND_CHANGE)
    changed = sync(app, "lg_club", at=SYNC_AT, actor="test")
    assert (changed.orders, changed.earned, changed.reversed) == (0, 0, 50 + 75)
    assert ledger(app, "LA001")[-2:] == [
        ("reverse", -50, 375, "lb", "order:lb:crm:B1:refund:10000:earn"),
        ("reverse", 75, 450, "lb", "order:lb:crm:B1:refund:10000:redeem"),
    ]
    # P's growth: A0 100 (after P's enrolment; the launch day only gates points) + A1 300
    # + B1 (20,000 − 10,000)/100 = 100 → 500
    assert accounts(app)["LA001"].growth == 500
    with app.store.unit_of_work() as s:
        # 300 spent − 150 restored = 150 × 0.5 fen = 75
        assert settlement(s, "lg_club") == [SettlementLine("la", "lb", 150, 75)]

    # 3. version 2 adds the first_order trigger: T (no membership) enrols at T1's payment and earns
    v2 = root / "lg_club_v2.yaml"
    v2.write_text(
        PROGRAM.replace("version: 1", "version: 2").replace("[membership, api]", "[membership, api, first_order]"),
        encoding="utf-8",
    )
    assert do_apply_program(app.store, v2, actor="test", at=SYNC_AT).status == "updated"
    first = sync(app, "lg_club", at=SYNC_AT, actor="test")
    # T1 2026-02-01 12:00 local, 10,000 fen 洁面 → 100 points; nothing else is new
    assert (first.enrolled, first.orders, first.earned) == (1, 1, 100)
    t = [a for a in accounts(app).values() if a.enrolled_via == "first_order"]
    assert len(t) == 1 and t[0].member_no.startswith("la-") and t[0].balance == 100
    assert t[0].enrolled_at.replace(tzinfo=dt.UTC) == dt.datetime(2026, 2, 1, 4, 0, tzinfo=dt.UTC)

    # 4. version 3 adds the wecom_friend trigger: U (a new customer, no order, no membership)
    # becomes a WeCom friend on 2026-03-01 09:00 local → enrolled then, via wecom_friend
    folder = root / "wecom"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "brand,source,source_customer_id,phone\nla,wecom,u1,13900000006\n", encoding="utf-8"
    )
    (folder / "relations.csv").write_text(
        "brand,source,field,relation_type,source_customer_id,started_at,ended_at\n"
        "la,wecom,wecom,wecom_friend,u1,2026-03-01T09:00:00+08:00,\n",
        encoding="utf-8",
    )
    assert import_path(app, folder).as_json()["total"]["quarantined"] == 0
    run_resolve(app)
    v3 = root / "lg_club_v3.yaml"
    v3.write_text(
        PROGRAM.replace("version: 1", "version: 3").replace(
            "[membership, api]", "[membership, api, first_order, wecom_friend]"
        ),
        encoding="utf-8",
    )
    assert do_apply_program(app.store, v3, actor="test", at=SYNC_AT).status == "updated"
    friend = sync(app, "lg_club", at=SYNC_AT, actor="test")
    assert (friend.enrolled, friend.orders) == (1, 0)
    u = [a for a in accounts(app).values() if a.enrolled_via == "wecom_friend"]
    assert len(u) == 1 and u[0].balance == 0
    assert u[0].enrolled_at.replace(tzinfo=dt.UTC) == dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.UTC)
