"""The authorisation matrix: every role × every console route, over plain HTTP (no browser).

The expected roles are written out here from the issue's role descriptions, not read from
siyu.console.permissions, so a change to the permission table that breaks them fails this test.
Customer routes use an id that does not exist: a permitted role gets 404 (looked for, not found), a
refused one 403 before anything is looked up."""

from __future__ import annotations

import httpx
import pytest

from console.conftest import Workspace, csrf_of, login

ALL = {"group_admin", "brand_admin", "analyst", "operator", "store_manager", "guide", "auditor"}
ADMINS = {"group_admin", "brand_admin"}
READERS = ADMINS | {"analyst", "operator"}

# (method, path, form, roles allowed, status when allowed)
ROUTES: list[tuple[str, str, dict[str, str], set[str], int]] = [
    ("GET", "/console/overview", {}, READERS | {"store_manager"}, 200),
    ("GET", "/console/customers", {}, READERS | {"store_manager", "guide"}, 200),
    ("GET", "/console/customers/no_such_id", {}, READERS | {"store_manager", "guide"}, 404),
    ("GET", "/console/customers/no_such_id/reach", {}, READERS | {"store_manager", "guide"}, 404),
    ("POST", "/console/customers/search", {"q": "no_such_id"}, READERS | {"store_manager", "guide"}, 404),
    ("POST", "/console/customers/no_such_id/reveal", {}, ADMINS | {"operator", "store_manager", "guide"}, 404),
    ("POST", "/console/customers/no_such_id/tags", {"code": "x", "reason": "r"},
     ADMINS | {"operator", "store_manager", "guide"}, 404),
    ("POST", "/console/customers/no_such_id/tags/remove", {"code": "x", "reason": "r"},
     ADMINS | {"operator", "store_manager", "guide"}, 404),
    ("GET", "/console/audiences", {}, READERS, 200),
    ("GET", "/console/audiences/new", {}, READERS, 200),
    ("POST", "/console/audiences/count", {"rule": '{"attribute": "city", "op": "=", "value": "上海"}'}, READERS, 200),
    ("GET", "/console/audiences/no_such", {}, READERS, 404),
    ("POST", "/console/audiences/no_such/export", {}, ADMINS | {"operator"}, 404),
    ("POST", "/console/audiences/no_such/snapshot", {}, READERS, 404),
    ("GET", "/console/audiences/no_such/diff?a=no_such&b=no_such@1", {}, READERS, 404),
    ("GET", "/console/tags", {}, READERS, 200),
    ("GET", "/console/loyalty", {}, READERS, 200),
    ("POST", "/console/loyalty/members", {"program": "x", "member_no": "y"}, READERS, 404),
    ("POST", "/console/loyalty/adjust", {"program": "x", "member_no": "y", "points": "1", "reason": "r", "key": "k"},
     ADMINS | {"operator"}, 404),
    ("GET", "/console/loyalty/coupons?program=no_such", {}, READERS, 404),
    ("POST", "/console/loyalty/coupons/issue", {"program": "no_such", "template": "x", "audience": "y"},
     ADMINS | {"operator"}, 404),
    ("GET", "/console/imports", {}, ADMINS, 200),
    ("GET", "/console/imports/quarantine.csv", {}, ADMINS, 200),
    ("GET", "/console/settings", {}, ADMINS, 200),
    ("POST", "/console/settings/keys/no_such/revoke", {}, ADMINS, 404),
    ("POST", "/console/settings/users/disable", {"email": "nobody@example.com"}, ADMINS, 404),
    ("GET", "/console/audit", {}, {"auditor", "group_admin"}, 200),
    ("GET", "/console/journeys", {}, READERS, 200),
    ("GET", "/console/journeys/onboarding", {}, READERS, 200),
    ("GET", "/console/journeys/onboarding/steps", {}, READERS, 200),
    ("GET", "/console/journeys/no_such", {}, READERS, 404),
    ("POST", "/console/journeys/no_such/pause", {}, ADMINS | {"operator"}, 404),
    ("POST", "/console/journeys/no_such/resume", {}, ADMINS | {"operator"}, 404),
    ("GET", "/console/guides", {}, READERS | {"store_manager"}, 200),
    ("GET", "/console/guides/tasks", {}, READERS | {"store_manager"}, 200),
    ("POST", "/console/guides/tasks/999999/done", {}, ADMINS | {"operator", "store_manager", "guide"}, 404),
    ("GET", "/console/guides/qrcodes", {}, READERS | {"store_manager"}, 200),
    ("GET", "/console/guides/qrcodes/no_such.png", {}, READERS | {"store_manager"}, 404),
    ("POST", "/console/guides/qrcodes", {"state": "", "staff": ""}, ADMINS | {"operator"}, 422),
    ("GET", "/console/workbench", {}, {"guide", "store_manager"}, 200),
]  # fmt: skip


def _call(client: httpx.Client, method: str, path: str, form: dict[str, str]) -> httpx.Response:
    url = f"{path}{'&' if '?' in path else '?'}brand=demo" if "auditor" not in path else path
    if method == "GET":
        return client.get(url)
    return client.post(url, data={**form, "csrf": csrf_of(client)})


@pytest.mark.parametrize("role", sorted(ALL))
def test_every_route_answers_by_role(workspace: Workspace, clients: dict[str, httpx.Client], role: str) -> None:
    client = clients[role]
    wrong = []
    for method, path, form, allowed, ok in ROUTES:
        # group-level users (no brand of their own) see every brand, so ?brand=demo is theirs too
        expected = ok if role in allowed else 403
        got = _call(client, method, path, form).status_code
        if got != expected:
            wrong.append(f"{method} {path}: {got}, expected {expected}")
    assert not wrong, f"{role}: " + "; ".join(wrong)


def test_signed_out_is_sent_to_login(workspace: Workspace) -> None:
    with httpx.Client(base_url=workspace.url, timeout=30) as anonymous:
        for method, path, form, _, _ in ROUTES:
            answer = anonymous.request(method, path, data=form or None)
            assert answer.status_code == 303 and answer.headers["location"] == "/console/login", path


def test_a_brand_user_cannot_switch_to_another_brand(workspace: Workspace, clients: dict[str, httpx.Client]) -> None:
    answer = clients["brand_admin"].get("/console/settings?brand=demo_other")
    assert answer.status_code == 403
    assert "无权查看该品牌" in answer.text


def test_a_post_without_the_session_csrf_token_is_refused(workspace: Workspace) -> None:
    client = login(workspace.url, workspace.users["operator"])
    form = {"rule": '{"attribute": "city", "op": "=", "value": "上海"}'}
    assert client.post("/console/audiences/count?brand=demo", data={**form, "csrf": "forged"}).status_code == 403
    assert client.post("/console/audiences/count?brand=demo", data=form).status_code == 403
    ok = client.post("/console/audiences/count?brand=demo", headers={"X-CSRF-Token": csrf_of(client)}, data=form)
    assert ok.status_code == 200
    client.close()
