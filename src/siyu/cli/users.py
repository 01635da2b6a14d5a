"""`siyu users create|list|disable|reset-password`: console users (控制台用户)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors

users_app = typer.Typer(help="Console users: create, list, disable, reset-password (控制台用户).", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input (else one is generated)")
]


def _password(from_stdin: bool) -> tuple[str, bool]:
    from siyu.console.passwords import one_time_password

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return one_time_password(), True


@users_app.command("create")
def create(
    email: Annotated[str, typer.Option("--email", help="The user's e-mail (their sign-in name)")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="group_admin | brand_admin | analyst | operator | store_manager | guide | auditor",
        ),
    ],
    brand: Annotated[str | None, typer.Option("--brand", help="Their brand (all but group_admin/auditor)")] = None,
    store: Annotated[str | None, typer.Option("--store", help="store_manager: their store code")] = None,
    staff: Annotated[str | None, typer.Option("--staff", help="guide: their staff id (guide_code)")] = None,
    password_stdin: StdinOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a console user. Without --password-stdin a one-time password is printed (once).

    Example: siyu users create --email ops@brand.cn --role operator --brand demo
    """
    from siyu.console.users import do_create_user

    with user_errors():
        password, generated = _password(password_stdin)
        app = get_app()
        with app.store.begin(cli_actor()) as uow:
            user = do_create_user(uow, email, role, password, brand=brand, store=store, staff_id=staff)
    if as_json:
        print_json({"id": user["id"], "email": user["email"], **({"password": password} if generated else {})})
        return
    console.print(f"created 已创建 {user['email']} ({user['role']})", highlight=False)
    if generated:
        console.print(f"one-time password 一次性密码: {password}", highlight=False)


@users_app.command("list")
def list_command(
    brand: Annotated[str | None, typer.Option("--brand", help="Only users of this brand")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List console users (never their passwords)."""
    from siyu.console.users import list_users

    with user_errors():
        rows = list_users(get_app(), brand)
    if as_json:
        print_json(rows)
        return
    table = Table(title="Console users 控制台用户")
    for col in ("email", "role", "brand", "store", "staff", "disabled"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["email"], r["role"], r["brand"] or "*", r["store"] or "", r["staff_id"] or "",
                      "yes" if r["disabled"] else "")  # fmt: skip
    console.print(table)


@users_app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="The user's e-mail")]) -> None:
    """Disable a user; their open sessions end at once."""
    from siyu.console.users import do_disable_user

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        do_disable_user(uow, email)
    console.print(f"disabled 已停用 {email}", highlight=False)


@users_app.command("reset-password")
def reset_password(
    email: Annotated[str, typer.Argument(help="The user's e-mail")],
    password_stdin: StdinOpt = False,
) -> None:
    """Set a new password (printed once unless --password-stdin); unlocks the user and ends their sessions."""
    from siyu.console.users import do_reset_password

    with user_errors():
        password, generated = _password(password_stdin)
        with get_app().store.begin(cli_actor()) as uow:
            do_reset_password(uow, email, password)
    console.print(f"password reset 已重置 {email}", highlight=False)
    if generated:
        console.print(f"one-time password 一次性密码: {password}", highlight=False)
