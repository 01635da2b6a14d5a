"""`siyu demo`: generate a realistic synthetic brand, import it and resolve One-ID."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, progress, user_errors
from siyu.cli.report import check_out as check_report_out
from siyu.cli.report import write as write_report_for
from siyu.core.money import format_fen
from siyu.core.output import OutputError

DEMO_ADMIN = "demo_admin@example.com"


def demo_command(
    customers: Annotated[int, typer.Option(help="Number of people in the synthetic brand", min=100)] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files")] = 0,
    months: Annotated[int, typer.Option(help="Months of history", min=1, max=120)] = 24,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the generated CSV files (default $SIYU_HOME/demo)")
    ] = None,
    report_out: Annotated[
        Path | None,
        typer.Option("--report", help="Health report to write (default $SIYU_HOME/report-demo-<month>.html)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty --out folder and replace a --report file")
    ] = False,
    journeys: Annotated[
        bool,
        typer.Option(
            "--journeys/--no-journeys",
            help="Run two shipped journeys over two simulated weeks against local SMTP and SMS fakes (营销旅程)",
        ),
    ] = True,
) -> None:
    """Generate a synthetic brand, import it and resolve One-ID (演示品牌).

    The brand `demo` has customers in Tmall, JD, Douyin, mini-program, WeCom, official account,
    offline POS and CRM, with overlapping identifiers, memberships, orders with 618 / Double 11
    peaks, relations in every field, visits, shares and reviews. `truth.csv` holds the ground truth
    (which records are the same person). It fits the predictive CLV model (BG/NBD + Gamma-Gamma)
    and ends by writing the FAST+ health report (HTML) for the latest full month, printing its path.
    Then (unless --no-journeys) it runs the shipped onboarding and review-request journeys over two
    simulated weeks against a local SMTP server and the fake Aliyun SMS gateway and prints their
    reports (docs/journeys.md).

    Example: siyu demo --customers 20000 --seed 7
    """
    from siyu.clv.models import FitError
    from siyu.clv.service import ClvFit, fit, predict
    from siyu.demo.generate import generate  # numpy-heavy: loaded only for this command
    from siyu.demo.loyalty import run as run_loyalty
    from siyu.demo.wecom_month import run as run_wecom_month
    from siyu.identity.service import run_resolve
    from siyu.ingest.importer import import_path
    from siyu.metrics.materialise import materialise_for_report

    with user_errors():
        # Files at paths a person named are replaced only with --force (the workspace's own always are).
        if out is not None and not force and out.is_dir() and any(out.iterdir()):
            raise OutputError(f"{out} is not empty: pass --force to write the demo files into it (目录非空)")
        if out is not None and out.exists() and not out.is_dir():
            raise OutputError(f"{out} is a file: --out names a folder for the demo's CSV files (请指定目录)")
        if report_out is not None:
            check_report_out(report_out, force=force)
        app = get_app()
        out_dir = out or app.settings.home / "demo"
        started = time.perf_counter()
        with progress() as bar:
            gen = bar.add_task("generate 生成", total=100)
            summary = generate(
                out_dir,
                customers=customers,
                seed=seed,
                months=months,
                progress=lambda _stage, fraction: bar.update(gen, completed=int(fraction * 100)),
            )
            # The group's second brand: a smaller one whose people overlap the first (same phones).
            summary_b = generate(
                out_dir / "demo_b", customers=max(100, customers // 5), seed=seed + 1, months=months, brand="demo_b"
            )
            bar.update(gen, completed=100)
            files = len([f for f in summary.files if f != "truth.csv"]) + len(summary_b.files) - 1
            imp = bar.add_task("import 导入", total=2 * files)
            report = import_path(app, out_dir, progress=lambda _msg: bar.advance(imp))
            report_b = import_path(app, out_dir / "demo_b", progress=lambda _msg: bar.advance(imp))
            res = bar.add_task("One-ID 身份识别", total=1)
            outcome = run_resolve(app)
            bar.advance(res)
            model = bar.add_task("CLV model 预测模型", total=1)
            try:
                fitted: ClvFit | None = fit(app, "demo")
                predict(app, "demo", horizon_months=12)
            except FitError as error:  # a tiny demo may not have enough repeat buyers: report without it
                fitted = None
                console.print(f"[yellow]CLV model skipped[/] 跳过预测模型: {error.message}")
            bar.advance(model)
            loyal = bar.add_task("loyalty 会员中台", total=5)
            numbers = run_loyalty(app, summary.end, step=lambda _s: bar.advance(loyal))
            bar.update(loyal, completed=5)
            guides_task = bar.add_task("guides · WeCom 导购 · 企微", total=1)
            wecom = run_wecom_month(app, "demo", out_dir, summary.last_month_span, max(60, customers // 100))
            bar.advance(guides_task)
        elapsed = time.perf_counter() - started

    table = Table(title=f"Demo group 演示集团: brands 'demo' + 'demo_b' — {elapsed:.1f}s")
    table.add_column("entity 实体")
    table.add_column("rows 行数", justify="right")
    table.add_column("quarantined 隔离", justify="right")
    for entity, counts in report.by_entity().items():
        table.add_row(entity, f"{counts.accepted + counts.updated + counts.unchanged:,}", f"{counts.quarantined:,}")
    console.print(table)
    console.print(
        f"One-ID: {outcome.source_customers:,} source customers 来源客户 → {outcome.customers:,} customers 客户 "
        f"({summary.persons:,} real people 真实人数); {len(outcome.junk_identifiers)} junk identifiers 垃圾标识 ignored"
    )
    if fitted is not None:
        bg = fitted.bg
        console.print(
            f"BG/NBD 预测模型: r={bg.r:.3f} α={bg.alpha:.3f} a={bg.a:.3f} b={bg.b:.3f} "
            f"on {bg.customers:,} buyers 购买客户"
        )
    for entity, counts in report_b.by_entity().items():
        table.add_row(
            f"demo_b {entity}", f"{counts.accepted + counts.updated + counts.unchanged:,}", f"{counts.quarantined:,}"
        )
    _print_loyalty(numbers)
    console.print(
        f"guides 导购: {wecom['channel_codes']} channel codes 渠道活码, {wecom['callbacks']:,} WeCom callbacks "
        f"企微回调 ({wecom['welcomes_sent']:,} welcomes 欢迎语), {wecom['bound_customers']:,} bound customers "
        f"绑定客户, {wecom['churn_alerts']:,} churn alerts 删人提醒 ({wecom['seconds']} s: {wecom['phases']})"
    )
    if report.warnings:
        console.print(f"[yellow]{len(report.warnings)} import warning(s)[/] 导入警告, e.g. {report.warnings[0]}")
    month = summary.last_full_month
    # Reads never write: the layers, RFM and lifecycle the report, audiences and the customer view
    # read are stored by this job (what `siyu metrics materialise` does), not by the report.
    materialise_for_report(app, "demo", month)
    report_path = write_report_for(
        "demo", month, report_out or app.settings.home / f"report-demo-{month}.html", force=force or report_out is None
    )
    if journeys:
        from siyu.demo.journeys import lines as journey_lines
        from siyu.demo.journeys import run as run_journeys

        with progress() as bar:
            journey_task = bar.add_task("journeys 营销旅程", total=1)
            ran = run_journeys(app, summary.end, out_dir)
            bar.advance(journey_task)
        for line in journey_lines(ran):
            console.print(line, highlight=False)
    console.print(f"files 文件: {out_dir}  ·  try: siyu metrics fast --brand demo --period {month}")
    console.print(f"[bold]health report 健康度报告 ({month}):[/] {report_path}")
    password = demo_console_user(app)
    console.print(
        f"[bold]console 控制台:[/] siyu serve, then http://127.0.0.1:8000/console — user 用户 demo_admin@example.com, "
        f"one-time password 一次性密码 {password}",
        highlight=False,
    )


def demo_console_user(app: Any) -> str:
    """The demo's console user `demo_admin@example.com` (group admin) with a new one-time password;
    a second `siyu demo` in the same workspace resets it."""
    from siyu.cli.common import cli_actor
    from siyu.console.passwords import one_time_password
    from siyu.console.users import UserError, do_create_user, do_reset_password

    password = one_time_password()
    try:
        with app.store.begin(cli_actor()) as uow:
            do_create_user(uow, DEMO_ADMIN, "group_admin", password)
    except UserError:  # exists from an earlier demo
        with app.store.begin(cli_actor()) as uow:
            do_reset_password(uow, DEMO_ADMIN, password)
    return password


def _print_loyalty(n: dict[str, Any]) -> None:
    tiers = ", ".join(f"{code} {count:,}" for code, count in n["tiers"].items())
    console.print(
        f"loyalty 会员中台 {n['program']}: {n['members']:,} members 会员 ({n['cross_brand_members']:,} in both brands "
        f"跨品牌); tiers 等级: {tiers}"
    )
    led = n["ledger"]
    console.print(
        f"  points ledger 积分流水: opening 期初 {led['opening']:,} + earned 获得 {led['earn']:,} "
        f"(from {n['orders_posted']:,} orders) {led['redeem']:+,} redeemed 使用 {led['reverse']:+,} refunds 退款 "
        f"{led['expire']:+,} expired 过期 {led['adjust']:+,} adjusted 调整 = outstanding 余额 "
        f"{n['points_outstanding']:,}"
    )
    console.print(f"  coupons issued 发券 {n['coupons_issued']:,}; mall redemptions 积分兑换 {n['mall_redemptions']:,}")
    for line in n["settlement"]:
        console.print(
            f"  settlement 结算: {line['points']:,} points earned in {line['earned_brand']} spent in "
            f"{line['spent_brand']} → {line['spent_brand']} owes {line['earned_brand']} {format_fen(line['value_fen'])}"
        )
