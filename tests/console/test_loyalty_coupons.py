"""Loyalty coupons and reports (券、积分商城与报表): an operator issues a template to an audience
through the bulk issue service (again = replayed, never twice), sees stock, the mall, the cost
report and settlement; readers see the page, only editors issue."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select

from console.conftest import Workspace, csrf_of
from siyu.loyalty.models import Coupon, CouponTemplate

PROGRAM = "demo_club"


def _issued(workspace: Workspace, template: str) -> tuple[int, int]:
    with workspace.app.store.unit_of_work() as session:
        counter = session.scalar(
            select(CouponTemplate.issued).where(CouponTemplate.program == PROGRAM, CouponTemplate.code == template)
        )
        rows = session.scalar(
            select(func.count()).select_from(Coupon).where(Coupon.program == PROGRAM, Coupon.template == template)
        )
    return int(counter or 0), int(rows or 0)


def test_an_operator_issues_a_template_to_an_audience_once(
    workspace: Workspace, clients: dict[str, httpx.Client]
) -> None:
    operator = clients["operator"]
    rule = '{"all": [{"membership": "member"}, {"spent": 1, "op": ">=", "last_days": 3650}]}'
    made = operator.post(
        "/console/audiences?brand=demo",
        data={"code": "coupon_buyers", "rule": rule, "name": "买过的会员", "csrf": csrf_of(operator)},
    )
    assert made.status_code == 303, made.text[:300]
    page = operator.get(f"/console/loyalty/coupons?brand=demo&program={PROGRAM}")
    assert page.status_code == 200
    for marker in ("free_ship", "积分商城", "mug", "券成本", "跨品牌积分结算", "向人群发券"):
        assert marker in page.text, marker
    before = _issued(workspace, "free_ship")
    form = {"program": PROGRAM, "template": "free_ship", "audience": "coupon_buyers", "csrf": csrf_of(operator)}
    first = operator.post("/console/loyalty/coupons/issue?brand=demo", data=form)
    assert first.status_code == 200, first.text[:300]
    issued = int(re.search(r"已发放 (\d+)，已发过 (\d+)", first.text).group(1))  # type: ignore[union-attr]
    assert issued > 0
    after = _issued(workspace, "free_ship")
    assert after == (before[0] + issued, before[1] + issued)
    again = operator.post("/console/loyalty/coupons/issue?brand=demo", data=form)
    assert f"已发放 0，已发过 {issued}" in again.text
    assert _issued(workspace, "free_ship") == after


def test_readers_see_the_reports_but_only_editors_issue(clients: dict[str, httpx.Client]) -> None:
    analyst = clients["analyst"]
    assert analyst.get(f"/console/loyalty/coupons?brand=demo&program={PROGRAM}&lang=en").status_code == 200
    form = {"program": PROGRAM, "template": "free_ship", "audience": "x", "csrf": csrf_of(analyst)}
    assert analyst.post("/console/loyalty/coupons/issue?brand=demo", data=form).status_code == 403
    # a program that is not the brand's: 404, nothing said about it
    assert analyst.get("/console/loyalty/coupons?brand=demo&program=no_such").status_code == 404
