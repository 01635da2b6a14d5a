"""`siyu clv fit|predict` (BG/NBD + Gamma-Gamma) and `siyu lifecycle` (生命周期)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import console, get_app, print_json, user_errors
from siyu.core.dates import parse_date
from siyu.core.money import format_fen

clv_app = typer.Typer(help="Predictive CLV: BG/NBD purchase frequency × Gamma-Gamma spend (预测CLV).")

BrandOpt = Annotated[str, typer.Option("--brand", help="Brand code, e.g. demo")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (keys are a stable contract)")]


@clv_app.command("fit")
def fit_command(
    brand: BrandOpt,
    calibration_end: Annotated[
        str | None,
        typer.Option("--calibration-end", help="Last day of the calibration period (default: last purchase)"),
    ] = None,
    unit: Annotated[str, typer.Option("--unit", help="Time unit: week | day")] = "week",
    as_json: JsonOpt = False,
) -> None:
    """Fit BG/NBD (purchases, P(alive)) and Gamma-Gamma (spend) by maximum likelihood on the brand's
    purchase history: one transaction per customer-day, time in weeks (days / 7) by default.
    With purchases after --calibration-end, prints predicted vs actual holdout purchases.

    Example: siyu clv fit --brand demo --calibration-end 2026-06-30 --json
    """
    from siyu.clv.service import fit

    with user_errors():
        end = parse_date(calibration_end, "--calibration-end") if calibration_end else None
        result = fit(get_app(), brand, end, unit).as_json()
    if as_json:
        print_json(result)
        return
    bg, gg = result["bgnbd"], result["gamma_gamma"]
    console.print(f"[bold]CLV model 预测模型 — {brand}[/], calibration end 校准期末 {result['calibration_end']}, "
                  f"unit 单位 {result['unit']}, {result['customers']:,} customers 客户")  # fmt: skip
    console.print(f"BG/NBD: r={bg['r']:.4f} α={bg['alpha']:.4f} a={bg['a']:.4f} b={bg['b']:.4f} "
                  f"log-likelihood 对数似然 {bg['log_likelihood']:.2f}")  # fmt: skip
    console.print(f"Gamma-Gamma: p={gg['p']:.4f} q={gg['q']:.4f} γ={gg['gamma']:.4f} (yuan 元) "
                  f"on {gg['customers']:,} repeat customers 复购客户")  # fmt: skip
    check = result["holdout"]
    if check:
        table = Table(title=f"holdout check 验证期 {check['from']} – {check['to']}: purchases per customer 人均购买")
        for col in ("repeat purchases in calibration 校准期复购", "customers 客户", "actual 实际", "predicted 预测"):
            table.add_column(col, justify="right")
        for b in check["by_frequency"]:
            table.add_row(b["repeat_purchases"], f"{b['customers']:,}", str(b["actual"]), str(b["predicted"]))
        console.print(table)
        console.print(f"total 合计: actual {check['actual_total']:,} vs predicted {check['predicted_total']:,}")


@clv_app.command("predict")
def predict_command(
    brand: BrandOpt,
    horizon_months: Annotated[int, typer.Option("--horizon-months", help="Prediction horizon", min=1, max=120)] = 12,
    monthly_discount: Annotated[float, typer.Option("--monthly-discount", help="Monthly discount rate", min=0)] = 0.01,
    as_json: JsonOpt = False,
) -> None:
    """Predict per customer (stored in the lake table `clv_predictions`): expected purchases over the
    horizon, P(alive), expected spend per purchase and discounted CLV, from the latest fit.

    Example: siyu clv predict --brand demo --horizon-months 12 --json
    """
    from siyu.clv.service import predict

    with user_errors():
        result = predict(get_app(), brand, horizon_months, monthly_discount)
    if as_json:
        print_json(result)
        return
    console.print(
        f"{brand}: {result['customers']:,} customers 客户, next {horizon_months} months 未来{horizon_months}个月: "
        f"{result['expected_purchases']:,} expected purchases 预期购买, average P(alive) 平均存活概率 "
        f"{result['average_p_alive']}, average predicted CLV 平均预测价值 {format_fen(result['average_clv_fen'] or 0)}"
        ", "
        f"total 合计 {format_fen(result['total_clv_fen'])}"
    )


def lifecycle_command(
    brand: BrandOpt,
    as_of: Annotated[str, typer.Option("--as-of", help="Brand-local date, YYYY-MM-DD")],
    new_days: Annotated[int, typer.Option(help="First purchase within N days: new", min=1)] = 30,
    lapsed_days: Annotated[int, typer.Option(help="No purchase for N days: lapsed", min=1)] = 365,
    at_risk_p_alive: Annotated[float, typer.Option(help="P(alive) below this: at risk (needs `clv fit`)")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Lifecycle stages 生命周期 per customer at a date (stored in the lake table `lifecycle`):
    prospect, new, active, at_risk (P(alive) low or overdue against the own purchase rhythm), lapsed,
    won_back; counts and flows since the same day a month earlier.

    Example: siyu lifecycle --brand demo --as-of 2026-10-31 --json
    """
    from siyu.clv.service import STAGE_NAMES, LifecycleRules, lifecycle

    with user_errors():
        day = parse_date(as_of, "--as-of")
        rules = LifecycleRules(new_days=new_days, lapsed_days=lapsed_days, at_risk_p_alive=at_risk_p_alive)
        result = lifecycle(get_app(), brand, day, rules, store=True)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"lifecycle 生命周期 — {brand} {result['as_of']} (vs {result['previous']})")
    table.add_column("stage 阶段")
    table.add_column("customers 客户", justify="right")
    for stage, n in result["stages"].items():
        zh, en = STAGE_NAMES[stage]
        table.add_row(f"{zh} {en}", f"{n:,}")
    console.print(table)
    for f in sorted(result["flows"], key=lambda f: -f["customers"])[:8]:
        console.print(f"  {f['from']} → {f['to']}: {f['customers']:,}")
