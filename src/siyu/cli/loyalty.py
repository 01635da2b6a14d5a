"""`siyu loyalty …`: the loyalty center (会员中台) — programs, members, points, tiers, reports.

Coupons and the points mall live in `siyu.cli.loyalty_coupons` (registered here as
`coupons` and `mall`).
"""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from siyu.cli import loyalty_coupons
from siyu.cli.common import cli_actor, console, get_app, print_json, progress, user_errors
from siyu.core.clock import utc_now
from siyu.core.dates import parse_date
from siyu.loyalty.errors import NotMemberError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

loyalty_app = typer.Typer(
    help="Loyalty center 会员中台: programs (YAML), members, points ledger, tiers, coupons, points mall, reports.",
    no_args_is_help=True,
)
member_app = typer.Typer(help="Members 会员: show one member.", no_args_is_help=True)
points_app = typer.Typer(help="Points ledger 积分: history, adjust, expire.", no_args_is_help=True)
tiers_app = typer.Typer(help="Tiers 等级: periodic evaluation (downgrades).", no_args_is_help=True)
report_app = typer.Typer(help="Reports 报表: inter-brand settlement, coupon cost allocation.", no_args_is_help=True)
loyalty_app.add_typer(member_app, name="member")
loyalty_app.add_typer(points_app, name="points")
loyalty_app.add_typer(tiers_app, name="tiers")
loyalty_app.add_typer(loyalty_coupons.coupons_app, name="coupons")
loyalty_app.add_typer(loyalty_coupons.mall_app, name="mall")
loyalty_app.add_typer(report_app, name="report")
report_app.command("cost")(loyalty_coupons.cost_report_command)

ProgramOpt = Annotated[str, typer.Option("--program", help="Program code, as in its YAML `program:`")]
MemberOpt = Annotated[str | None, typer.Option("--member-no", help="Member number 会员号")]
CustomerOpt = Annotated[str | None, typer.Option("--customer", help="One-ID customer id (with --brand)")]
BrandOpt = Annotated[str | None, typer.Option("--brand", help="Brand of --customer")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
AtOpt = Annotated[str | None, typer.Option("--at", help="Run as of this instant (ISO 8601; default now)")]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _at(text: str | None) -> dt.datetime:
    if not text:
        return utc_now()
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _account_id(session: Session, program: str, member_no: str | None, customer: str | None, brand: str | None) -> int:
    from siyu.loyalty.accounts import account_by_member_no, account_of

    if member_no:
        account = account_by_member_no(session, program, member_no)
    elif customer and brand:
        account = account_of(session, program, brand=brand, customer_id=customer)
    else:
        raise NotMemberError("name the member: --member-no N, or --customer ID --brand B")
    if account is None:
        raise NotMemberError(f"no member {member_no or customer!r} in program {program!r} 非会员")
    return account.id


@loyalty_app.command("apply")
def apply_command(
    file: Annotated[Path, typer.Argument(help="Program YAML file (see docs/loyalty.md)")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a program file and apply it (会员体系): tiers, earn rules, coupons, mall.

    Re-applying an unchanged file does nothing; a changed file needs a higher `version:`.
    """
    from siyu.loyalty.programs import do_apply_program

    with user_errors():
        app = get_app()
        applied = do_apply_program(app.store, file, actor=_actor(), at=utc_now())
    data = {"program": applied.program, "version": applied.version, "status": applied.status}
    if as_json:
        print_json(data)
    else:
        console.print(f"program 会员体系 {applied.program} v{applied.version}: {applied.status}")


@loyalty_app.command("sync")
def sync_command(program: ProgramOpt, at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Enrol members from memberships / first orders, post new orders and refunds to the points
    ledger (exactly once), redeem order coupons and upgrade tiers. Safe to re-run any time."""
    from siyu.loyalty.sync import sync

    with user_errors():
        app = get_app()
        with progress(not as_json) as bar:
            task = bar.add_task("sync 同步", total=1)

            def note(message: str) -> None:
                bar.update(task, description=f"sync 同步: {message}")

            result = sync(app, program, at=_at(at), actor=_actor(), progress=note)
            bar.update(task, description="sync 同步", completed=1)
    _print_counts("sync 同步", result.as_dict(), as_json)


@loyalty_app.command("migrate")
def migrate_command(
    program: ProgramOpt,
    points_lots: Annotated[
        Path | None,
        typer.Option("--points-lots", help="CSV: brand, member_no, points, earned_at, expires_at [, lot_id]"),
    ] = None,
    opening_balances: Annotated[
        bool, typer.Option(help="Post memberships.points_balance as one opening lot for members without lots")
    ] = True,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Migrate from a legacy system: enrol from the imported memberships, then load points lots
    (with their expiry) and opening balances. Idempotent; bad rows are listed with their line."""
    from siyu.loyalty.migrate import Migration, import_opening_balances, import_points_lots
    from siyu.loyalty.sync import enrol_only

    with user_errors():
        app = get_app()
        enrolled = enrol_only(app, program, actor=_actor())
        result = Migration()
        covered = import_points_lots(app, program, points_lots, actor=_actor(), result=result) if points_lots else set()
        if opening_balances:
            import_opening_balances(app, program, at=_at(at), actor=_actor(), skip=covered, result=result)
    data = {
        "enrolled": enrolled,
        "lots": result.lots,
        "opening_balances": result.opening,
        "points": result.points,
        "rejected": [{"line": line, "reason": reason} for line, reason in result.rejected],
    }
    if as_json:
        print_json(data)
        return
    _print_counts("migration 迁移", {k: v for k, v in data.items() if k != "rejected"}, False)
    for line, reason in result.rejected[:20]:
        console.print(f"[red]rejected[/] {points_lots}:{line}: {reason}")


def _print_counts(title: str, data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    table = Table(title=title)
    table.add_column("what 项目")
    table.add_column("count 数量", justify="right")
    for key, value in data.items():
        if isinstance(value, dict):
            for k, v in value.items():
                table.add_row(f"[yellow]{key}: {k}[/]", f"{v:,}")
        else:
            table.add_row(key, f"{value:,}")
    console.print(table)


@member_app.command("show")
def member_show(
    program: ProgramOpt,
    member_no: MemberOpt = None,
    customer: CustomerOpt = None,
    brand: BrandOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A member: tier, growth, points balance and the next lots to expire, coupons, tier history."""
    from siyu.loyalty.members import member_summary
    from siyu.loyalty.models import LoyaltyAccount

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            account = session.get(LoyaltyAccount, _account_id(session, program, member_no, customer, brand))
            assert account is not None
            data = member_summary(session, account)
    if as_json:
        print_json(data)
        return
    console.print(
        f"[bold]{data['member_no']}[/] · {data['program']} · tier 等级 {data['tier']} ({data['tier_name_zh']}) · "
        f"growth 成长值 {data['growth']:,} · points 积分 {data['points']['balance']:,}"
        + (f" (owed 欠 {data['points']['debt']:,})" if data["points"]["debt"] else "")
    )
    for lot in data["points"]["lots"]:
        console.print(f"  lot 批次 {lot['points']:>8,}  expires 到期 {lot['expires_at'] or 'never 永不'}")
    for c in data["coupons"]:
        console.print(f"  coupon 券 {c['code']} {c['template']} {c['status']} until {c['valid_to'][:10]}")
    for h in data["tier_history"]:
        console.print(f"  {h['at'][:10]} {h['from'] or '—'} → {h['to']}: {h['reason']}")


@points_app.command("history")
def points_history(
    program: ProgramOpt,
    member_no: MemberOpt = None,
    customer: CustomerOpt = None,
    brand: BrandOpt = None,
    limit: Annotated[int, typer.Option(help="Newest N transactions", min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Points transactions 积分流水, newest first: earn, redeem, expire, adjust, reverse."""
    from siyu.loyalty.points import history

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            rows = [
                {
                    "id": t.id,
                    "kind": t.kind,
                    "points": t.points,
                    "balance_after": t.balance_after,
                    "brand": t.brand,
                    "channel": t.channel,
                    "order_id": t.order_id,
                    "reason": t.reason,
                    "reverses_id": t.reverses_id,
                    "actor": t.actor,
                    "created_at": t.created_at,
                }
                for t in history(session, _account_id(session, program, member_no, customer, brand), limit)
            ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="points history 积分流水")
    for col in ("id", "when 时间", "kind 类型", "points 积分", "balance 余额", "order 订单", "reason 原因"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["created_at"])[:19],
            str(r["kind"]),
            f"{r['points']:+,}",
            f"{r['balance_after']:,}",
            str(r["order_id"] or ""),
            str(r["reason"] or ""),
        )
    console.print(table)


@points_app.command("adjust")
def points_adjust(
    program: ProgramOpt,
    points: Annotated[int, typer.Option("--points", help="Points to add (positive) or take (negative)")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger and the audit trail)")],
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key (default: derived from the inputs)")] = None,
    member_no: MemberOpt = None,
    customer: CustomerOpt = None,
    brand: BrandOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Adjust a member's points by hand 积分调整 (audited; never overdraws)."""
    from siyu.loyalty.points import do_adjust
    from siyu.loyalty.programs import load_program

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor()) as uow:
            session = uow.session
            account_id = _account_id(session, program, member_no, customer, brand)
            posted = do_adjust(
                session,
                load_program(session, program),
                account_id,
                points,
                key=key or f"cli-adjust:{account_id}:{points}:{reason}",
                at=uow.now,
                actor=str(uow.actor),
                reason=reason,
            )
    data = {"txn_id": posted.txn_id, "points": posted.points, "balance": posted.balance, "replayed": posted.replayed}
    if as_json:
        print_json(data)
    else:
        console.print(
            f"adjusted 已调整 {posted.points:+,} → balance 余额 {posted.balance:,}"
            + (" (already applied 已执行过)" if posted.replayed else "")
        )


@points_app.command("expire")
def points_expire(program: ProgramOpt, at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Expire every lot due by now (or --at): the nightly run 积分过期. Re-running changes nothing."""
    from siyu.loyalty.expiry import do_expire

    with user_errors():
        app = get_app()
        run = do_expire(app.store, program, at=_at(at), actor=_actor())
    _print_counts("expiry 积分过期", {"accounts": run.accounts, "points": run.points, "lots": run.lots}, as_json)


@tiers_app.command("evaluate")
def tiers_evaluate(program: ProgramOpt, at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Re-evaluate every member's tier (run at the end of each evaluation period): upgrades, and
    downgrades for members out of their protection period. Reasons go to the tier history."""
    from siyu.loyalty.tiers import evaluate

    with user_errors():
        app = get_app()
        run = evaluate(app, program, at=_at(at), actor=_actor())
    _print_counts(
        "tiers 等级评定", {"evaluated": run.evaluated, "upgraded": run.upgraded, "downgraded": run.downgraded}, as_json
    )


@report_app.command("settlement")
def settlement_report(
    program: ProgramOpt,
    start: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD, program time zone)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, inclusive")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Inter-brand settlement 积分互通结算: points spent in one brand that were earned in another."""
    from zoneinfo import ZoneInfo

    from siyu.loyalty.programs import load_program
    from siyu.loyalty.settlement import settlement

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            zone = ZoneInfo(load_program(session, program).timezone)

            def instant(text: str | None, name: str, shift: int) -> dt.datetime | None:
                if not text:
                    return None
                day = parse_date(text, name) + dt.timedelta(days=shift)
                return dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(dt.UTC)

            lines = settlement(session, program, start=instant(start, "--from", 0), end=instant(end, "--to", 1))
    rows: list[dict[str, Any]] = [
        {"earned_brand": x.earned_brand, "spent_brand": x.spent_brand, "points": x.points, "value_fen": x.value_fen}
        for x in lines
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"settlement 积分互通结算 · {program}")
    for col in ("earned in 积分产生品牌", "spent in 积分使用品牌", "points 积分", "owed 应结算 (¥)"):
        table.add_column(col, justify="right" if "points" in col or "¥" in col else "left")
    for r in rows:
        table.add_row(r["earned_brand"], r["spent_brand"], f"{r['points']:,}", f"{r['value_fen'] / 100:,.2f}")
    console.print(table)


@loyalty_app.command("problems")
def problems_command(
    program: ProgramOpt,
    limit: Annotated[int, typer.Option(help="Newest N", min=1, max=100_000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Orders the sync posted with something it could not apply 待处理: points used beyond the
    balance, a coupon that is not this program's, a reversal the policy refused. Settle them with
    `siyu loyalty points adjust` (the order itself is not posted again)."""
    from sqlalchemy import select

    from siyu.loyalty.models import LoyaltyAccount, OrderPosting

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            rows = [
                {"key": p.key, "member_no": m, "points": p.points, "posted_at": p.posted_at, "problem": p.problem}
                for p, m in session.execute(
                    select(OrderPosting, LoyaltyAccount.member_no)
                    .join(LoyaltyAccount, LoyaltyAccount.id == OrderPosting.account_id)
                    .where(OrderPosting.program == program, OrderPosting.problem.is_not(None))
                    .order_by(OrderPosting.posted_at.desc())
                    .limit(limit)
                ).tuples()
            ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"problems 待处理 · {program}")
    for col in ("order 订单", "member 会员", "posted 入账", "problem 问题"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["key"]), str(r["member_no"]), str(r["posted_at"])[:19], str(r["problem"]))
    console.print(table)
