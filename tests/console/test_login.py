"""Sign-in over real HTTP: lockout after repeated failures, the login form's CSRF, disabled users,
sessions ending at sign-out; and `siyu users` from the CLI."""

from __future__ import annotations

import re

import httpx
from typer.testing import CliRunner

from console.conftest import PASSWORD, Workspace, csrf_of, login
from siyu.console.users import MAX_FAILURES, do_create_user, do_disable_user
from siyu.core.actor import Actor


def _form(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text)
    assert found is not None
    return found.group(1)


def _new_user(workspace: Workspace, email: str) -> None:
    with workspace.app.store.begin(Actor.system("tests")) as uow:
        do_create_user(uow, email, "analyst", PASSWORD, brand="demo")


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(workspace: Workspace) -> None:
    _new_user(workspace, "locked@example.com")
    with httpx.Client(base_url=workspace.url, timeout=30) as c:
        for _ in range(MAX_FAILURES):
            bad = c.post(
                "/console/login", data={"email": "locked@example.com", "password": "wrong-pw-123", "csrf": _form(c)}
            )
            assert bad.status_code == 401 and "邮箱或密码错误" in bad.text
        right = c.post("/console/login", data={"email": "locked@example.com", "password": PASSWORD, "csrf": _form(c)})
        assert right.status_code == 401 and "锁定" in right.text
    with workspace.app.store.unit_of_work() as session:
        from siyu.audit.trail import AuditFilter, entries

        assert entries(session, AuditFilter(action="user.lock", subject="console_user:locked@example.com"))


def test_the_login_form_needs_its_csrf_cookie_and_field(workspace: Workspace) -> None:
    with httpx.Client(base_url=workspace.url, timeout=30) as c:
        token = _form(c)
        forged = c.post(
            "/console/login", data={"email": workspace.users["operator"], "password": PASSWORD, "csrf": "x"}
        )
        assert forged.status_code == 403 and "CSRF" in forged.text
        c.cookies.clear()  # a cross-site form: the field, but not the cookie
        posted = c.post(
            "/console/login", data={"email": workspace.users["operator"], "password": PASSWORD, "csrf": token}
        )
        assert posted.status_code == 403


def test_session_cookie_is_http_only_and_same_site(workspace: Workspace) -> None:
    with httpx.Client(base_url=workspace.url, timeout=30) as c:
        token = _form(c)
        answer = c.post(
            "/console/login", data={"email": workspace.users["analyst"], "password": PASSWORD, "csrf": token}
        )
        cookie = answer.headers["set-cookie"].lower()
        assert "siyu_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_disabling_a_user_ends_their_session(workspace: Workspace) -> None:
    _new_user(workspace, "leaver@example.com")
    client = login(workspace.url, "leaver@example.com")
    assert client.get("/console/tags?brand=demo").status_code == 200
    with workspace.app.store.begin(Actor.system("tests")) as uow:
        do_disable_user(uow, "leaver@example.com")
    gone = client.get("/console/tags?brand=demo")
    assert gone.status_code == 303 and gone.headers["location"] == "/console/login"
    client.close()


def test_sign_out_ends_the_session(workspace: Workspace) -> None:
    client = login(workspace.url, workspace.users["auditor"])
    cookie = client.cookies.get("siyu_session")
    assert client.post("/console/logout", data={"csrf": csrf_of(client)}).status_code == 303
    with httpx.Client(base_url=workspace.url, timeout=30, cookies={"siyu_session": cookie or ""}) as replay:
        assert replay.get("/console/audit").status_code == 303
    client.close()


def test_users_cli_create_list_disable(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from siyu.cli.app import app as cli

    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'siyu.db'}")
    runner = CliRunner()
    made = runner.invoke(cli, ["users", "create", "--email", "Ops@Brand.cn", "--role", "operator", "--brand", "demo"])
    assert made.exit_code == 0, made.output
    assert "one-time password" in made.output
    given = runner.invoke(
        cli,
        ["users", "create", "--email", "g@brand.cn", "--role", "guide", "--brand", "demo", "--staff", "G1",
         "--password-stdin"],
        input="short\n",
    )  # fmt: skip
    assert given.exit_code == 2 and "at least 10" in given.output
    no_staff = runner.invoke(cli, ["users", "create", "--email", "g@brand.cn", "--role", "guide", "--brand", "demo"])
    assert no_staff.exit_code == 2 and "--staff" in no_staff.output
    listed = runner.invoke(cli, ["users", "list", "--json"])
    assert '"ops@brand.cn"' in listed.output and "password" not in listed.output
    assert runner.invoke(cli, ["users", "disable", "ops@brand.cn"]).exit_code == 0
    assert '"disabled": true' in runner.invoke(cli, ["users", "list", "--json"]).output


def test_the_demo_admin_signs_in_with_the_printed_password_and_a_second_demo_resets_it(workspace: Workspace) -> None:
    from siyu.cli.demo import DEMO_ADMIN, demo_console_user

    first = demo_console_user(workspace.app)
    second = demo_console_user(workspace.app)  # `siyu demo` run again in the same workspace
    assert first != second
    with httpx.Client(base_url=workspace.url, timeout=30) as c:
        old = c.post("/console/login", data={"email": DEMO_ADMIN, "password": first, "csrf": _form(c)})
        assert old.status_code == 401
    login(workspace.url, DEMO_ADMIN, second).close()
