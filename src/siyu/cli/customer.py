"""`siyu customer show`: the customer view (客户视图)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, print_json, user_errors
from siyu.core.money import format_fen

customer_app = typer.Typer(help="Look up customers (客户).")


@customer_app.command("show")
def show(
    key: Annotated[str, typer.Argument(help="Customer id, phone (any format) or member no")],
    brand: Annotated[str | None, typer.Option(help="Brand, when the key matches customers of several brands")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the customer as JSON")] = False,
) -> None:
    """Show one customer: identifiers (masked), sources, memberships, order summary.

    Example: siyu customer show "+86 138 0013 8000" --json
    """
    from siyu.customers.view import customer_view

    with user_errors():
        view = customer_view(get_app(), key, brand)
    if as_json:
        print_json(view)
        return
    console.print(f"[bold]customer 客户[/] {view['customer_id']}  brand 品牌 {view['brand']}")
    ids = Table(title="identifiers 身份标识")
    for col in ("type 类型", "value 值", "strength 强度", "sources 来源"):
        ids.add_column(col)
    for i in view["identifiers"]:
        ids.add_row(i["type"], i["value"], i["strength"], ", ".join(i["sources"]))
    console.print(ids)
    console.print("sources 来源: " + ", ".join(f"{s['source']}:{s['source_customer_id']}" for s in view["sources"]))
    for m in view["memberships"]:
        console.print(f"membership 会员 {m['member_no']} {m['tier'] or ''} joined 入会 {m['joined_at']}")
    o = view["orders"]
    console.print(f"orders 订单: {o['count']} paid 已付, net 净额 {format_fen(o['amount_fen'])}")
    for t in view.get("tags", []):
        who = f" by {t['set_by']}" if t["set_by"] else ""
        console.print(f"tag 标签 {t['tag']} = {t['value']} ({t['origin']}{who})")
    lights = view.get("lights", {})
    if lights:
        console.print(
            "lights 亮灯: "
            + "  ".join(f"{'●' if c['on'] else '○'} {c['name_zh']} {c['name_en']}" for c in lights.values())
        )
    for a in view.get("loyalty", []):
        lots = a["points"]["lots"]
        soonest = (
            f" · next expiry 最近到期 {lots[0]['points']:,} on {lots[0]['expires_at'][:10]}"
            if lots and lots[0]["expires_at"]
            else ""
        )
        unused = sum(c["status"] == "issued" for c in a["coupons"])
        console.print(
            f"loyalty 会员中台 {a['program']} {a['member_no']}: tier 等级 {a['tier']} ({a['tier_name_zh']}) · "
            f"growth 成长值 {a['growth']:,} · points 积分 {a['points']['balance']:,}{soonest} · "
            f"unused coupons 未用券 {unused}"
        )
