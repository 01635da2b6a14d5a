"""The console in a real browser (Playwright driving Debian's /usr/bin/chromium; no browser is
downloaded): every role signs in, every page renders with data and is screenshotted to
build/console-screenshots/, the builder's live count equals the service's, a bad program file shows
its line, a guide cannot open another guide's customer, and bad import rows land in quarantine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from browser import chromium
from console.conftest import PASSWORD, Workspace, login, screenshots_dir
from siyu.audiences.service import count_audience

SHOTS = screenshots_dir()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def signed_in(browser: Browser, workspace: Workspace, role: str, *, phone: bool = False) -> Page:
    context = browser.new_context(
        base_url=workspace.url, viewport={"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.goto("/console/login")
    page.get_by_label("邮箱").fill(workspace.users[role])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/console/**")
    expect(page.locator("header.top")).to_contain_text(workspace.users[role])
    return page


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


HOMES = {
    "group_admin": "/console/overview",
    "brand_admin": "/console/overview",
    "analyst": "/console/overview",
    "operator": "/console/overview",
    "store_manager": "/console/overview",
    "guide": "/console/customers",
    "auditor": "/console/audit",
}


@pytest.mark.parametrize("role", sorted(HOMES))
def test_each_role_signs_in_to_its_home_page(browser: Browser, workspace: Workspace, role: str) -> None:
    page = signed_in(browser, workspace, role, phone=role == "guide")
    assert page.url.endswith(HOMES[role])
    nav = page.locator("nav.side a")
    if role == "auditor":
        expect(nav).to_have_count(1)
    shot(page, f"home-{role}")
    page.context.close()


def test_every_page_renders_with_data(browser: Browser, workspace: Workspace) -> None:
    page = signed_in(browser, workspace, "group_admin")
    page.goto("/console/overview?brand=demo&period=2024-06")
    page.wait_for_selector("body[data-charts-drawn=yes]", timeout=90_000)
    expect(page.locator(".kpi").first).to_contain_text("私域资产")
    assert page.locator("canvas").count() >= 6  # layers, Sankey, connection, CLV, CLV matrix, trend
    expect(page.locator("[data-chart=matrix] canvas")).to_have_count(1)
    shot(page, "overview")
    page.goto(f"/console/customers/{workspace.own_customer}?brand=demo")
    expect(page.locator("#reach li").first).to_be_visible(timeout=60_000)
    assert "*" in page.locator("[data-identifier]").first.inner_text()  # masked until revealed
    shot(page, "customer-360")
    page.get_by_role("button", name="显示完整信息（将记入审计）").click()
    expect(page.locator(".flash.ok")).to_contain_text("审计")
    for path, name, marker in [
        ("/console/customers?brand=demo", "customers", "查找客户"),
        ("/console/audiences?brand=demo", "audiences", "新建人群"),
        ("/console/tags?brand=demo", "tags", "标签"),
        ("/console/loyalty?brand=demo", "loyalty", "会员计划"),
        ("/console/loyalty/coupons?brand=demo&program=demo_club", "loyalty-coupons", "积分商城"),
        ("/console/imports?brand=demo", "imports", "隔离行"),
        ("/console/settings?brand=demo", "settings", "API 密钥"),
        ("/console/audit", "audit", "customer.reveal_pii"),
        ("/console/journeys?brand=demo", "journeys", "新会员欢迎"),
        ("/console/guides?brand=demo&period=2024-06", "guides", "门店汇总"),
        ("/console/guides/tasks?brand=demo", "guide-tasks", "门店任务：整理会员资料"),
        ("/console/guides/qrcodes?brand=demo", "qrcodes", "创建活码"),
        ("/console/journeys?brand=demo&lang=en", "journeys-en", "New-member onboarding"),
        ("/console/settings?brand=demo&lang=en", "settings-en", "API keys"),
    ]:
        page.goto(path)
        expect(page.locator("main")).to_contain_text(marker)
        shot(page, name)
    page.context.close()


def test_a_journey_is_drawn_with_its_step_counts(browser: Browser, workspace: Workspace) -> None:
    page = signed_in(browser, workspace, "operator")
    page.goto("/console/journeys/onboarding?brand=demo")
    page.wait_for_selector("body[data-graph-drawn=yes]", timeout=60_000)
    assert page.locator("#journey-graph canvas").count() == 1
    expect(page.locator("#journey-steps tr[data-step=wait_7d] td").nth(3)).not_to_have_text("0")
    expect(page.locator("#journey-uplift")).to_contain_text("95% 置信区间")
    shot(page, "journey")
    page.get_by_role("button", name="暂停").click()
    expect(page.locator("#journey-status")).to_have_text("已暂停")
    page.get_by_role("button", name="恢复").click()
    expect(page.locator("#journey-status")).to_have_text("运行中")
    page.context.close()


@pytest.mark.parametrize("role", ["guide", "store_manager"])
def test_the_workbench_fits_a_phone(browser: Browser, workspace: Workspace, role: str) -> None:
    page = signed_in(browser, workspace, role, phone=True)
    page.goto("/console/workbench?brand=demo")
    expect(page.locator("#workbench-tasks li").first).to_be_visible()
    # nothing wider than the 390 px screen: no sideways scrolling on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, f"workbench-{role}-phone")
    if role == "guide":
        page.get_by_role("button", name="菜单").click()
        page.locator("nav.side").get_by_role("link", name="导购工作台").click()
        expect(page.locator("h1")).to_have_text("导购工作台")
    page.context.close()


def test_builder_count_equals_the_service(browser: Browser, workspace: Workspace) -> None:
    page = signed_in(browser, workspace, "operator")
    page.goto("/console/audiences/new?brand=demo")
    first = page.locator(".cond").nth(0)
    first.locator("select.kind").select_option("membership")
    first.locator("input.subject").fill("member")
    first.locator("input.subject").blur()
    page.get_by_role("button", name="添加条件").click()
    second = page.locator(".cond").nth(1)
    second.locator("select.kind").select_option("spent")
    second.locator("select.op").select_option(">=")
    second.locator("input.value").fill("1")
    second.locator("input.days").fill("3650")
    second.locator("input.days").blur()
    rule = json.loads(page.locator("#rule-json").inner_text())
    assert rule == {"all": [{"membership": "member"}, {"spent": 1, "op": ">=", "last_days": 3650}]}
    expected = count_audience(workspace.app, "demo", rule=rule)["customers"]
    assert expected > 0
    expect(page.locator("#live-count [data-count]")).to_have_attribute("data-count", str(expected), timeout=60_000)
    shot(page, "audience-builder")
    page.get_by_label("编码").fill("members_who_bought")
    page.get_by_role("button", name="保存人群").click()
    page.wait_for_url("**/console/audiences/members_who_bought?brand=demo")
    expect(page.locator("main")).to_contain_text(f"{expected:,}")
    shot(page, "audience")
    page.context.close()


def test_a_program_file_with_an_error_shows_its_line(browser: Browser, workspace: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad_program.yaml"
    bad.write_text("program: broken\nlevel: brand\nbrands: [demo]\nversion: 1\ntiers:\n  - code: 1\n    nme: x\n")
    page = signed_in(browser, workspace, "brand_admin")
    page.goto("/console/loyalty?brand=demo")
    page.locator("input[type=file]").set_input_files(str(bad))
    page.get_by_role("button", name="提交").click()
    error = page.locator("#program-error")
    expect(error).to_contain_text("bad_program.yaml:")
    assert any(f"bad_program.yaml:{n}" in error.inner_text() for n in range(5, 8))
    shot(page, "loyalty-program-error")
    page.context.close()


def test_a_guide_cannot_open_another_guides_customer(browser: Browser, workspace: Workspace) -> None:
    page = signed_in(browser, workspace, "guide", phone=True)
    expect(page.locator("main")).to_contain_text(workspace.own_customer)
    page.goto(f"/console/customers/{workspace.own_customer}?brand=demo")
    expect(page.locator("h1")).to_contain_text(workspace.own_customer)
    shot(page, "guide-customer-phone")
    answer = page.goto(f"/console/customers/{workspace.other_customer}?brand=demo")
    assert answer is not None and answer.status == 404
    expect(page.locator("main")).to_contain_text("不在你的数据范围内")
    page.context.close()
    client = login(workspace.url, workspace.users["guide"])  # and by plain HTTP, fragment and actions too
    assert client.get(f"/console/customers/{workspace.other_customer}/reach?brand=demo").status_code == 404
    tag = {"code": "x", "reason": "r", "csrf": client.csrf}  # type: ignore[attr-defined]
    assert client.post(f"/console/customers/{workspace.other_customer}/tags?brand=demo", data=tag).status_code == 404
    client.close()


def test_bad_rows_of_an_upload_land_in_quarantine(browser: Browser, workspace: Workspace, tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "brand,source,order_id,source_customer_id,status,paid_at,amount_fen\n"
        "demo,console_test,o1,c1,completed,2024-06-10T12:00:00+08:00,1000\n"
        "demo,console_test,o2,c1,completed,2024-06-11T12:00:00+08:00,-5\n"
        "demo,console_test,o3,c1,teleported,2024-06-12T12:00:00+08:00,1000\n"
    )
    page = signed_in(browser, workspace, "brand_admin")
    page.goto("/console/imports?brand=demo")
    page.locator("input[type=file]").set_input_files(str(orders))
    page.get_by_role("button", name="提交").click()
    expect(page.locator("#import-result")).to_contain_text("orders")
    rows = page.locator("#quarantine tbody tr")
    expect(rows).to_have_count(2)
    lines = {rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)}
    assert lines == {"3", "4"}
    shot(page, "imports-quarantine")
    page.context.close()
    client = login(workspace.url, workspace.users["brand_admin"])
    csv = client.get("/console/imports/quarantine.csv?brand=demo")
    assert csv.status_code == 200 and "orders.csv" in csv.text and "teleported" in csv.text
    client.close()


def test_static_libraries_are_served_locally(workspace: Workspace) -> None:
    for name in ("htmx.min.js", "alpine.min.js", "echarts.min.js"):
        answer = httpx.get(f"{workspace.url}/console/static/vendor/{name}", timeout=30)
        assert answer.status_code == 200 and len(answer.content) > 10_000, name
