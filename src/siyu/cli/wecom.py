"""`siyu wecom …` (configuration, welcome messages, callbacks), `siyu qrcodes …` (渠道活码) and the
transfer commands (客户继承) that `siyu guides` mounts: `transfer_command`, `transfer_status_command`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.errors import SiyuError

if TYPE_CHECKING:
    from siyu.bootstrap import App
    from siyu.wecom.client import WeComClient

wecom_app = typer.Typer(help="WeCom (企业微信): configuration, welcome messages, callbacks", no_args_is_help=True)
qrcodes_app = typer.Typer(help="Channel QR codes (渠道活码)", no_args_is_help=True)
welcome_app = typer.Typer(help="Welcome messages per channel code (欢迎语)", no_args_is_help=True)
wecom_app.add_typer(welcome_app, name="welcome")

Brand = Annotated[str, typer.Option("--brand", help="Brand code")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


class WecomInputError(SiyuError):
    code = "wecom_invalid_input"
    exit_code = 2


def brand_client(app: App, brand: str) -> WeComClient:
    from siyu.wecom.client import WeComClient
    from siyu.wecom.settings import load

    with app.store.unit_of_work() as session:
        corp = load(session, app.settings.pii_keyring, brand)
    return WeComClient(app.settings.wecom_api_base, corp.corp_id, corp.secret)


@wecom_app.command("configure")
def configure_command(
    brand: Brand,
    corp_id: Annotated[str, typer.Option("--corp-id", help="企业 ID (CorpID)")],
    token: Annotated[str, typer.Option("--token", help="Callback Token (接收事件服务器 Token)")],
    aes_key: Annotated[str, typer.Option("--aes-key", help="Callback EncodingAESKey (43 characters)")],
    secret: Annotated[str, typer.Option("--secret", help="客户联系 Secret (or an app's secret with contact rights)")],
) -> None:
    """Store a brand's WeCom settings; token, EncodingAESKey and secret are encrypted with SIYU_PII_KEY
    and never printed. Then set the callback URL in WeCom to https://HOST/wecom/callback/BRAND.

    Example: siyu wecom configure --brand demo --corp-id ww123 --token T --aes-key K43… --secret S
    """
    from siyu.wecom.settings import CorpSettings, do_configure

    with user_errors():
        app = get_app()
        corp = CorpSettings(brand, corp_id, token, aes_key, secret)
        with app.store.begin(cli_actor()) as uow:
            created = do_configure(uow, app.settings.pii_keyring, corp)
        console.print(
            f"WeCom {'configured' if created else 'updated'} 已配置 for {brand}: callback URL /wecom/callback/{brand}"
        )


@wecom_app.command("show")
def show_command(brand: Brand, as_json: AsJson = False) -> None:
    """The brand's WeCom settings with secrets masked, and callback / welcome counts."""
    from sqlalchemy import func, select

    from siyu.wecom.models import WecomCallback, WecomWelcomeSend
    from siyu.wecom.settings import load, masked

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as s:
            view: dict[str, Any] = masked(load(s, app.settings.pii_keyring, brand))
            view["callbacks"] = dict(
                s.execute(
                    select(func.coalesce(WecomCallback.change_type, WecomCallback.event), func.count())
                    .where(WecomCallback.brand == brand)
                    .group_by(func.coalesce(WecomCallback.change_type, WecomCallback.event))
                ).all()
            )
            view["callbacks_pending"] = s.scalar(
                select(func.count()).where(WecomCallback.brand == brand, WecomCallback.processed_at.is_(None))
            )
            view["welcomes"] = dict(
                s.execute(
                    select(WecomWelcomeSend.status, func.count())
                    .where(WecomWelcomeSend.brand == brand)
                    .group_by(WecomWelcomeSend.status)
                ).all()
            )
        if as_json:
            print_json(view)
        else:
            for k, v in view.items():
                console.print(f"{k}: {v}", highlight=False)


@welcome_app.command("set")
def welcome_set_command(
    brand: Brand,
    state: Annotated[str, typer.Option("--state", help="Channel code state; '' = the brand's default")] = "",
    text: Annotated[
        str | None,
        typer.Option("--text", help="Text; variables {name} {staff_id} {state} {store_code} {channel} {campaign}"),
    ] = None,
    link: Annotated[str | None, typer.Option("--link", help='JSON: {"title","url","picurl","desc"}')] = None,
    miniprogram: Annotated[
        str | None, typer.Option("--miniprogram", help='JSON: {"title","appid","page","pic_media_id"}')
    ] = None,
    image: Annotated[str | None, typer.Option("--image", help='JSON: {"media_id"} or {"pic_url"}')] = None,
) -> None:
    """Set the welcome message (欢迎语) of a channel code.

    Example: siyu wecom welcome set --brand demo --state store_sh01 --text "{name}您好，我是您的专属顾问"
    """
    from siyu.wecom.welcome import do_set_welcome

    with user_errors():
        try:
            content = {
                "text": text,
                **{k: json.loads(v) for k, v in (("link", link), ("miniprogram", miniprogram), ("image", image)) if v},
            }
        except json.JSONDecodeError as exc:
            raise WecomInputError(f"attachment is not JSON: {exc} (附件须为 JSON)") from None
        app = get_app()
        try:
            with app.store.begin(cli_actor()) as uow:
                do_set_welcome(uow, brand, state, content)
        except ValueError as exc:
            raise WecomInputError(str(exc)) from None
        console.print(f"welcome set 欢迎语已设置: {brand}/{state or '(default)'}")


@qrcodes_app.command("create")
def qrcodes_create_command(
    brand: Brand,
    state: Annotated[str, typer.Option("--state", help="≤ 30 characters, unique per brand")],
    staff: Annotated[str, typer.Option("--staff", help="WeCom userid(s), comma-separated")],
    store: Annotated[str | None, typer.Option("--store", help="Store code")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Channel (e.g. poster, counter, live)")] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Campaign code")] = None,
    exclusive: Annotated[bool, typer.Option("--exclusive", help="Adds through it bind only to its staff")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Poster folder (default $SIYU_HOME/qrcodes)")] = None,
    as_json: AsJson = False,
) -> None:
    """Create a channel QR code at WeCom (add_contact_way) and write its PNG poster.

    Example: siyu qrcodes create --brand demo --state sh01_counter --staff zhangsan --store SH01 --json
    """
    from siyu.wecom.qrcodes import QrCodeRequest, do_create_qrcode

    with user_errors():
        app = get_app()
        request = QrCodeRequest(
            brand=brand, state=state, staff_ids=tuple(s.strip() for s in staff.split(",") if s.strip()),
            store_code=store, channel=channel, campaign=campaign, exclusive=exclusive,
        )  # fmt: skip
        client = brand_client(app, brand)
        try:
            with app.store.begin(cli_actor()) as uow:
                row = do_create_qrcode(uow, client, request, out or app.settings.home / "qrcodes")
                result = {"state": row.state, "config_id": row.config_id, "qr_code": row.qr_code, "png": row.png}
        finally:
            client.close()
        if as_json:
            print_json(result)
        else:
            console.print(f"QR code 渠道活码 {state}: {result['png']}", highlight=False)


@qrcodes_app.command("list")
def qrcodes_list_command(brand: Brand, as_json: AsJson = False) -> None:
    """The brand's channel QR codes."""
    from siyu.wecom.qrcodes import list_codes

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor(), write=False) as uow:
            codes = list_codes(uow, brand)
        if as_json:
            print_json(codes)
        else:
            for c in codes:
                console.print(
                    f"{c['state']}\t{','.join(c['staff'])}\t{c['store_code'] or ''}\t{c['png']}", highlight=False
                )


def transfer_command(
    brand: Brand,
    from_staff: Annotated[str, typer.Option("--from", help="Handover staff userid")],
    to_staff: Annotated[str, typer.Option("--to", help="Takeover staff userid")],
    audience: Annotated[str | None, typer.Option("--audience", help="Only customers in this audience")] = None,
    resigned: Annotated[bool, typer.Option("--resigned", help="The handover staff member has left (离职继承)")] = False,
    as_json: AsJson = False,
) -> None:
    """Hand a staff member's WeCom customers to another (客户继承): on-job (the customer may refuse) or
    --resigned. Then run `siyu guides transfer-status` to read WeCom's results and rebind.

    Example: siyu guides transfer --brand demo --from zhangsan --to lisi --resigned
    """
    from siyu.wecom.audience import audience_contacts
    from siyu.wecom.transfers import customers_of, do_transfer

    with user_errors():
        app = get_app()
        externals = customers_of(app, brand, from_staff)
        if audience:
            members = audience_contacts(app, brand, audience)
            externals = [e for e in externals if e in members]
        client = brand_client(app, brand)
        try:
            outcome = do_transfer(app, client, brand, from_staff, to_staff, externals, resigned, cli_actor())
        finally:
            client.close()
        result = {"requested": outcome.requested, "failed": outcome.refused_now}
        if as_json:
            print_json(result)
        else:
            console.print(f"transfer requested 已提交 {outcome.requested}; failed {len(outcome.refused_now)}")


def transfer_status_command(brand: Brand, as_json: AsJson = False) -> None:
    """Poll WeCom for transfer results (waiting, succeeded, refused, limit exceeded) and rebind the
    customers taken over, effective at WeCom's takeover time."""
    from siyu.wecom.transfers import poll, status_rows

    with user_errors():
        app = get_app()
        client = brand_client(app, brand)
        try:
            counts = poll(app, client, brand, cli_actor())
        finally:
            client.close()
        if as_json:
            print_json({"counts": counts, "transfers": status_rows(app, brand)})
        else:
            console.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no transfers")
