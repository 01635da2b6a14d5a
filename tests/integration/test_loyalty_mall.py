"""The points mall against the real store (SQLite and PostgreSQL): points and stock move together,
limits, all-or-nothing refusals, cancellation back to the same lots, coupon rewards."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from siyu.bootstrap import App, bootstrap
from siyu.cli.app import app as siyu_cli
from siyu.config import Settings
from siyu.loyalty import coupons, mall
from siyu.loyalty.accounts import do_enrol, utc
from siyu.loyalty.errors import (
    CouponError,
    IdempotencyConflictError,
    InsufficientPointsError,
    LimitError,
    StockError,
)
from siyu.loyalty.models import Coupon, LoyaltyAccount, MallRedemption, MallReward, PointsLot
from siyu.loyalty.points import do_earn
from siyu.loyalty.programs import do_apply_program, load_program

AT = dt.datetime(2026, 6, 10, 2, 0, tzinfo=dt.UTC)
END_2026 = dt.datetime(2026, 12, 31, 16, tzinfo=dt.UTC)
END_2027 = dt.datetime(2027, 12, 31, 16, tzinfo=dt.UTC)

PROGRAM = """
version: 1
program: club
level: brand
brands: [b1]
tiers: {levels: [{code: regular, threshold: 0}]}
coupons:
  - {code: off20, kind: amount_off, threshold_fen: 20000, amount_fen: 2000, valid_days: 30, per_customer_limit: 1}
  - {code: gone, kind: amount_off, amount_fen: 500, valid_days: 30, stock: 0}
mall:
  - {code: mug, kind: item, points: 800, stock: 3, per_member_limit: 2}
  - {code: cpn, kind: coupon, coupon: off20, points: 1500}
  - {code: none_left, kind: coupon, coupon: gone, points: 100}
  - {code: spa, kind: benefit, points: 3000, cash_fen: 9900}
"""


def setup(app: App, tmp_path: Path, *balances: int) -> list[int]:
    """One account per balance, its points in one lot expiring at the end of 2027 (Shanghai)."""
    path = tmp_path / "club.yaml"
    path.write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, path, actor="test", at=AT)
    ids = []
    with app.store.write_unit() as s:
        program = load_program(s, "club")
        for i, points in enumerate(balances):
            account = do_enrol(s, program, brand="b1", customer_id=f"c{i}", at=AT, actor="test", via="api").account_id
            if points:
                do_earn(s, program, account, points, key=f"earn:{i}", at=AT, actor="test", expires_at=END_2027)
            ids.append(account)
    return ids


def buy(app: App, reward: str, account: int, key: str, quantity: int = 1) -> mall.MallOrder:
    with app.store.write_unit() as s:
        return mall.do_mall_redeem(
            s, load_program(s, "club"), reward, account, key=key, at=AT, actor="t", quantity=quantity
        )


def cancel(app: App, redemption: int) -> mall.MallOrder:
    with app.store.write_unit() as s:
        return mall.do_mall_cancel(s, load_program(s, "club"), redemption, at=AT + dt.timedelta(hours=1), actor="t")


def state(app: App, account: int, reward: str = "mug") -> tuple[int, int | None, int]:
    """(balance, reward stock left, redemptions on record)."""
    with app.store.unit_of_work() as s:
        balance = s.get(LoyaltyAccount, account).balance  # type: ignore[union-attr]
        stock = s.get(MallReward, ("club", reward)).stock  # type: ignore[union-attr]
        n = s.scalar(select(func.count()).select_from(MallRedemption)) or 0
    return balance, stock, n


def remaining_by_expiry(app: App) -> dict[dt.datetime | None, int]:
    with app.store.unit_of_work() as s:
        return {utc(lot.expires_at) if lot.expires_at else None: lot.remaining for lot in s.scalars(select(PointsLot))}


def test_redeem_debits_points_and_stock_together(app: App, tmp_path: Path) -> None:
    (a,) = setup(app, tmp_path, 2_000)
    order = buy(app, "mug", a, "m1")
    assert (order.points, order.cash_fen, order.status, order.coupon_code, order.replayed) == (
        800,
        0,
        "reserved",
        None,
        False,
    )
    assert state(app, a) == (1_200, 2, 1)  # 2,000 − 800 points; stock 3 → 2
    again = buy(app, "mug", a, "m1")
    assert (again.id, again.replayed) == (order.id, True)
    assert state(app, a) == (1_200, 2, 1)
    with pytest.raises(IdempotencyConflictError):
        buy(app, "spa", a, "m1")


def test_per_member_limit_and_stock(app: App, tmp_path: Path) -> None:
    a, b = setup(app, tmp_path, 5_000, 5_000)
    buy(app, "mug", a, "a1", quantity=2)
    with pytest.raises(LimitError, match="limit is 2"):
        buy(app, "mug", a, "a2")
    with pytest.raises(StockError, match="1 left, 2 asked"):
        buy(app, "mug", b, "b1", quantity=2)
    buy(app, "mug", b, "b2")
    with pytest.raises(StockError):
        buy(app, "mug", b, "b3")
    assert state(app, b) == (4_200, 0, 2)
    spa = buy(app, "spa", a, "s1", quantity=1)  # points plus cash: 3,000 points and ¥99
    assert (spa.points, spa.cash_fen) == (3_000, 9_900) and state(app, a)[0] == 5_000 - 1_600 - 3_000


def test_insufficient_points_changes_nothing(app: App, tmp_path: Path) -> None:
    (a,) = setup(app, tmp_path, 500)
    with pytest.raises(InsufficientPointsError):
        buy(app, "mug", a, "m1")  # 500 < 800
    assert state(app, a) == (500, 3, 0)
    with pytest.raises(StockError):
        buy(app, "none_left", a, "n1")  # points would be fine, the coupon's stock is not
    assert state(app, a, "none_left") == (500, None, 0)
    with app.store.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Coupon)) == 0


def test_cancel_restores_the_same_lots_and_stock(app: App, tmp_path: Path) -> None:
    (a,) = setup(app, tmp_path, 1_000)
    with app.store.write_unit() as s:  # an older lot, spent first: 500 expiring at the end of 2026
        do_earn(s, load_program(s, "club"), a, 500, key="old", at=AT, actor="t", expires_at=END_2026)
    order = buy(app, "mug", a, "m1")  # 800 = 500 from the 2026 lot + 300 from the 2027 lot
    lots = remaining_by_expiry(app)
    assert lots == {END_2026: 0, END_2027: 700}
    done = cancel(app, order.id)
    assert (done.status, done.replayed) == ("cancelled", False)
    lots = remaining_by_expiry(app)
    assert lots == {END_2026: 500, END_2027: 1_000}
    assert state(app, a) == (1_500, 3, 1)
    assert cancel(app, order.id).replayed is True
    assert state(app, a) == (1_500, 3, 1)
    with app.store.write_unit() as s:
        do_earn(s, load_program(s, "club"), a, 1_000, key="more", at=AT, actor="t", expires_at=END_2027)
    assert buy(app, "mug", a, "m2", quantity=2).quantity == 2  # the cancelled unit does not count towards the limit


def test_coupon_reward_issues_and_cancel_voids(app: App, tmp_path: Path) -> None:
    a, b = setup(app, tmp_path, 2_000, 4_000)
    order = buy(app, "cpn", a, "c1")
    assert order.coupon_code is not None and state(app, a, "cpn") == (500, None, 1)
    with app.store.unit_of_work() as s:
        coupon = s.get(Coupon, order.coupon_code)
        assert coupon is not None and (coupon.template, coupon.issued_via, coupon.account_id) == ("off20", "mall", a)
    cancel(app, order.id)
    with app.store.unit_of_work() as s:
        assert [c.status for c in coupons.coupons_of(s, a)] == ["voided"]
    assert state(app, a, "cpn")[0] == 2_000

    used = buy(app, "cpn", b, "c2")
    assert used.coupon_code is not None
    with app.store.write_unit() as s:
        coupons.do_redeem_coupon(
            s, load_program(s, "club"), used.coupon_code, order_id="O1", brand="b1", channel=None, store=None,
            amount_fen=30_000, at=AT, actor="t",
        )  # fmt: skip
    with pytest.raises(CouponError, match="cannot be cancelled"):
        cancel(app, used.id)
    assert state(app, b, "cpn")[0] == 2_500  # nothing given back
    with pytest.raises(LimitError):
        buy(app, "cpn", b, "c3")  # off20 allows one per customer: the points debit is rolled back too
    assert state(app, b, "cpn")[0] == 2_500


def test_cli_mall_redeem_and_cancel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    workspace = bootstrap(Settings())
    setup(workspace, tmp_path, 1_000)
    workspace.store.engine.dispose()
    runner = CliRunner()
    listed = runner.invoke(siyu_cli, ["loyalty", "mall", "list", "--program", "club", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {r["code"]: r["stock"] for r in json.loads(listed.stdout)}["mug"] == 3
    args = [
        "loyalty",
        "mall",
        "redeem",
        "--program",
        "club",
        "--reward",
        "mug",
        "--member-no",
        "b1-c0",
        "--key",
        "k1",
        "--json",
    ]
    result = runner.invoke(siyu_cli, args)
    assert result.exit_code == 0, result.output
    order = json.loads(result.stdout)
    assert (order["points"], order["status"]) == (800, "reserved")
    short = runner.invoke(siyu_cli, [*args[:-3], "--key", "k2"])
    assert short.exit_code == 2 and "积分不足" in short.output
    result = runner.invoke(siyu_cli, ["loyalty", "mall", "cancel", str(order["id"]), "--program", "club", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "cancelled"
