"""Tiers against the hand-made group of tests/fixtures/loyalty_brand.py, on SQLite and PostgreSQL:
upgrades on sync (reason text, history, tier coupon, protection), the periodic evaluation's
downgrades blocked until the protection period ends (to the second), and the trailing window."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from fixtures.loyalty_brand import BACKENDS, SYNC_AT, reimport, workspace
from siyu.bootstrap import App
from siyu.loyalty.coupons import coupons_of
from siyu.loyalty.models import LoyaltyAccount, TierChange
from siyu.loyalty.sync import sync
from siyu.loyalty.tiers import TierRun, evaluate

# R buys ¥2,000 of 洁面 on 2026-05-01 (after the first sync made R silver)
R6 = """brand,source,order_id,source_customer_id,status,paid_at,amount_fen,refund_fen,points_used
la,crm,R6,r1,completed,2026-05-01T12:00:00+08:00,200000,0,
"""


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def state(app: App) -> dict[str, tuple[str, int, dt.datetime | None]]:
    """member_no → (tier, growth, protected until)."""
    with app.store.unit_of_work() as s:
        return {
            a.member_no: (
                a.tier,
                a.growth,
                a.tier_protected_until.replace(tzinfo=dt.UTC) if a.tier_protected_until else None,
            )
            for a in s.scalars(select(LoyaltyAccount))
        }


def history(app: App, member_no: str) -> list[tuple[str | None, str, str, dt.datetime]]:
    with app.store.unit_of_work() as s:
        account = s.scalar(select(LoyaltyAccount).where(LoyaltyAccount.member_no == member_no))
        assert account is not None
        rows = s.scalars(select(TierChange).where(TierChange.account_id == account.id).order_by(TierChange.id))
        return [(h.from_tier, h.to_tier, h.reason, h.at.replace(tzinfo=dt.UTC)) for h in rows]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_protection_and_downgrade(backend: str, tmp_path: Path) -> None:
    with workspace(backend, tmp_path) as app:
        _scenario(app, tmp_path)


def _scenario(app: App, tmp_path: Path) -> None:
    # 1. first sync as of 2026-04-15T00:00Z
    assert sync(app, "lg_club", at=SYNC_AT, actor="test").upgraded == 1
    assert state(app) == {
        # P: A0 100 (paid after P's enrolment; the launch day gates points, not growth) + A1 300
        # + B1 (20,000 − 5,000)/100 = 150 → 550 < 1,000
        "LA001": ("regular", 550, None),
        # Q: legacy 金卡 kept, protected for 3 months from the enrolment run: 2026-07-15T00:00Z;
        # growth Q1 100 + Q2 100 = 200
        "LA002": ("gold", 200, utc(2026, 7, 15)),
        # R: 1,000 + 50 × 3 + (200 − 200) = 1,150 ≥ 1,000 → silver, protected 3 months from the upgrade
        "LA003": ("silver", 1_150, utc(2026, 7, 15)),
        "LB002": ("regular", 100, None),  # S1 100
    }
    assert history(app, "LA003") == [
        (None, "regular", "enrolled (membership)", utc(2026, 2, 14, 16)),  # joined 02-15 00:00 local
        ("regular", "silver", "upgrade: growth 成长值 1150 ≥ silver 1000", SYNC_AT),
    ]

    # 2. R6 (¥2,000) is posted at silver: ⌊2,000 × 1.1⌋ = 2,200 points; growth 1,150 + 2,000 = 3,150
    # ≥ gold 3,000 → upgrade, the gold tier's coupon, protection until 2026-05-02 + 3 months
    reimport(app, tmp_path / "r6", R6)
    second = sync(app, "lg_club", at=utc(2026, 5, 2), actor="test")
    assert (second.orders, second.earned, second.upgraded) == (1, 2_200, 1)
    assert state(app)["LA003"] == ("gold", 3_150, utc(2026, 8, 2))
    assert history(app, "LA003")[-1] == ("silver", "gold", "upgrade: growth 成长值 3150 ≥ gold 3000", utc(2026, 5, 2))
    with app.store.unit_of_work() as s:
        account = s.scalar(select(LoyaltyAccount).where(LoyaltyAccount.member_no == "LA003"))
        assert account is not None
        issued = [(c.template, c.status) for c in coupons_of(s, account.id)]
    assert issued == [("gold_gift", "issued")]

    # 3. one second before Q's protection ends nothing moves (Q's 200 < gold's 3,000 would)
    assert evaluate(app, "lg_club", at=utc(2026, 7, 14, 23, 59, 59), actor="test") == TierRun(4, 0, 0)
    assert state(app)["LA002"][0] == "gold"

    # 4. at the instant it ends Q goes down to the tier its 200 growth earns; R is still protected
    assert evaluate(app, "lg_club", at=utc(2026, 7, 15), actor="test") == TierRun(4, 0, 1)
    assert history(app, "LA002")[-1] == (
        "gold",
        "regular",
        "periodic downgrade: growth 成长值 200 < gold 3000",
        utc(2026, 7, 15),
    )
    assert evaluate(app, "lg_club", at=utc(2026, 7, 15), actor="test") == TierRun(4, 0, 0)  # nothing left to do

    # 5. 2027-02-15T00:00Z: the 12-month window starts 2026-02-15T00:00Z, so R1 (2026-02-14T16:00Z)
    # has left it: R's growth = R2 + R3 + R4 50 × 3 + R5 0 + R6 2,000 = 2,150 → silver.
    # P: only B1 150 left; S: 0; Q: 200 — all already regular.
    assert evaluate(app, "lg_club", at=utc(2027, 2, 15), actor="test") == TierRun(4, 0, 1)
    assert state(app) == {
        "LA001": ("regular", 150, None),
        "LA002": ("regular", 200, utc(2026, 7, 15)),
        "LA003": ("silver", 2_150, utc(2026, 8, 2)),
        "LB002": ("regular", 0, None),
    }
    assert [(h[0], h[1]) for h in history(app, "LA003")] == [
        (None, "regular"),
        ("regular", "silver"),
        ("silver", "gold"),
        ("gold", "silver"),
    ]
    assert history(app, "LA003")[-1][2] == "periodic downgrade: growth 成长值 2150 < gold 3000"
