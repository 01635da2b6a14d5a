"""`siyu keys create|list|revoke`: API keys (API 密钥); `siyu keys rotate-pii`: the PII key."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke (API 密钥).")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


@keys_app.command("create")
def create(
    brand: Annotated[str, typer.Option("--brand", help="The brand the key may see (registered if new)")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="ingest | read | loyalty | admin, plus pii for unmasked PII; repeat or comma-separate "
            "(a POS or mini program that redeems points: read,loyalty)",
        ),
    ],
    source: Annotated[
        str | None, typer.Option("--source", help="Source recorded for Segment messages sent with this key")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label, e.g. 'mini-program prod'")] = None,
    rate_limit: Annotated[
        int | None, typer.Option("--rate-limit", help="Requests per second (default $SIYU_API_RATE_LIMIT)", min=1)
    ] = None,
    staff: Annotated[
        str | None,
        typer.Option(
            "--staff", help="Guide workbench key 导购工作台: sees only this staff member's customers and tasks"
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store-bound key 门店密钥: sees only this store's customers (as a store manager)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key. The key is printed once and stored only as a hash.

    Example: siyu keys create --brand demo --scope ingest --source mini_program --json   → {"key": …, "id": …}
    """
    from siyu.api.keys import do_create_key, parse_scopes

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor()) as uow:
            secret, info = do_create_key(
                uow,
                brand,
                parse_scopes(scope),
                source,
                name,
                rate_limit,
                default_timezone=app.settings.timezone,
                staff_id=staff,
                store=store,
            )
    if as_json:
        print_json({"key": secret, "id": info.id})
        return
    console.print(f"key 密钥: [bold]{secret}[/]", highlight=False)
    console.print(f"id: {info.id}  brand 品牌: {brand}  scopes 权限: {' '.join(sorted(info.scopes))}", highlight=False)
    console.print("[yellow]Store it now: it is not shown again. 请立即保存，密钥不会再次显示。[/]")


@keys_app.command("list")
def list_command(
    brand: Annotated[str | None, typer.Option("--brand", help="Only this brand's keys")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (ids, prefixes, scopes; never the secrets)."""
    from siyu.api.keys import list_keys

    with user_errors():
        keys = list_keys(get_app(), brand)
    if as_json:
        print_json(keys)
        return
    table = Table(title="API keys 密钥")
    for col in ("id", "prefix 前缀", "brand 品牌", "scopes 权限", "source 来源", "created 创建", "revoked 吊销"):
        table.add_column(col)
    for k in keys:
        table.add_row(
            k["id"], k["prefix"] + "…", k["brand"], " ".join(k["scopes"]), k["source"] or "",
            f"{k['created_at']:%Y-%m-%d %H:%M}", f"{k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "",
        )  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `siyu keys create` or `siyu keys list`)")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: refused by every server within seconds (verified keys are cached for 2 s)."""
    from siyu.api.keys import do_revoke_key

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        key = do_revoke_key(uow, key_id)
    if as_json:
        print_json(key)
        return
    console.print(f"revoked 已吊销 {key['id']} ({key['prefix']}…)")


@keys_app.command("rotate-pii")
def rotate_pii(as_json: JsonOpt = False) -> None:
    """Re-encrypt stored PII (store and the lake's raw tables) under the current key of
    SIYU_PII_KEY_FILE, while siyu keeps running (PII 密钥轮换); also seals a lake from before lake
    encryption. Audited. Afterwards the old key may leave the file (keep the `hash` key).

    Example: siyu keys rotate-pii --json
    """
    from siyu.privacy.rotation import rotate_pii as rotate

    with user_errors():
        report = rotate(get_app(), cli_actor())
    if as_json:
        print_json(report)
        return
    console.print(f"re-encrypted under key 已用密钥 {report['key']} 重新加密: {report}")
