"""`siyu loyalty coupons …`, `siyu loyalty mall …` and `siyu loyalty report cost`: coupons (优惠券),
the points mall (积分商城) and coupon cost allocation (成本分摊)."""

from __future__ import annotations

import csv
import dataclasses
import getpass
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.clock import utc_now
from siyu.core.dates import parse_date
from siyu.core.errors import UnreadableFileError
from siyu.core.money import format_fen
from siyu.loyalty.errors import CouponError, NotMemberError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from siyu.loyalty import mall

coupons_app = typer.Typer(help="Coupons 优惠券: issue (one member, a list file or an audience), redeem, void, list.")
mall_app = typer.Typer(help="Points mall 积分商城: list rewards, redeem points for a reward, cancel a redemption.")

ProgramOpt = Annotated[str, typer.Option("--program", help="Loyalty program code, e.g. demo_club")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
MemberOpt = Annotated[str | None, typer.Option("--member-no", help="Member number 会员号")]
CustomerOpt = Annotated[str | None, typer.Option("--customer", help="Brand customer id (One-ID), with --brand")]
BrandOpt = Annotated[str | None, typer.Option("--brand", help="Brand of --customer, --file or --audience")]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _account(session: Session, program: str, member_no: str | None, customer: str | None, brand: str | None) -> int:
    from siyu.loyalty.accounts import account_by_member_no, account_of

    if member_no is not None and customer is None:
        account = account_by_member_no(session, program, member_no)
        if account is None:
            raise NotMemberError(f"no member {member_no!r} in program {program!r} (会员不存在)")
        return account.id
    if customer is not None and brand is not None and member_no is None:
        found = account_of(session, program, brand=brand, customer_id=customer)
        if found is None:
            raise NotMemberError(f"customer {customer!r} of brand {brand!r} is not a member of {program!r} (非会员)")
        return found.id
    raise NotMemberError("give --member-no, or --customer with --brand (指定会员号，或客户 id 加品牌)")


def _customers_of_file(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if "customer_id" not in (reader.fieldnames or []):
                raise UnreadableFileError(f"{path}: needs a customer_id column (缺少 customer_id 列)")
            return [row["customer_id"].strip() for row in reader if (row["customer_id"] or "").strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableFileError(f"{path}: cannot read the list ({e})") from e


def _customers_of_audience(brand: str, code: str) -> list[str]:
    from siyu.audiences.service import compiled_audience

    app = get_app()
    with compiled_audience(app, brand, code, None, None) as (_, expr):
        return [str(c) for c in app.engine.to_arrow(expr.select("customer_id"))["customer_id"].to_pylist()]


def _coupon_dict(c: Any) -> dict[str, Any]:
    return {
        "code": c.code, "template": c.template, "status": c.status, "issued_at": c.issued_at, "via": c.issued_via,
        "valid_from": c.valid_from, "valid_to": c.valid_to, "redeemed_at": c.redeemed_at,
        "order_id": c.redeemed_order, "discount_fen": c.discount_fen,
    }  # fmt: skip


@coupons_app.command("issue")
def issue_command(
    program: ProgramOpt,
    template: Annotated[str, typer.Option("--template", help="Coupon template code, e.g. welcome20")],
    member_no: MemberOpt = None,
    customer: CustomerOpt = None,
    brand: BrandOpt = None,
    file: Annotated[Path | None, typer.Option("--file", help="CSV with a customer_id column, with --brand")] = None,
    audience: Annotated[str | None, typer.Option("--audience", help="Audience code 人群, with --brand")] = None,
    guide: Annotated[str | None, typer.Option("--guide", help="Issued by this guide 导购 (via guide)")] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Idempotency key; default derived from the inputs, so a rerun is a no-op"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a coupon (发券) to one member, to a list file or to an audience.

    Example: siyu loyalty coupons issue --program demo_club --template welcome20 --file vip.csv --brand demo
    """
    from siyu.loyalty import coupons
    from siyu.loyalty.programs import load_program

    with user_errors():
        app, at, actor = get_app(), utc_now(), _actor()
        if file is None and audience is None:
            with app.store.begin(cli_actor()) as uow:
                session = uow.session
                spec = load_program(session, program)
                account_id = _account(session, program, member_no, customer, brand)
                one = coupons.do_issue_coupon(
                    session, spec, template, account_id, key=key or f"cli:{template}:{account_id}",
                    at=at, actor=actor, via="guide" if guide else "single", guide=guide,
                )  # fmt: skip
            out: dict[str, Any] = {
                "code": one.code, "template": one.template, "account_id": one.account_id,
                "valid_from": one.valid_from, "valid_to": one.valid_to, "replayed": one.replayed,
            }  # fmt: skip
            if as_json:
                print_json(out)
            else:
                again = " (already issued 已发放)" if one.replayed else ""
                console.print(
                    f"coupon 券码 [bold]{one.code}[/] {template} "
                    f"valid to 有效期至 {one.valid_to:%Y-%m-%d %H:%M} UTC{again}"
                )
            return
        if brand is None or (file is not None and audience is not None) or member_no or customer:
            raise CouponError("give --file or --audience (not both) with --brand (名单文件或人群二选一，并指定品牌)")
        if file is not None:
            ids = _customers_of_file(file)
            source = "file:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
        else:
            assert audience is not None
            ids, source = _customers_of_audience(brand, audience), f"audience:{brand}:{audience}"
        with app.store.unit_of_work() as session:
            load_program(session, program)
            members = coupons.accounts_of_customers(session, program, brand, ids)
        bulk = coupons.do_issue_bulk(
            app.store, program, template, list(members.values()), key=key or f"cli:{template}:{source}",
            at=at, actor=actor, via="guide" if guide else "bulk", guide=guide,
        )  # fmt: skip
    skipped = dict(bulk.skipped)
    if outside := len(set(ids)) - len(members):
        skipped["not_a_member"] = skipped.get("not_a_member", 0) + outside
    if as_json:
        print_json({"issued": bulk.issued, "replayed": bulk.replayed, "skipped": skipped})
        return
    console.print(f"issued 已发放 {bulk.issued}  replayed 已发过 {bulk.replayed}")
    for reason, n in sorted(skipped.items()):
        console.print(f"skipped 跳过 {reason}: {n}")


@coupons_app.command("redeem")
def redeem_command(
    program: ProgramOpt,
    code: Annotated[str, typer.Option("--code", help="Coupon code 券码")],
    order_id: Annotated[str, typer.Option("--order-id", help="Order the coupon is used on")],
    brand: Annotated[str, typer.Option("--brand", help="Brand of the order")],
    amount_fen: Annotated[int, typer.Option("--amount-fen", help="Order amount in fen before the coupon", min=0)],
    channel: Annotated[str | None, typer.Option("--channel", help="Order channel, e.g. pos, tmall")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Store code (for cost allocation)")] = None,
    other: Annotated[list[str] | None, typer.Option("--with", help="Other coupon codes on the same order")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Redeem a coupon on an order (核销). Example: siyu loyalty coupons redeem --program demo_club
    --code ABCD2345EFGH --order-id O1 --brand demo --amount-fen 25000"""
    from siyu.loyalty import coupons
    from siyu.loyalty.programs import load_program

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        session = uow.session
        used = coupons.do_redeem_coupon(
            session, load_program(session, program), code, order_id=order_id, brand=brand, channel=channel,
            store=store, amount_fen=amount_fen, at=uow.now, actor=str(uow.actor), other_codes=other or (),
        )  # fmt: skip
    if as_json:
        print_json(dataclasses.asdict(used))
        return
    again = " (already redeemed on this order 已核销)" if used.replayed else ""
    console.print(f"redeemed 已核销 {used.code} ({used.template}) discount 优惠 {format_fen(used.discount_fen)}{again}")


@coupons_app.command("void")
def void_command(
    program: ProgramOpt,
    code: Annotated[str, typer.Option("--code", help="Coupon code 券码")],
    reason: Annotated[str, typer.Option("--reason", help="Why, kept in the audit trail")],
    as_json: JsonOpt = False,
) -> None:
    """Void a coupon (作废): it can no longer be used."""
    from siyu.loyalty import coupons
    from siyu.loyalty.programs import load_program

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        session = uow.session
        coupons.do_void_coupon(
            session, load_program(session, program), code, at=uow.now, actor=str(uow.actor), reason=reason
        )
    print_json({"code": code, "status": "voided"}) if as_json else console.print(f"voided 已作废 {code}")


@coupons_app.command("list")
def list_command(
    program: ProgramOpt, member_no: MemberOpt = None, customer: CustomerOpt = None, brand: BrandOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """A member's coupons, or without a member the program's templates with stock and issued counts."""
    from sqlalchemy import select

    from siyu.loyalty import coupons
    from siyu.loyalty.models import CouponTemplate
    from siyu.loyalty.programs import load_program

    with user_errors(), get_app().store.unit_of_work() as session:
        load_program(session, program)
        if member_no is None and customer is None:
            templates = session.scalars(
                select(CouponTemplate).where(CouponTemplate.program == program).order_by(CouponTemplate.code)
            )
            rows: list[dict[str, Any]] = [
                {"template": t.code, "kind": t.kind, "stock": t.stock, "issued": t.issued, "campaign": t.campaign,
                 "per_customer_limit": t.per_customer_limit, "cost_bearer": t.cost_bearer}
                for t in templates
            ]  # fmt: skip
        else:
            rows = [
                _coupon_dict(c)
                for c in coupons.coupons_of(session, _account(session, program, member_no, customer, brand))
            ]
    if as_json:
        print_json(rows)
        return
    if member_no is None and customer is None:
        table = Table(title=f"coupon templates 券模板 · {program}")
        for col in (
            "template 模板",
            "kind 类型",
            "stock 库存",
            "issued 已发",
            "limit 每人限领",
            "bearer 承担方",
            "campaign 活动",
        ):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["template"], r["kind"], "∞" if r["stock"] is None else str(r["stock"]), str(r["issued"]),
                str(r["per_customer_limit"] or ""), r["cost_bearer"], r["campaign"] or "",
            )  # fmt: skip
    else:
        table = Table(title=f"coupons 优惠券 · {program}")
        table.add_column("code 券码", no_wrap=True)  # a code is copied whole, never wrapped or cut
        for col in ("template 模板", "status 状态", "valid to 有效期至", "order 订单", "discount 优惠"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["code"], r["template"], r["status"], f"{r['valid_to']:%Y-%m-%d %H:%M}", r["order_id"] or "",
                format_fen(r["discount_fen"]) if r["discount_fen"] is not None else "",
            )  # fmt: skip
    console.print(table)


# --- points mall ---------------------------------------------------------------------------------


@mall_app.command("list")
def mall_list_command(program: ProgramOpt, as_json: JsonOpt = False) -> None:
    """The mall's rewards with points, cash and stock left."""
    from siyu.loyalty import mall
    from siyu.loyalty.programs import load_program

    with user_errors(), get_app().store.unit_of_work() as session:
        load_program(session, program)
        rows: list[dict[str, Any]] = [
            {"code": r.code, "kind": r.kind, "name_zh": r.name_zh, "name_en": r.name_en, "points": r.points,
             "cash_fen": r.cash_fen, "stock": r.stock, "per_member_limit": r.per_member_limit,
             "coupon_template": r.coupon_template}
            for r in mall.rewards(session, program)
        ]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"points mall 积分商城 · {program}")
    for col in ("reward 商品", "name 名称", "kind 类型", "points 积分", "cash 现金", "stock 库存", "limit 每人限兑"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["code"], f"{r['name_zh'] or ''} {r['name_en'] or ''}".strip(), r["kind"], str(r["points"]),
            format_fen(r["cash_fen"]), "∞" if r["stock"] is None else str(r["stock"]), str(r["per_member_limit"] or ""),
        )  # fmt: skip
    console.print(table)


def _order_dict(order: mall.MallOrder) -> dict[str, Any]:
    return dataclasses.asdict(order)


@mall_app.command("redeem")
def mall_redeem_command(
    program: ProgramOpt,
    reward: Annotated[str, typer.Option("--reward", help="Reward code, e.g. mug")],
    key: Annotated[str, typer.Option("--key", help="Idempotency key: a retry with the same key is a no-op")],
    member_no: MemberOpt = None,
    customer: CustomerOpt = None,
    brand: BrandOpt = None,
    quantity: Annotated[int, typer.Option("--quantity", help="Units", min=1)] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Redeem points for a reward (积分兑换). Example: siyu loyalty mall redeem --program demo_club
    --reward mug --member-no M001 --key mug-M001-1"""
    from siyu.loyalty import mall
    from siyu.loyalty.programs import load_program

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        session = uow.session
        spec = load_program(session, program)
        account_id = _account(session, program, member_no, customer, brand)
        order = mall.do_mall_redeem(
            session, spec, reward, account_id, key=key, at=uow.now, actor=str(uow.actor), quantity=quantity
        )
    if as_json:
        print_json(_order_dict(order))
        return
    coupon = f" coupon 券码 {order.coupon_code}" if order.coupon_code else ""
    again = " (already redeemed 已兑换)" if order.replayed else ""
    console.print(
        f"redemption 兑换 #{order.id}: {order.quantity} × {reward}, {order.points} points 积分{coupon}{again}"
    )


@mall_app.command("cancel")
def mall_cancel_command(
    redemption_id: Annotated[int, typer.Argument(help="Redemption id (from `mall redeem`)")],
    program: ProgramOpt,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a redemption (取消兑换): points back to their lots, stock restored, unused coupon voided."""
    from siyu.loyalty import mall
    from siyu.loyalty.programs import load_program

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        session = uow.session
        order = mall.do_mall_cancel(
            session, load_program(session, program), redemption_id, at=uow.now, actor=str(uow.actor)
        )
    if as_json:
        print_json(_order_dict(order))
        return
    console.print(f"cancelled 已取消 #{order.id}: {order.points} points returned 积分已退回")


# --- cost report ---------------------------------------------------------------------------------


def cost_report_command(
    program: ProgramOpt,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign's templates")] = None,
    start: Annotated[str | None, typer.Option("--start", help="First day of redemption, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last day of redemption, YYYY-MM-DD")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Coupon cost by campaign and bearer (优惠券成本分摊): who pays for the redeemed discounts.

    Example: siyu loyalty report cost --program demo_club --campaign east_spring --start 2026-01-01 --json
    """
    from siyu.loyalty import cost
    from siyu.loyalty.programs import load_program

    with user_errors():
        first = parse_date(start, "--start") if start else None
        last = parse_date(end, "--end") if end else None
        with get_app().store.unit_of_work() as session:
            rows = cost.cost_report(session, load_program(session, program), campaign=campaign, start=first, end=last)
    if as_json:
        print_json({"rows": [r.as_dict() for r in rows], "by_bearer": cost.totals_by_bearer(rows)})
        return
    table = Table(title=f"coupon cost 优惠券成本 · {program}")
    for col in (
        "campaign 活动",
        "template 模板",
        "bearer 承担方",
        "code 代码",
        "brand 品牌",
        "store 门店",
        "redeemed 核销",
        "discount 优惠",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.campaign or "", r.template, r.bearer, r.bearer_code or "?", r.brand or "", r.store or "",
            str(r.redeemed), format_fen(r.discount_fen),
        )  # fmt: skip
    console.print(table)
