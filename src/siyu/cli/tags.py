"""`siyu tags …`: tag groups and definitions, rule-tag computation, manual and imported tags,
history (标签)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.audiences.errors import TagError
from siyu.audiences.labels import TAG_KINDS
from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.dates import parse_date

tags_app = typer.Typer(help="Tags (标签): groups, rule tags, manual tags set by guides, imported tags, history.")

BrandOpt = Annotated[str, typer.Option("--brand", help="Brand code, e.g. demo")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by", help="Who makes the change (operator or guide id; default: you), kept in the history and audit"
    ),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, kept in the history")]


def _rule(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TagError(f"--rule is not valid JSON: {exc.msg} (规则 JSON 无效)") from exc
    if not isinstance(value, dict):
        raise TagError("--rule must be a JSON object (规则须为 JSON 对象)")
    return value


@tags_app.command("list")
def list_command(brand: BrandOpt, as_json: JsonOpt = False) -> None:
    """List the brand's tags by group. Example: siyu tags list --brand demo"""
    from siyu.audiences import tags

    with user_errors():
        rows = tags.list_tags(get_app(), brand)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"tags 标签 · {brand}")
    for col in ("group 组", "tag 标签", "name 名称", "kind 类型", "values 取值", "computed 计算于"):
        table.add_column(col)
    for t in rows:
        kind = TAG_KINDS.get(t["kind"], (t["kind"], t["kind"]))
        table.add_row(
            t["group"] or "",
            t["code"],
            f"{t['name_zh'] or ''} {t['name_en'] or ''}".strip(),
            f"{kind[0]} {kind[1]}",
            ", ".join(t["values"]) or t["value_type"],
            str(t["computed_at"] or ""),
        )
    console.print(table)


@tags_app.command("group")
def group_command(
    code: Annotated[str, typer.Argument(help="Group code, e.g. price")],
    brand: BrandOpt,
    name_zh: Annotated[str | None, typer.Option("--name-zh", help="Chinese name")] = None,
    name_en: Annotated[str | None, typer.Option("--name-en", help="English name")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or rename a tag group. Example: siyu tags group price --brand demo --name-zh 价格 --name-en Price"""
    from siyu.audiences import tags

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        out = tags.do_define_group(uow, brand, code, name_zh, name_en)
    print_json(out) if as_json else console.print(f"tag group 标签组 {code} saved 已保存")


@tags_app.command("define")
def define_command(
    code: Annotated[str, typer.Argument(help="Tag code, e.g. price_band")],
    brand: BrandOpt,
    kind: Annotated[str, typer.Option("--kind", help="rule | manual | imported")] = "manual",
    value_type: Annotated[str, typer.Option("--type", help="enum | number | flag (rule tags: from the rule)")] = "enum",
    values: Annotated[str | None, typer.Option("--values", help="Enum values, comma separated")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Rule tags: the rule as JSON, or @file.json")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Tag group code")] = None,
    name_zh: Annotated[str | None, typer.Option("--name-zh", help="Chinese name")] = None,
    name_en: Annotated[str | None, typer.Option("--name-en", help="English name")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the tag means")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or redefine a tag (see docs/audiences.md for rule tags).

    Example: siyu tags define price_band --brand demo --kind rule
      --rule '{"measure": "avg_item_price_fen", "last_days": 365,
               "bands": [{"value": "low", "below": 20000}, {"value": "mid", "below": 40000}, {"value": "high"}]}'
    """
    from siyu.audiences import tags

    with user_errors(), get_app().store.begin(cli_actor(by)) as uow:
        out = tags.do_define_tag(
            uow,
            brand,
            code,
            kind=kind,
            value_type=value_type,
            values=[v.strip() for v in values.split(",") if v.strip()] if values else None,
            rule=_rule(rule),
            group=group,
            name_zh=name_zh,
            name_en=name_en,
            description=description,
        )
    print_json(out) if as_json else console.print(f"tag 标签 {code} ({out['kind']}, {out['value_type']}) saved 已保存")


@tags_app.command("compute")
def compute_command(
    brand: BrandOpt,
    codes: Annotated[list[str] | None, typer.Argument(help="Rule tags to compute (default: all rule tags)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Windows end on this day (default: today)")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute rule tags for every customer into the lake (table tag_values).

    Example: siyu tags compute --brand demo price_band --as-of 2024-06-30
    """
    from siyu.audiences import tag_rules, tags

    with user_errors():
        app = get_app()
        day = parse_date(as_of, "--as-of") if as_of else None
        wanted = codes or [t["code"] for t in tags.list_tags(app, brand) if t["kind"] == "rule"]
        runs = [tag_rules.compute_tag(app, brand, c, day) for c in wanted]  # into the lake, then recorded
        with app.store.begin(cli_actor(by)) as uow:
            results = [tag_rules.do_compute_tag(uow, run) for run in runs]
    if as_json:
        print_json(results)
        return
    for r in results:
        values = ", ".join(f"{k} {v}" for k, v in r["values"].items())
        console.print(f"{r['tag']}: {r['customers']:,} customers 客户 ({values}) in {r['seconds']} s")


@tags_app.command("set")
def set_command(
    code: Annotated[str, typer.Argument(help="Manual tag code")],
    customer_id: Annotated[str, typer.Argument(help="Customer id")],
    brand: BrandOpt,
    value: Annotated[str | None, typer.Argument(help="Value (not for flag tags)")] = None,
    by: ByOpt = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a manual tag on a customer (who, when, why are kept).

    Example: siyu tags set interest c1a2b3 skincare --brand demo --by guide007 --reason "asked about serums"
    """
    from siyu.audiences import tag_manual

    with user_errors():
        app = get_app()
        customer = tag_manual.known_customer(app.engine, brand, customer_id)
        with app.store.begin(cli_actor(by)) as uow:
            out = tag_manual.do_set_tag(uow, customer, code, value, reason=reason)
    print_json(out) if as_json else console.print(
        f"{customer_id}: {code} = {out['value']} (was 原值 {out['previous']})"
    )


@tags_app.command("remove")
def remove_command(
    code: Annotated[str, typer.Argument(help="Manual tag code")],
    customer_id: Annotated[str, typer.Argument(help="Customer id")],
    brand: BrandOpt,
    by: ByOpt = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a manual tag from a customer. Example: siyu tags remove interest c1a2b3 --brand demo --by guide007"""
    from siyu.audiences import tag_manual

    with user_errors(), get_app().store.begin(cli_actor(by)) as uow:
        out = tag_manual.do_remove_tag(uow, brand, code, customer_id, reason=reason)
    print_json(out) if as_json else console.print(f"{customer_id}: {code} removed 已移除")


@tags_app.command("import")
def import_command(
    code: Annotated[str, typer.Argument(help="Imported tag code")],
    path: Annotated[Path, typer.Argument(help="CSV: customer_id,value or source,source_customer_id,value")],
    brand: BrandOpt,
    by: ByOpt = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace an imported tag's values with a CSV file. Example: siyu tags import dmp_segment seg.csv --brand demo"""
    from siyu.audiences import tag_import

    with user_errors():
        app = get_app()
        file = tag_import.read_tag_file(app, brand, path)
        with app.store.begin(cli_actor(by)) as uow:
            out = tag_import.do_import_tags(uow, code, file, reason=reason)
    if as_json:
        print_json(out)
        return
    console.print(f"{code}: {out['customers']:,} customers 客户 tagged, {out['unmatched']} rows unmatched 未匹配")


@tags_app.command("history")
def history_command(
    brand: BrandOpt,
    code: Annotated[str | None, typer.Argument(help="Tag code (default: all tags)")] = None,
    customer_id: Annotated[str | None, typer.Option("--customer", help="Only this customer")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Tag changes, newest first: who, when, old → new, why. Example: siyu tags history --brand demo interest"""
    from siyu.audiences import tags

    with user_errors():
        rows = tags.history(get_app(), brand, code, customer_id, limit)
    if as_json:
        print_json(rows)
        return
    table = Table(title="tag history 标签历史")
    for col in ("at 时间", "tag 标签", "customer 客户", "action 操作", "old → new 变更", "by 操作人", "why 原因"):
        table.add_column(col)
    for h in rows:
        table.add_row(
            str(h["at"]),
            h["tag"],
            h["customer_id"] or "",
            h["action"],
            f"{h['old_value'] or ''} → {h['new_value'] or ''}",
            h["actor"],
            h["reason"] or "",
        )
    console.print(table)


@tags_app.command("delete")
def delete_command(
    code: Annotated[str, typer.Argument(help="Tag code")],
    brand: BrandOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete (otherwise only say what would go)")] = False,
    by: ByOpt = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a tag and its manual / imported values (dry run unless --yes)."""
    from siyu.audiences import tags

    with user_errors():
        app = get_app()
        if not yes:
            t = tags.tag_definition(app, brand, code)
            console.print(f"would delete 将删除 {t['kind']} tag {code}; re-run with --yes (加 --yes 确认)")
            return
        with app.store.begin(cli_actor(by)) as uow:
            out = tags.do_delete_tag(uow, brand, code, reason=reason)
    print_json(out) if as_json else console.print(f"tag 标签 {code} deleted 已删除")
