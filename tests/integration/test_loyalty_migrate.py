"""Migration from legacy systems (tests/fixtures/loyalty_brand.py), on SQLite and PostgreSQL: enrolment
from memberships with the legacy tier protected, a points_lots CSV with good and bad rows (bad
ones rejected with their line, good ones posted once), opening balances for the members the lots
file does not cover — including the legacy balance of a member whose number was merged into
another brand's number in the group program."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from fixtures.loyalty_brand import BACKENDS, workspace
from siyu.bootstrap import App
from siyu.loyalty.migrate import Migration, import_opening_balances, import_points_lots
from siyu.loyalty.models import LoyaltyAccount, PointsLot
from siyu.loyalty.sync import enrol_only

# The launch instant, 2026-01-01 00:00 in Asia/Shanghai.
MIG_AT = dt.datetime(2025, 12, 31, 16, 0, tzinfo=dt.UTC)
# fixed_calendar, years 1: anything earned in 2026 (local) expires at 2028-01-01 00:00 local
END_2027 = dt.datetime(2027, 12, 31, 16, 0, tzinfo=dt.UTC)
NEVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)

LOTS = """brand,member_no,points,earned_at,expires_at,lot_id
la,LA002,300,2026-01-10T10:00:00+08:00,2028-01-01T00:00:00+08:00,L1
la,NOPE,100,2026-01-10,2027-01-01,L2
la,LA002,100,2026-13-01,2027-01-01,L3
la,LA002,100,2026-05-01,2026-04-01,L4
la,LA002,-50,2026-01-10,2027-01-01,L5
la,LA002,200,2025-06-01T00:00:00+08:00,,L6
lb,LB002,400,2026-01-05T09:00:00+08:00,2027-01-01T00:00:00+08:00,L7
"""

REJECTED = [
    (3, "member_no 'NOPE' is not enrolled (import memberships first)"),
    (4, "earned_at '2026-13-01' is not an ISO date/time"),
    (5, "expires_at is not after earned_at"),
    (6, "points '-50' must be a positive whole number"),
]


def migrate(app: App, lots: Path) -> Migration:
    result = Migration()
    covered = import_points_lots(app, "lg_club", lots, actor="test", result=result)
    import_opening_balances(app, "lg_club", at=MIG_AT, actor="test", skip=covered, result=result)
    return result


def lots_of(app: App) -> dict[str, list[tuple[int, str | None, dt.datetime | None]]]:
    """member_no → [(remaining, brand, expires_at)] in the order the lots were made."""
    found: dict[str, list[tuple[int, str | None, dt.datetime | None]]] = {}
    with app.store.unit_of_work() as s:
        rows = s.execute(
            select(LoyaltyAccount.member_no, PointsLot.remaining, PointsLot.brand, PointsLot.expires_at)
            .join(PointsLot, PointsLot.account_id == LoyaltyAccount.id)
            .order_by(PointsLot.id)
        )
        for member_no, remaining, brand, expires in rows:
            found.setdefault(member_no, []).append((remaining, brand, expires.replace(tzinfo=dt.UTC)))
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_points_lots_and_opening_balances(backend: str, tmp_path: Path) -> None:
    with workspace(backend, tmp_path) as app:
        _scenario(app, tmp_path)


def _scenario(app: App, tmp_path: Path) -> None:
    # LA001 (P in la and, merged by phone, LB001 in lb), LA002 (Q), LA003 (R), LB002 (S)
    assert enrol_only(app, "lg_club", actor="test", at=MIG_AT) == 4
    assert enrol_only(app, "lg_club", actor="test", at=MIG_AT) == 0
    with app.store.unit_of_work() as s:
        q = s.scalar(select(LoyaltyAccount).where(LoyaltyAccount.member_no == "LA002"))
        assert q is not None
        # legacy 金卡 → gold, protected for 3 months from the migration day 2025-12-31 → 2026-03-31
        assert (q.tier, q.tier_protected_until.replace(tzinfo=dt.UTC)) == (  # type: ignore[union-attr]
            "gold",
            dt.datetime(2026, 3, 31, tzinfo=dt.UTC),
        )

    path = tmp_path / "points_lots.csv"
    path.write_text(LOTS, encoding="utf-8")
    first = migrate(app, path)
    # good lines 2 (300), 7 (200, no expiry) and 8 (400) → 3 lots, 900 points; the file covers
    # LA002 and LB002, so their memberships.points_balance (500, 50) are not loaded again.
    # Opening balances: LA001 1,000 (la) and LB001's 200 (lb) — LB001 is P's legacy lb number,
    # merged into account LA001 — → 2 lots, 1,200 points
    assert (first.lots, first.opening, first.points, first.rejected) == (3, 2, 900 + 1_200, REJECTED)

    assert lots_of(app) == {
        "LA002": [(300, "la", END_2027), (200, "la", NEVER)],
        "LB002": [(400, "lb", dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC))],
        # opening lots dated max(migration instant, joined_at): LA001 at 2026-01-01 00:00 local,
        # LB001 at 2026-01-10 10:00 local; both expire at the end of 2027 (local)
        "LA001": [(1_000, "la", END_2027), (200, "lb", END_2027)],
    }
    with app.store.unit_of_work() as s:
        balances = dict(s.execute(select(LoyaltyAccount.member_no, LoyaltyAccount.balance)).all())  # type: ignore[arg-type]
    assert balances == {"LA001": 1_200, "LA002": 500, "LA003": 0, "LB002": 400}

    # a rerun posts nothing and reports the same bad lines
    again = migrate(app, path)
    assert (again.lots, again.opening, again.points, again.rejected) == (0, 0, 0, REJECTED)
    assert sum(len(v) for v in lots_of(app).values()) == 3 + 2

    # a later lots file of the lb legacy system names P by the lb number LB001: the lot goes to
    # the shared account LA001 (brand lb), and LB001 counts as covered
    more = tmp_path / "points_lots_lb.csv"
    more.write_text(
        "brand,member_no,points,earned_at,expires_at,lot_id\nlb,LB001,70,2026-01-02T10:00:00+08:00,,L8\n",
        encoding="utf-8",
    )
    late = Migration()
    assert import_points_lots(app, "lg_club", more, actor="test", result=late) == {"LB001"}
    assert (late.lots, late.points, late.rejected) == (1, 70, [])
    assert lots_of(app)["LA001"][-1] == (70, "lb", NEVER)
