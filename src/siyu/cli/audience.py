"""`siyu audience …`: audiences (人群圈选) — create, preview, count, export, diff, snapshots,
scheduled refresh, and reachability per channel (亮灯)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.audiences.errors import AudienceError
from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.dates import parse_date

audience_app = typer.Typer(help="Audiences (人群圈选): rules over tags, layers, behaviour and reachability.")

BrandOpt = Annotated[str, typer.Option("--brand", help="Brand code, e.g. demo")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
CodeArg = Annotated[str | None, typer.Argument(help="Saved audience code (or give --rule)")]
RuleOpt = Annotated[
    str | None, typer.Option("--rule", help="A rule: text form, JSON, or @file (.json or .txt) — see docs/audiences.md")
]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Windows end on this brand-local day (default: today)")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option("--columns", help="Only these, comma-separated: customer_id,name,phone,email,city,tier (default all)"),
]
HEADERS = {"customer_id": "customer 客户", "name": "name 姓名", "phone": "phone 手机", "email": "email 邮箱",
           "city": "city 城市", "tier": "tier 等级"}  # fmt: skip


def _rule_text(rule: str | None) -> str | None:
    if rule is not None and rule.startswith("@"):
        return Path(rule[1:]).read_text(encoding="utf-8")
    return rule


def _day(as_of: str | None) -> date | None:
    return parse_date(as_of, "--as-of") if as_of else None


def _target(code: str | None, rule: str | None) -> dict[str, Any]:
    if (code is None) == (rule is None):
        raise AudienceError("give a saved audience code or --rule, not both (人群代码或 --rule 二选一)")
    return {"code": code, "rule": _rule_text(rule)}


@audience_app.command("create")
def create_command(
    code: Annotated[str, typer.Argument(help="Audience code, e.g. core_first_purchase")],
    brand: BrandOpt,
    rule: Annotated[str, typer.Option("--rule", help="The rule: text form, JSON, or @file")],
    name: Annotated[str | None, typer.Option("--name", help="A name people read")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    refresh_minutes: Annotated[
        int | None, typer.Option("--refresh-minutes", help="Snapshot on a schedule (run `siyu audience refresh`)")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing audience's rule")] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who creates it (default: you)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Save an audience (the rule is validated and compiled now).

    Example: siyu audience create gold_at_risk --brand demo
      --rule 'tier = 金卡 and lifecycle = at_risk and reachable sms'
    """
    from siyu.audiences import service

    with user_errors():
        text = _rule_text(rule)
        assert text is not None
        app = get_app()
        checked = service.check_rule(app, brand, text)
        with app.store.begin(cli_actor(by)) as uow:
            out = service.do_create_audience(
                uow,
                code,
                checked,
                name=name,
                description=description,
                refresh_minutes=refresh_minutes,
                replace=replace,
            )
    print_json(out) if as_json else console.print(f"audience 人群 {code} saved 已保存")


@audience_app.command("count")
def count_command(
    brand: BrandOpt, code: CodeArg = None, rule: RuleOpt = None, as_of: AsOfOpt = None, as_json: JsonOpt = False
) -> None:
    """How many customers match now. Example: siyu audience count --brand demo --rule 'member and has phone'"""
    from siyu.audiences import service

    with user_errors():
        out = service.count_audience(get_app(), brand, as_of=_day(as_of), **_target(code, rule))
    if as_json:
        print_json(out)
        return
    console.print(f"{out['customers']:,} customers 客户 (as of 截至 {out['as_of']}, {out['seconds']} s)")


@audience_app.command("preview")
def preview_command(
    brand: BrandOpt,
    code: CodeArg = None,
    rule: RuleOpt = None,
    as_of: AsOfOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    columns: ColumnsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The size and a sample of customers, PII masked. Example: siyu audience preview vip --brand demo"""
    from siyu.audiences import service
    from siyu.audiences.minimum import pick_columns

    with user_errors():
        out = service.preview_audience(
            get_app(), brand, as_of=_day(as_of), limit=limit, columns=columns, **_target(code, rule)
        )
    if as_json:
        print_json(out)
        return
    table = Table(title=f"{out['customers']:,} customers 客户 · sample 样本 (as of 截至 {out['as_of']})")
    shown = pick_columns(columns)  # already checked by the preview
    for col in shown:
        table.add_column(HEADERS[col])
    for r in out["sample"]:
        table.add_row(*(str(r[k] or "") for k in shown))
    console.print(table)


@audience_app.command("export")
def export_command(
    brand: BrandOpt,
    out: Annotated[Path, typer.Option("--out", help="File to write: .csv or .parquet (the format)")],
    code: CodeArg = None,
    rule: RuleOpt = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv | parquet; must agree with --out's extension")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists")] = False,
    unmasked: Annotated[
        bool, typer.Option("--unmasked", help="Write phone, e-mail and name in clear (recorded with --by)")
    ] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who exports (default: you; kept in the audit)")] = None,
    columns: ColumnsOpt = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="Why clear PII is needed; required with --unmasked (audited)")
    ] = None,
    consent_purpose: Annotated[
        str | None,
        typer.Option("--consent-purpose", help="marketing_sms | marketing_email | wecom: leave out who withdrew it"),
    ] = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export customer_id, name, phone, email, city, tier (or --columns); PII masked unless --unmasked.

    The local operator may ask for clear PII (the workspace is theirs); every export is logged with
    who, when, rows and whether it was unmasked. An existing file is replaced only with --force, and
    the file appears only once complete. Example: siyu audience export vip --brand demo --out vip.csv
    """
    from siyu.audiences import service

    with user_errors():
        app = get_app()
        with (
            service.export_audience(
                app,
                brand,
                out,
                file_format=file_format,
                unmasked=unmasked,
                allow_unmasked=unmasked,
                as_of=_day(as_of),
                force=force,
                columns=columns,
                purpose=purpose,
                consent_purpose=consent_purpose,
                **_target(code, rule),
            ) as exported,
            app.store.begin(cli_actor(by)) as uow,
        ):
            result = service.do_record_export(uow, exported)
    if as_json:
        print_json(result)
        return
    masked = "unmasked 明文" if result["unmasked"] else "PII masked 已脱敏"
    console.print(f"{result['rows']:,} customers 客户 → {result['path']} ({result['format']}, {masked})")


@audience_app.command("diff")
def diff_command(
    a: Annotated[str, typer.Argument(help="Audience code, or code@snapshot_id")],
    b: Annotated[str, typer.Argument(help="Audience code, or code@snapshot_id")],
    brand: BrandOpt,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Overlap of two audiences. Example: siyu audience diff vip at_risk --brand demo"""
    from siyu.audiences import snapshots

    with user_errors():
        out = snapshots.diff_audiences(get_app(), brand, a, b, _day(as_of))
    if as_json:
        print_json(out)
        return
    table = Table(title="audience overlap 人群重合")
    for col in ("", "customers 客户"):
        table.add_column(col)
    for label, n in (
        (f"{a} (A)", out["a"]["customers"]),
        (f"{b} (B)", out["b"]["customers"]),
        ("both 交集", out["both"]),
        ("only A 仅A", out["only_a"]),
        ("only B 仅B", out["only_b"]),
        ("union 并集", out["union"]),
    ):
        table.add_row(label, f"{n:,}")
    console.print(table)
    console.print(f"Jaccard 相似度: {out['jaccard']}")


@audience_app.command("reach")
def reach_command(
    brand: BrandOpt, code: CodeArg = None, rule: RuleOpt = None, as_of: AsOfOpt = None, as_json: JsonOpt = False
) -> None:
    """Reachability lights (亮灯): per channel, how many can be reached now (whole brand by default).

    Example: siyu audience reach vip --brand demo
    """
    from siyu.audiences import service

    with user_errors():
        target = {"code": code, "rule": _rule_text(rule)}
        out = service.reach_counts(get_app(), brand, as_of=_day(as_of), **target)
    if as_json:
        print_json(out)
        return
    table = Table(title=f"reachability 亮灯 · {out['customers']:,} customers 客户 (as of 截至 {out['as_of']})")
    for col in ("channel 渠道", "reachable 可触达", "share 占比"):
        table.add_column(col)
    for ch in out["channels"].values():
        share = "—" if ch["share"] is None else f"{ch['share'] * 100:.1f}%"
        table.add_row(f"{ch['name_zh']} {ch['name_en']}", f"{ch['customers']:,}", share)
    table.add_row("any channel 任一渠道", f"{out['reachable_any']:,}", "")
    console.print(table)


@audience_app.command("snapshot")
def snapshot_command(
    code: Annotated[str, typer.Argument(help="Audience code")],
    brand: BrandOpt,
    by: Annotated[str | None, typer.Option("--by", help="Who takes it (default: you)")] = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Freeze the audience's membership now (journeys and coupons take snapshots as input)."""
    from siyu.audiences import snapshots

    with user_errors():
        app = get_app()
        members = snapshots.freeze_audience(app, brand, code, _day(as_of))
        with app.store.begin(cli_actor(by)) as uow:
            out = snapshots.do_snapshot_audience(uow, app.lake, members)
    print_json(out) if as_json else console.print(
        f"snapshot 快照 #{out['snapshot_id']}: {out['customers']:,} customers"
    )


@audience_app.command("snapshots")
def snapshots_command(
    code: Annotated[str, typer.Argument(help="Audience code")], brand: BrandOpt, as_json: JsonOpt = False
) -> None:
    """List an audience's snapshots, newest first."""
    from siyu.audiences import snapshots

    with user_errors():
        rows = snapshots.list_snapshots(get_app(), brand, code)
    if as_json:
        print_json(rows)
        return
    for s in rows:
        console.print(f"#{s['snapshot_id']} {s['taken_at']} ({s['trigger']}): {s['customers']:,} customers 客户")


@audience_app.command("refresh")
def refresh_command(as_json: JsonOpt = False) -> None:
    """Snapshot every audience whose --refresh-minutes has passed (run it from cron every few minutes)."""
    from siyu.audiences import snapshots

    with user_errors():
        rows = snapshots.refresh_due(get_app())
    if as_json:
        print_json(rows)
        return
    console.print(f"{len(rows)} audiences refreshed 已刷新")


@audience_app.command("list")
def list_command(brand: BrandOpt, as_json: JsonOpt = False) -> None:
    """The brand's saved audiences."""
    from siyu.audiences import service

    with user_errors():
        rows = service.list_audiences(get_app(), brand)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"audiences 人群 · {brand}")
    for col in ("code 代码", "name 名称", "refresh 刷新(分钟)", "last snapshot 最近快照", "customers 客户"):
        table.add_column(col)
    for a in rows:
        table.add_row(
            a["code"],
            a["name"] or "",
            str(a["refresh_minutes"] or "—"),
            str(a["last_snapshot_at"] or "—"),
            "—" if a["last_count"] is None else f"{a['last_count']:,}",
        )
    console.print(table)


@audience_app.command("delete")
def delete_command(
    code: Annotated[str, typer.Argument(help="Audience code")],
    brand: BrandOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete")] = False,
) -> None:
    """Delete a saved audience (dry run unless --yes; snapshots stay in the lake)."""
    from siyu.audiences import service

    with user_errors():
        app = get_app()
        service.get_audience(app, brand, code)
        if not yes:
            console.print(f"would delete 将删除 audience {code}; re-run with --yes (加 --yes 确认)")
            return
        with app.store.begin(cli_actor()) as uow:
            service.do_delete_audience(uow, brand, code)
    console.print(f"audience 人群 {code} deleted 已删除")
