"""`siyu messages`: send what is due, list messages, set a brand's message policy (触达)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.errors import SiyuError

if TYPE_CHECKING:
    from siyu.bootstrap import App

messages_app = typer.Typer(help="Outbound messages 触达消息: send, list, policies.", no_args_is_help=True)
policy_app = typer.Typer(help="Per-brand message policy 触达策略 (caps, quiet hours, webhook).", no_args_is_help=True)
messages_app.add_typer(policy_app, name="policy")


class BadTimeError(SiyuError):
    code = "bad_time"
    exit_code = 2


def _parse_now(now: str | None) -> dt.datetime | None:
    if now is None:
        return None
    try:
        at = dt.datetime.fromisoformat(now)
    except ValueError as error:
        raise BadTimeError(f"--now must be an ISO time like 2026-12-03T09:00:00+08:00, got {now!r}") from error
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


@messages_app.command("send")
def send_command(
    once: Annotated[bool, typer.Option("--once", help="Send everything due now, then exit")] = False,
    now: Annotated[str | None, typer.Option("--now", help="Act as if it were this ISO time (tests, demos)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print the counts as JSON")] = False,
) -> None:
    """Run the dispatcher: claim due messages, send them, record the answers (also runs in `siyu worker`).

    Example: siyu messages send --once --now 2026-12-03T09:00:00+08:00 --json
    """
    from siyu.messaging.dispatch import Dispatcher

    with user_errors():
        at = _parse_now(now)
        app = get_app()
        dispatcher = Dispatcher(app, clock=(lambda: at) if at else None)
        if once:
            stats = dispatcher.run_once().as_dict()
            if as_json:
                print_json(stats)
            else:
                console.print("sent 已发送 {sent} · suppressed 已抑制 {suppressed} · failed 失败 {failed} · "
                              "refused 拒收 {refused} · retry 重试 {retried}".format(**stats))  # fmt: skip
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print("dispatcher running 发送进程运行中 (Ctrl-C to stop)")
        dispatcher.run(stop)


@messages_app.command("list")
def list_command(
    customer: Annotated[str | None, typer.Option("--customer", help="Customer id, phone or member no")] = None,
    journey: Annotated[str | None, typer.Option("--journey", help="Journey code")] = None,
    brand: Annotated[str | None, typer.Option("--brand", help="Brand")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """List messages, newest first, addresses masked.

    Example: siyu messages list --customer 13800138000 --json
    """
    from siyu.messaging.listing import list_messages

    with user_errors():
        app = get_app()
        ids = None
        if customer is not None:
            from siyu.customers.view import find_customer_ids

            ids = _find(app, customer, brand, find_customer_ids) or [customer]
        with app.store.unit_of_work() as session:
            rows = list_messages(
                session, brand=brand, customer_ids=ids, journey=journey, limit=limit, ring=app.settings.pii_keyring
            )
    if as_json:
        print_json(rows)
        return
    table = Table(title="messages 消息")
    for col in ("id", "channel 渠道", "status 状态", "reason 原因", "to 收件人", "journey 旅程", "at 时间"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["channel"], r["status"], r["reason"] or "", r["to"] or "",
                      r["journey"] or "", r["sent_at"] or r["not_before"])  # fmt: skip
    console.print(table)


def _find(app: App, key: str, brand: str | None, finder: Callable[..., list[str]]) -> list[str]:
    from siyu.identity.service import NothingToResolveError

    try:
        return finder(app, key, brand)
    except NothingToResolveError:  # no One-ID yet: the key can only be a customer id
        return [key]


@policy_app.command("set")
def policy_set(
    brand: Annotated[str, typer.Option("--brand", help="Brand code")],
    cap: Annotated[
        list[str] | None,
        typer.Option("--cap", help="COUNT/DAYS[:CHANNEL], e.g. 2/7 or 1/1:sms (repeat; replaces all caps)"),
    ] = None,
    no_caps: Annotated[bool, typer.Option("--no-caps", help="Remove every cap")] = False,
    quiet: Annotated[
        str | None, typer.Option("--quiet", help="Quiet hours HH:MM-HH:MM, e.g. 21:00-08:00; 'off'")
    ] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="Time zone of the quiet hours")] = None,
    webhook_url: Annotated[str | None, typer.Option("--webhook-url", help="The brand's webhook URL")] = None,
    webhook_secret: Annotated[str | None, typer.Option("--webhook-secret", help="HMAC secret for the webhook")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who makes the change (audit)")] = None,
) -> None:
    """Change a brand's message policy; options not given keep their value.

    Example: siyu messages policy set --brand demo --cap 2/7 --cap 1/1:sms --quiet 21:00-08:00
    """
    from dataclasses import replace

    from siyu.messaging.policy import BrandPolicy, Cap, InvalidPolicyError, load_policy, masked, save_policy

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor(by)) as uow:
            policy = load_policy(uow.session, brand)
            if no_caps:
                policy = replace(policy, caps=())
            if cap:
                try:
                    caps = []
                    for c in cap:
                        count, _, rest = c.partition("/")
                        days, _, channel = rest.partition(":")
                        caps.append(Cap(int(count), int(days), channel or None))
                except ValueError as error:
                    raise InvalidPolicyError(
                        f"--cap is COUNT/DAYS[:CHANNEL], e.g. 2/7 or 1/1:sms; got {c!r}"
                    ) from error
                policy = replace(policy, caps=tuple(caps))
            if quiet is not None:
                start, _, end = quiet.partition("-")
                policy = replace(policy, quiet_start=None, quiet_end=None) if quiet == "off" else replace(
                    policy, quiet_start=start or None, quiet_end=end or None)  # fmt: skip
            if timezone is not None:
                policy = replace(policy, timezone=timezone or None)
            if webhook_url is not None:
                policy = replace(policy, webhook_url=webhook_url or None)
            if webhook_secret is not None:
                policy = replace(policy, webhook_secret=webhook_secret or None)
            before = save_policy(uow.session, brand, BrandPolicy.from_dict(json.loads(policy.to_json())), uow.now)
            uow.audit("messages.policy_set", "brand", brand, brand=brand,
                      before=masked(before) if before else None, after=masked(policy))  # fmt: skip
        print_json(masked(policy))


@policy_app.command("show")
def policy_show(brand: Annotated[str, typer.Option("--brand", help="Brand code")]) -> None:
    """Print a brand's message policy (defaults when none was set) as JSON."""
    from siyu.messaging.policy import load_policy, masked

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            print_json(masked(load_policy(session, brand)))


@messages_app.command("receipt-url")
def receipt_url() -> None:
    """The URL to configure as Aliyun's SMS receipt push (SmsReport) address."""
    from siyu.messaging.receipts import receipt_token

    app = get_app()
    console.print(f"{app.settings.channels.public_url.rstrip('/')}/api/v1/messaging/sms/receipts?token="
                  f"{receipt_token(app.settings.pii_key)}", highlight=False, soft_wrap=True)  # fmt: skip
