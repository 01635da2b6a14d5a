"""`siyu subject`: a person's rights over their data (个人信息主体权利) — export a copy, erase."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.errors import SiyuError

subject_app = typer.Typer(help="Data-subject rights 个人信息主体权利: export a person's data, erase it.",
                          no_args_is_help=True)  # fmt: skip

KeyArg = Annotated[str, typer.Argument(help="Customer id, phone (any format), e-mail or member no")]
BrandOpt = Annotated[str | None, typer.Option("--brand", help="Only the person's customer of this brand")]


@subject_app.command("export")
def export_command(
    key: KeyArg,
    out: Annotated[Path, typer.Option("--out", help="The zip to write (JSON + one CSV per table)")],
    brand: BrandOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file")] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who asks (audit)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows per table as JSON")] = False,
) -> None:
    """Write everything siyu holds about a person to a zip (audited).

    Example: siyu subject export 13900000001 --out person.zip
    """
    from siyu.privacy.subject_export import export_subject

    with user_errors():
        result = export_subject(get_app(), key, out, actor=cli_actor(by), brand=brand, force=force)
    if as_json:
        print_json(result)
        return
    held = {k: v for k, v in result["tables"].items() if v}
    console.print(f"exported 已导出 {sum(held.values())} rows from {len(held)} tables → {out}", highlight=False)


class ConfirmationError(SiyuError):
    code = "confirmation_required"
    exit_code = 2


@subject_app.command("erase")
def erase_command(
    key: KeyArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (the request, its date): audited")],
    yes: Annotated[bool, typer.Option("--yes", help="Really erase: it cannot be undone")] = False,
    brand: BrandOpt = None,
    by: Annotated[str | None, typer.Option("--by", help="Who erases (audit)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was erased as JSON")] = False,
) -> None:
    """Erase a person in the store and the lake, older lake versions included; orders and the
    points ledger stay under a pseudonym, and a later import of them is quarantined `erased`.

    Example: siyu subject erase 13900000001 --reason "request 2026-12-01 #42" --yes
    """
    from siyu.privacy.erasure import erase_subject

    with user_errors():
        if not yes:
            raise ConfirmationError("erasure cannot be undone (删除不可撤销): pass --yes to confirm")
        report = erase_subject(get_app(), key, reason=reason, actor=cli_actor(by), brand=brand)
    if as_json:
        print_json(report.as_json())
        return
    gone = sum(report.store.values()) + sum(report.lake.values())
    console.print(
        f"erased 已删除 {', '.join(report.customer_ids)}: {gone} rows, {report.purged_files} old lake files purged, "
        f"{report.tombstones} tombstones",
        highlight=False,
    )
