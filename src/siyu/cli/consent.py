"""`siyu consent`: the consent ledger (同意记录) — set, show, declare brand purposes."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.errors import SiyuError

consent_app = typer.Typer(help="Consent ledger 同意记录: per customer, purpose and channel, with history.",
                          no_args_is_help=True)  # fmt: skip
purpose_app = typer.Typer(help="Brand-declared consent purposes 同意目的.", no_args_is_help=True)
consent_app.add_typer(purpose_app, name="purpose")


class BadEvidenceError(SiyuError):
    code = "bad_evidence"
    exit_code = 2


@consent_app.command("set")
def set_command(
    customer_id: Annotated[str, typer.Argument(help="Customer id (One-ID)")],
    brand: Annotated[str, typer.Option("--brand", help="Brand code")],
    purpose: Annotated[str, typer.Option("--purpose", help="marketing_sms, marketing_email, wecom, … or declared")],
    granted: Annotated[bool, typer.Option("--granted/--withdrawn", help="Grant or withdraw")],
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel (default: every channel)")] = None,
    source: Annotated[str, typer.Option("--source", help="Where the decision came from: form, call, cli…")] = "cli",
    evidence: Annotated[str | None, typer.Option("--evidence", help='JSON, e.g. {"form": "signup", "ip": "…"}')] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who records it (audit)")] = None,
) -> None:
    """Record a consent decision (kept as history; the latest wins).

    Example: siyu consent set c_123 --brand demo --purpose marketing_sms --withdrawn --source call
    """
    from siyu.messaging.consent import ConsentChange, do_record_consents

    with user_errors():
        try:
            proof = json.loads(evidence) if evidence else {}
        except ValueError as error:
            raise BadEvidenceError(f"--evidence must be a JSON object: {error}") from error
        app = get_app()
        with app.store.begin(cli_actor(by)) as uow:
            do_record_consents(uow, [ConsentChange(brand, customer_id, purpose, granted, source, proof, channel)])
    console.print(f"{'granted 已同意' if granted else 'withdrawn 已撤回'}: {customer_id} {purpose}"
                  + (f" ({channel})" if channel else ""), highlight=False)  # fmt: skip


@consent_app.command("show")
def show_command(
    customer_id: Annotated[str, typer.Argument(help="Customer id (One-ID)")],
    brand: Annotated[str, typer.Option("--brand", help="Brand code")],
) -> None:
    """Print the current consent per purpose/channel and the full history, as JSON."""
    from siyu.messaging.consent import consent_state

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            print_json(consent_state(session, brand, customer_id))


@purpose_app.command("add")
def purpose_add(
    code: Annotated[str, typer.Argument(help="Purpose code, e.g. member_survey")],
    brand: Annotated[str, typer.Option("--brand", help="Brand code")],
    name_zh: Annotated[str | None, typer.Option("--name-zh")] = None,
    name_en: Annotated[str | None, typer.Option("--name-en")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who declares it (audit)")] = None,
) -> None:
    """Declare a brand purpose, so consent can be recorded for it."""
    from siyu.messaging.consent import do_declare_purpose

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor(by)) as uow:
            created = do_declare_purpose(uow, brand, code, name_zh, name_en)
    console.print(f"{'declared 已声明' if created else 'exists 已存在'}: {code}")


@purpose_app.command("list")
def purpose_list(brand: Annotated[str, typer.Option("--brand", help="Brand code")]) -> None:
    from siyu.messaging.consent import purposes

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            print_json({k: {"name_zh": zh, "name_en": en} for k, (zh, en) in purposes(session, brand).items()})
