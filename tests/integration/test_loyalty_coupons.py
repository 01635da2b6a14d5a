"""Coupons against the real store (SQLite and PostgreSQL): issue, redeem, void, bulk, cost report.
Expected numbers are worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from siyu.audit.models import AuditEntry
from siyu.bootstrap import App, bootstrap
from siyu.cli.app import app as siyu_cli
from siyu.config import Settings
from siyu.loyalty import coupons
from siyu.loyalty.accounts import do_enrol
from siyu.loyalty.cost import cost_report, totals_by_bearer
from siyu.loyalty.errors import CouponError, IdempotencyConflictError, LimitError, StockError
from siyu.loyalty.models import Coupon, CouponTemplate
from siyu.loyalty.programs import do_apply_program, load_program

AT = dt.datetime(2026, 6, 10, 2, 0, tzinfo=dt.UTC)

PROGRAM = """
version: 1
program: club
level: group
group: grp
brands: [b1, b2]
timezone: Asia/Shanghai
tiers: {levels: [{code: regular, threshold: 0}]}
coupons:
  - {code: off20, kind: amount_off, threshold_fen: 20000, amount_fen: 2000, valid_days: 30,
     per_customer_limit: 2, cost_bearer: group, campaign: welcome}
  - {code: pct15, kind: percent_off, percent: 15, cap_fen: 5000, valid_days: 60, cost_bearer: brand, campaign: tier}
  - {code: limited, kind: amount_off, amount_fen: 1000, valid_days: 30, stock: 2, cost_bearer: store}
  - {code: june, kind: amount_off, amount_fen: 500, valid_from: 2026-06-01, valid_to: 2026-06-30,
     cost_bearer: region, campaign: june}
  - {code: east_local, kind: amount_off, amount_fen: 3000, valid_days: 30, cost_bearer: region,
     cost_bearer_code: east, campaign: june}
  - {code: ship, kind: free_shipping, valid_days: 30, stackable: true, cost_bearer: distributor, campaign: june}
  - {code: ship2, kind: free_shipping, valid_days: 30, stackable: true, void_on_refund: false}
  - {code: b2only, kind: amount_off, amount_fen: 100, valid_days: 10, brands: [b2]}
stores:
  S1: {region: east, distributor: D_SH}
  S3: {region: north, distributor: D_BJ}
"""


def setup(app: App, tmp_path: Path, customers: int = 3) -> list[int]:
    path = tmp_path / "club.yaml"
    path.write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, path, actor="test", at=AT)
    with app.store.write_unit() as s:
        program = load_program(s, "club")
        return [
            do_enrol(s, program, brand="b1", customer_id=f"c{i}", at=AT, actor="test", via="api").account_id
            for i in range(customers)
        ]


def issue(app: App, template: str, account: int, key: str, at: dt.datetime = AT) -> coupons.IssuedCoupon:
    with app.store.write_unit() as s:
        return coupons.do_issue_coupon(s, load_program(s, "club"), template, account, key=key, at=at, actor="test")


def redeem(
    app: App,
    code: str,
    amount: int,
    *,
    order: str = "O1",
    brand: str = "b1",
    store: str | None = "S1",
    at: dt.datetime = AT,
    others: tuple[str, ...] = (),
) -> coupons.RedeemedCoupon:
    with app.store.write_unit() as s:
        return coupons.do_redeem_coupon(
            s, load_program(s, "club"), code, order_id=order, brand=brand, channel="pos", store=store,
            amount_fen=amount, at=at, actor="test", other_codes=others,
        )  # fmt: skip


def template_row(app: App, code: str) -> CouponTemplate:
    with app.store.unit_of_work() as s:
        row = s.get(CouponTemplate, ("club", code))
        assert row is not None
        return row


def test_issue_is_idempotent_with_unambiguous_codes(app: App, tmp_path: Path) -> None:
    a, b, _ = setup(app, tmp_path)
    first = issue(app, "off20", a, "k1")
    assert len(first.code) == 12 and set(first.code) <= set(coupons.ALPHABET) and not set(first.code) & set("0O1I")
    assert (first.status, first.replayed) == ("issued", False)
    assert first.valid_from == AT and first.valid_to == AT + dt.timedelta(days=30)
    again = issue(app, "off20", a, "k1")
    assert (again.code, again.replayed) == (first.code, True)
    with pytest.raises(IdempotencyConflictError):
        issue(app, "off20", b, "k1")
    assert template_row(app, "off20").issued == 1
    with app.store.unit_of_work() as s:
        rows = s.execute(
            select(AuditEntry.action, AuditEntry.subject_type).where(AuditEntry.subject_id == first.code)
        ).all()
    assert [tuple(r) for r in rows] == [("coupon.issue", "coupon")]


def test_threshold_edge_and_percent_cap(app: App, tmp_path: Path) -> None:
    a, _, _ = setup(app, tmp_path)
    off20 = issue(app, "off20", a, "k1").code
    with pytest.raises(CouponError, match="at least 20000"):
        redeem(app, off20, 19_999)  # one fen short of 满200
    used = redeem(app, off20, 20_000)
    assert (used.kind, used.discount_fen, used.replayed) == ("amount_off", 2_000, False)
    # 15 % of 40,000 = 6,000, capped at 5,000; 15 % of 20,000 = 3,000 under the cap
    assert redeem(app, issue(app, "pct15", a, "p1").code, 40_000, order="O2").discount_fen == 5_000
    assert redeem(app, issue(app, "pct15", a, "p2").code, 20_000, order="O3").discount_fen == 3_000
    # never more than the order: ¥10 off a ¥3 order takes ¥3
    assert redeem(app, issue(app, "limited", a, "l1").code, 300, order="O4").discount_fen == 300


def test_stock_and_per_customer_limit(app: App, tmp_path: Path) -> None:
    a, b, c = setup(app, tmp_path)
    issue(app, "limited", a, "s1")
    issue(app, "limited", b, "s2")
    with pytest.raises(StockError):
        issue(app, "limited", c, "s3")
    assert template_row(app, "limited").issued == 2

    first = issue(app, "off20", a, "o1")
    issue(app, "off20", a, "o2")
    with pytest.raises(LimitError):
        issue(app, "off20", a, "o3")
    with app.store.write_unit() as s:
        coupons.do_void_coupon(s, load_program(s, "club"), first.code, at=AT, actor="test", reason="mistake")
    assert issue(app, "off20", a, "o3").status == "issued"  # a voided coupon frees the quota


def test_dated_validity_in_brand_local_days(app: App, tmp_path: Path) -> None:
    a, _, _ = setup(app, tmp_path)
    june = issue(app, "june", a, "j1")
    # 2026-06-01 00:00 and 2026-07-01 00:00 in Shanghai (UTC+8)
    assert june.valid_from == dt.datetime(2026, 5, 31, 16, tzinfo=dt.UTC)
    assert june.valid_to == dt.datetime(2026, 6, 30, 16, tzinfo=dt.UTC)
    late = issue(app, "june", a, "j2")
    assert redeem(app, june.code, 1_000, at=dt.datetime(2026, 6, 30, 15, 59, 59, tzinfo=dt.UTC)).discount_fen == 500
    with pytest.raises(CouponError, match="expired"):
        redeem(app, late.code, 1_000, order="O2", at=dt.datetime(2026, 6, 30, 16, tzinfo=dt.UTC))
    with pytest.raises(CouponError, match="valid from"):
        redeem(app, late.code, 1_000, order="O2", at=dt.datetime(2026, 5, 31, 15, 59, 59, tzinfo=dt.UTC))
    with pytest.raises(CouponError, match="no longer be issued"):
        issue(app, "june", a, "j3", at=dt.datetime(2026, 6, 30, 16, tzinfo=dt.UTC))


def test_stacking_brand_and_idempotent_redemption(app: App, tmp_path: Path) -> None:
    a, _, _ = setup(app, tmp_path)
    off20, ship, ship2 = (issue(app, t, a, t).code for t in ("off20", "ship", "ship2"))
    with pytest.raises(CouponError, match="cannot be combined"):
        redeem(app, ship, 30_000, others=(off20,))  # ship stacks, off20 does not
    with pytest.raises(CouponError, match="cannot be combined"):
        redeem(app, off20, 30_000, others=(ship,))
    assert redeem(app, ship, 30_000, others=(ship2,)).discount_fen == 0  # free shipping: nothing off the order
    assert redeem(app, ship2, 30_000, others=(ship,)).kind == "free_shipping"

    used = redeem(app, off20, 30_000, order="O7")
    again = redeem(app, off20, 30_000, order="O7")
    assert (again.discount_fen, again.replayed) == (used.discount_fen, True)
    with pytest.raises(CouponError, match="already redeemed"):
        redeem(app, off20, 30_000, order="O8")

    b2 = issue(app, "b2only", a, "b2").code
    with pytest.raises(CouponError, match="not b1"):
        redeem(app, b2, 1_000, order="O9")
    assert redeem(app, b2, 1_000, order="O9", brand="b2").discount_fen == 100


def test_void_on_refund(app: App, tmp_path: Path) -> None:
    a, _, _ = setup(app, tmp_path)
    ship, ship2 = issue(app, "ship", a, "s").code, issue(app, "ship2", a, "s2").code
    redeem(app, ship, 10_000, order="R1", others=(ship2,))
    redeem(app, ship2, 10_000, order="R1", others=(ship,))
    with app.store.write_unit() as s:
        assert coupons.void_for_refund(s, load_program(s, "club"), "R1", at=AT, actor="test") == [ship]
    with app.store.write_unit() as s:
        assert coupons.void_for_refund(s, load_program(s, "club"), "R1", at=AT, actor="test") == []
        statuses = {c.code: c.status for c in coupons.coupons_of(s, a)}
    assert statuses == {ship: "voided", ship2: "redeemed"}  # ship2 says void_on_refund: false
    with pytest.raises(CouponError, match="voided"):
        redeem(app, ship, 10_000, order="R2")


def test_cost_report_allocates_by_bearer(app: App, tmp_path: Path) -> None:
    a, b, _ = setup(app, tmp_path)
    redeem(app, issue(app, "off20", a, "1").code, 20_000, order="A", store="S1")  # group grp 2,000
    redeem(app, issue(app, "pct15", a, "2").code, 10_000, order="B", brand="b2", store="S3")  # brand b2 1,500
    redeem(app, issue(app, "june", a, "3").code, 1_000, order="C", store="S1")  # region east (S1) 500
    redeem(app, issue(app, "june", b, "4").code, 1_000, order="D", store="S3")  # region north (S3) 500
    redeem(app, issue(app, "june", b, "5").code, 1_000, order="E", store="S3")  # north again
    redeem(app, issue(app, "east_local", b, "6").code, 9_000, order="F", store="S3")  # explicit east 3,000
    redeem(app, issue(app, "ship", b, "7").code, 9_000, order="G", store="S3")  # distributor D_BJ 0
    voided = issue(app, "limited", b, "8").code
    redeem(app, voided, 9_000, order="H", store="S1")
    with app.store.write_unit() as s:
        program = load_program(s, "club")
        coupons.void_for_refund(s, program, "H", at=AT, actor="test")  # refunded: bears nothing
        rows = [r.as_dict() for r in cost_report(s, program)]
        june = cost_report(s, program, campaign="june")
        later = cost_report(s, program, start=dt.date(2026, 6, 11))
    got = {(r["template"], r["bearer"], r["bearer_code"], r["brand"], r["store"]): (r["redeemed"], r["discount_fen"])
           for r in rows}  # fmt: skip
    assert got == {
        ("off20", "group", "grp", "b1", "S1"): (1, 2_000),
        ("pct15", "brand", "b2", "b2", "S3"): (1, 1_500),
        ("june", "region", "east", "b1", "S1"): (1, 500),
        ("june", "region", "north", "b1", "S3"): (2, 1_000),
        ("east_local", "region", "east", "b1", "S3"): (1, 3_000),
        ("ship", "distributor", "D_BJ", "b1", "S3"): (1, 0),
    }
    assert set(rows[0]) == {
        "campaign",
        "template",
        "bearer",
        "bearer_code",
        "brand",
        "store",
        "redeemed",
        "discount_fen",
    }
    assert {r.template for r in june} == {"june", "east_local", "ship"}
    assert later == []  # all redeemed on 2026-06-10 (Shanghai)
    by_bearer = {(t["bearer"], t["bearer_code"]): t["discount_fen"] for t in totals_by_bearer(june)}
    assert by_bearer == {("region", "east"): 3_500, ("region", "north"): 1_000, ("distributor", "D_BJ"): 0}


def test_bulk_issue_skips_and_reruns_as_no_op(app: App, tmp_path: Path) -> None:
    ids = setup(app, tmp_path, customers=4)
    with app.store.unit_of_work() as s:
        members = coupons.accounts_of_customers(s, "club", "b1", ["c0", "c1", "c2", "c3", "stranger"])
    assert sorted(members) == ["c0", "c1", "c2", "c3"] and sorted(members.values()) == sorted(ids)
    targets = [*members.values(), 999_999]  # 999999 is no account
    first = coupons.do_issue_bulk(app.store, "club", "limited", targets, key="camp", at=AT, actor="test", chunk=2)
    assert (first.issued, first.replayed, first.skipped) == (2, 0, {"out_of_stock": 2, "not_a_member": 1})
    rerun = coupons.do_issue_bulk(app.store, "club", "limited", targets, key="camp", at=AT, actor="test", chunk=3)
    assert (rerun.issued, rerun.replayed, rerun.skipped) == (0, 2, {"out_of_stock": 2, "not_a_member": 1})
    with app.store.unit_of_work() as s:
        issued = s.scalars(select(Coupon).where(Coupon.template == "limited")).all()
    assert len(issued) == 2 and {c.issued_via for c in issued} == {"bulk"}
    assert template_row(app, "limited").issued == 2


# --- CLI (SQLite workspace) ----------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return ["loyalty", *args]


def test_cli_issue_redeem_list_and_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    workspace = bootstrap(Settings())
    setup(workspace, tmp_path)
    workspace.store.engine.dispose()
    (tmp_path / "list.csv").write_text("customer_id,name\nc1,x\nc2,y\nnobody,z\n", encoding="utf-8")
    runner = CliRunner()

    def run(*args: str) -> dict | list:  # type: ignore[type-arg]
        result = runner.invoke(siyu_cli, cli(*args, "--json"))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    one = run("coupons", "issue", "--program", "club", "--template", "off20", "--customer", "c0", "--brand", "b1")
    assert isinstance(one, dict) and one["replayed"] is False
    again = run("coupons", "issue", "--program", "club", "--template", "off20", "--member-no", "b1-c0")
    assert isinstance(again, dict) and (again["code"], again["replayed"]) == (one["code"], True)
    bulk_args = ("coupons", "issue", "--program", "club", "--template", "pct15", "--file", str(tmp_path / "list.csv"))
    assert run(*bulk_args, "--brand", "b1") == {"issued": 2, "replayed": 0, "skipped": {"not_a_member": 1}}
    assert run(*bulk_args, "--brand", "b1") == {"issued": 0, "replayed": 2, "skipped": {"not_a_member": 1}}

    used = run("coupons", "redeem", "--program", "club", "--code", one["code"], "--order-id", "O1", "--brand", "b1",
               "--amount-fen", "25000", "--store", "S1")  # fmt: skip
    assert isinstance(used, dict) and used["discount_fen"] == 2_000
    short = runner.invoke(siyu_cli, cli("coupons", "redeem", "--program", "club", "--code", one["code"],
                                        "--order-id", "O2", "--brand", "b1", "--amount-fen", "25000"))  # fmt: skip
    assert short.exit_code == 2 and "already redeemed" in short.output
    listed = run("coupons", "list", "--program", "club", "--customer", "c0", "--brand", "b1")
    assert [(c["code"], c["status"]) for c in listed] == [(one["code"], "redeemed")]
    templates = run("coupons", "list", "--program", "club")
    assert {t["template"]: t["issued"] for t in templates}["pct15"] == 2
    report = run("report", "cost", "--program", "club", "--campaign", "welcome")
    assert isinstance(report, dict)
    assert report["by_bearer"] == [{"bearer": "group", "bearer_code": "grp", "redeemed": 1, "discount_fen": 2_000}]
    table = runner.invoke(siyu_cli, cli("report", "cost", "--program", "club"))
    assert table.exit_code == 0 and "grp" in table.stdout


def test_concurrent_issuers_never_oversell(app: App, tmp_path: Path) -> None:
    """Six members race for the last two `limited` coupons: the template row lock queues them."""
    from concurrent.futures import ThreadPoolExecutor

    ids = setup(app, tmp_path, customers=6)

    def attempt(account: int) -> str:
        try:
            return issue(app, "limited", account, f"race:{account}").status
        except StockError as e:
            return e.code

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = sorted(pool.map(attempt, ids))
    assert outcomes == ["issued", "issued", "out_of_stock", "out_of_stock", "out_of_stock", "out_of_stock"]
    assert template_row(app, "limited").issued == 2
