"""Predictive CLV for a brand: fit BG/NBD + Gamma-Gamma on the lake's purchase history, predict per
customer, and lifecycle stages. Summaries are Ibis; the model math is vectorised numpy
(`siyu.clv.models`) over the summary columns, never a loop over customers."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from siyu.bootstrap import App
from siyu.brands.settings import brand_settings
from siyu.clv import models
from siyu.clv.summary import UNITS, customer_days, holdout, summary
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError
from siyu.lake.tables import sql_text
from siyu.metrics.facts import Facts

FITS_TABLE = "clv_fits"
PREDICTIONS_TABLE = "clv_predictions"
LIFECYCLE_TABLE = "lifecycle"
MONTH_DAYS = 30.4375
STAGES = ("prospect", "new", "active", "at_risk", "lapsed", "won_back")
STAGE_NAMES = {
    "prospect": ("潜在客户", "Prospect"),
    "new": ("新客", "New"),
    "active": ("活跃", "Active"),
    "at_risk": ("流失风险", "At risk"),
    "lapsed": ("已流失", "Lapsed"),
    "won_back": ("已召回", "Won back"),
}


def _last_purchase_day(app: App, facts: Facts) -> date:
    days = facts.purchases
    value = app.engine.to_arrow(days.aggregate(d=days.day.max()))["d"][0].as_py()
    if value is None:
        raise models.FitError(f"brand {facts.brand.code!r} has no purchases to fit (没有可用于拟合的购买记录)")
    return value  # type: ignore[no-any-return]


def _arrays(app: App, table: ir.Table) -> pa.Table:
    return app.engine.to_arrow(table.order_by("customer_id"))


@dataclass
class ClvFit:
    brand: str
    calibration_end: date
    unit: str
    bg: models.BGNBDParams
    gg: models.GammaGammaParams
    holdout: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "brand": self.brand,
            "calibration_end": self.calibration_end.isoformat(),
            "unit": self.unit,
            "customers": self.bg.customers,
            "bgnbd": {"r": self.bg.r, "alpha": self.bg.alpha, "a": self.bg.a, "b": self.bg.b,
                      "log_likelihood": self.bg.log_likelihood},
            "gamma_gamma": {"p": self.gg.p, "q": self.gg.q, "gamma": self.gg.gamma, "customers": self.gg.customers,
                            "log_likelihood": self.gg.log_likelihood, "currency": "yuan"},
            "holdout": self.holdout,
        }  # fmt: skip


def fit(app: App, brand: str, calibration_end: date | None = None, unit: str = "week") -> ClvFit:
    if unit not in UNITS:
        raise models.FitError(f"unknown unit {unit!r}: use week or day (时间单位)")
    settings = brand_settings(app, brand)
    facts = Facts(app, settings)
    last = _last_purchase_day(app, facts)
    cal_end = calibration_end or last
    data = _arrays(app, summary(facts, cal_end, unit))
    x = data["x"].to_numpy().astype(float)
    t_x = data["t_x"].to_numpy()
    big_t = data["T"].to_numpy()
    bg = models.fit_bgnbd(x, t_x, big_t)
    repeat = x > 0
    spend = data["mean_spend"].to_numpy(zero_copy_only=False).astype(float)
    gg = models.fit_gamma_gamma(x[repeat], spend[repeat])
    check = None
    if last > cal_end:
        check = _holdout_check(app, facts, data, bg, cal_end, last, unit)
    result = ClvFit(settings.code, cal_end, unit, bg, gg, check)
    row = {k: [v] for k, v in result.as_json()["bgnbd"].items()}
    row |= {f"gg_{k}": [v] for k, v in result.as_json()["gamma_gamma"].items() if k != "currency"}
    row |= {"brand": [settings.code], "calibration_end": [cal_end], "unit": [unit], "customers": [bg.customers],
            "fitted_at": [utc_now()]}  # fmt: skip
    app.lake.append(FITS_TABLE, pa.table(row))
    return result


def _holdout_check(
    app: App, facts: Facts, data: pa.Table, bg: models.BGNBDParams, cal_end: date, last: date, unit: str
) -> dict[str, Any]:
    """Predicted vs actual purchases in the holdout (after the calibration end), by the number of
    repeat purchases in calibration — the paper's Figure 3."""
    length = (last - cal_end).days / UNITS[unit]
    actual = app.engine.to_arrow(
        ibis.memtable(data.select(["customer_id"]))
        .left_join(holdout(facts, cal_end), "customer_id")
        .select("customer_id", "holdout_x")
        .order_by("customer_id")
    )
    got = actual["holdout_x"].to_numpy(zero_copy_only=False).astype(float)
    got = np.nan_to_num(got)
    x = data["x"].to_numpy().astype(float)
    predicted = models.bgnbd_expected_purchases(bg, length, x, data["t_x"].to_numpy(), data["T"].to_numpy())
    buckets = []
    for k in range(8):
        mask = x == k if k < 7 else x >= 7
        n = int(mask.sum())
        buckets.append({
            "repeat_purchases": f"{k}" if k < 7 else "7+",
            "customers": n,
            "actual": round(float(got[mask].mean()), 4) if n else None,
            "predicted": round(float(predicted[mask].mean()), 4) if n else None,
        })  # fmt: skip
    return {
        "from": (cal_end + timedelta(days=1)).isoformat(),
        "to": last.isoformat(),
        "length": round(length, 2),
        "actual_total": int(got.sum()),
        "predicted_total": round(float(predicted.sum()), 1),
        "by_frequency": buckets,
    }


def latest_fit(app: App, brand: str) -> dict[str, Any]:
    table = app.engine.table(FITS_TABLE)
    if table is None:
        raise NotFoundError(f"no CLV model fitted for {brand!r}: run `siyu clv fit --brand {brand}` first (尚未拟合)")
    rows = app.engine.to_arrow(table.filter(table.brand == brand).order_by(ibis.desc("fitted_at")).limit(1)).to_pylist()
    if not rows:
        raise NotFoundError(f"no CLV model fitted for {brand!r}: run `siyu clv fit --brand {brand}` first (尚未拟合)")
    row: dict[str, Any] = rows[0]
    return row


def _params(row: dict[str, Any]) -> tuple[models.BGNBDParams, models.GammaGammaParams]:
    bg = models.BGNBDParams(row["r"], row["alpha"], row["a"], row["b"], row["log_likelihood"], row["customers"])
    gg = models.GammaGammaParams(row["gg_p"], row["gg_q"], row["gg_gamma"], row["gg_log_likelihood"],
                                 row["gg_customers"])  # fmt: skip
    return bg, gg


def predict(
    app: App, brand: str, horizon_months: int = 12, monthly_discount: float = 0.01, as_of: date | None = None
) -> dict[str, Any]:
    """Per customer: expected purchases over the horizon, P(alive), expected spend and predicted
    CLV (fen), from the brand's latest fit applied to the history up to `as_of` (default: the
    latest purchase day). Stored in the lake table `clv_predictions`."""
    settings = brand_settings(app, brand)
    row = latest_fit(app, settings.code)
    bg, gg = _params(row)
    unit = row["unit"]
    facts = Facts(app, settings)
    day = as_of or _last_purchase_day(app, facts)
    data = _arrays(app, summary(facts, day, unit))
    x = data["x"].to_numpy().astype(float)
    t_x, big_t = data["t_x"].to_numpy(), data["T"].to_numpy()
    spend = np.nan_to_num(data["mean_spend"].to_numpy(zero_copy_only=False).astype(float))
    horizon = horizon_months * MONTH_DAYS / UNITS[unit]
    purchases = models.bgnbd_expected_purchases(bg, horizon, x, t_x, big_t)
    alive = models.bgnbd_p_alive(bg, x, t_x, big_t)
    expected_spend = models.gamma_gamma_expected_spend(gg, x, spend)
    clv = models.predicted_clv(bg, gg, x, t_x, big_t, spend, horizon_months, monthly_discount, UNITS[unit])
    clv_fen = np.round(clv * 100).astype(np.int64)
    n = len(x)
    table = pa.table({
        "brand": pa.array([settings.code] * n, pa.string()),
        "as_of": pa.array([day] * n, pa.date32()),
        "customer_id": data["customer_id"],
        "p_alive": alive,
        "expected_purchases": purchases,
        "expected_spend_fen": np.round(expected_spend * 100).astype(np.int64),
        "clv_fen": clv_fen,
        "horizon_months": pa.array([horizon_months] * n, pa.int32()),
        "predicted_at": pa.array([utc_now()] * n, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    app.lake.replace(PREDICTIONS_TABLE, table, f"brand = {sql_text(settings.code)}", partition_by=["brand"])
    return {
        "brand": settings.code,
        "as_of": day.isoformat(),
        "horizon_months": horizon_months,
        "monthly_discount": monthly_discount,
        "customers": n,
        "expected_purchases": round(float(purchases.sum()), 1),
        "average_p_alive": round(float(alive.mean()), 4) if n else None,
        "total_clv_fen": int(clv_fen.sum()),
        "average_clv_fen": round(float(clv_fen.mean())) if n else None,
        "fit": {"calibration_end": row["calibration_end"].isoformat(), "unit": unit},
    }


def _previous_month(day: date) -> date:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class LifecycleRules:
    new_days: int = 30  # first purchase within this many days: new
    lapsed_days: int = 365  # no purchase for this many days: lapsed
    won_back_days: int = 90  # bought again within this many days after a lapse: won back
    at_risk_p_alive: float = 0.5  # P(alive) below this (when a model is fitted): at risk
    overdue_factor: float = 2.0  # or no purchase for this many times the own mean gap: at risk


def stages(app: App, facts: Facts, as_of: date, rules: LifecycleRules, fit_row: dict[str, Any] | None) -> ir.Table:
    """customer_id, stage for every customer of the brand at the end of the brand-local day `as_of`."""
    days = customer_days(facts)
    days = days.filter(days.day <= ibis.literal(as_of))
    gaps = days.mutate(gap=days.day.delta(days.day.lag().over(group_by="customer_id", order_by="day"), unit="day"))
    per = gaps.group_by("customer_id").agg(
        first_day=gaps.day.min(), last_day=gaps.day.max(), n=gaps.count(), last_gap=gaps.gap.argmax(gaps.day)
    )
    today = ibis.literal(as_of)
    since_last = today.delta(per.last_day, unit="day")
    mean_gap = per.last_day.delta(per.first_day, unit="day").cast("float64") / (per.n - 1).nullif(0).cast("float64")
    overdue = (per.n >= 2) & (since_last.cast("float64") > mean_gap * rules.overdue_factor)
    per = per.mutate(since_last=since_last, overdue=overdue.fill_null(False))
    if fit_row is not None:
        bg, _ = _params(fit_row)
        s = app.engine.to_arrow(summary(facts, as_of, fit_row["unit"]).order_by("customer_id"))
        alive = models.bgnbd_p_alive(bg, s["x"].to_numpy().astype(float), s["t_x"].to_numpy(), s["T"].to_numpy())
        p = ibis.memtable(pa.table({"customer_id": s["customer_id"], "p_alive": alive}))
        per = per.left_join(p, "customer_id").drop("customer_id_right")
        risky = per.overdue | (per.p_alive.fill_null(1.0) < rules.at_risk_p_alive)
    else:
        risky = per.overdue
    stage = ibis.cases(
        (today.delta(per.first_day, unit="day") < rules.new_days, "new"),
        (per.since_last >= rules.lapsed_days, "lapsed"),
        ((per.since_last < rules.won_back_days) & (per.last_gap.fill_null(0) >= rules.lapsed_days), "won_back"),
        (risky, "at_risk"),
        else_="active",
    )
    staged = per.select("customer_id", stage=stage)
    everyone = facts.customers.left_join(staged, "customer_id").drop("customer_id_right")
    return everyone.select("customer_id", stage=everyone.stage.fill_null("prospect"))


def lifecycle(
    app: App, brand: str, as_of: date, rules: LifecycleRules | None = None, *, store: bool = False
) -> dict[str, Any]:
    """Counts per stage at `as_of` and flows since the same day a month earlier. With `store` (only
    `siyu lifecycle`; reads such as the report never write) the stages are stored in the lake table
    `lifecycle` (brand, as_of, customer_id, stage)."""
    rules = rules or LifecycleRules()
    settings = brand_settings(app, brand)
    facts = Facts(app, settings)
    try:
        fit_row: dict[str, Any] | None = latest_fit(app, settings.code)
    except NotFoundError:
        fit_row = None
    now = app.engine.materialise(stages(app, facts, as_of, rules, fit_row), f"facts_{facts.tag}_stage_now")
    before_day = _previous_month(as_of)
    before = stages(app, facts, before_day, rules, fit_row)
    counts = {
        r["stage"]: int(r["n"]) for r in app.engine.to_arrow(now.group_by("stage").agg(n=now.count())).to_pylist()
    }
    moved = now.join(before.select("customer_id", was=before.stage), "customer_id")
    moved = moved.filter(moved.was != moved.stage)
    flows = app.engine.to_arrow(moved.group_by(["was", "stage"]).agg(n=moved.count()).order_by(["was", "stage"]))
    if store:
        data = app.engine.to_arrow(now)
        n = data.num_rows
        app.lake.replace(
            LIFECYCLE_TABLE,
            pa.table(
                {
                    "brand": pa.array([settings.code] * n, pa.string()),
                    "as_of": pa.array([as_of] * n, pa.date32()),
                    "customer_id": data["customer_id"],
                    "stage": data["stage"],
                    "computed_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
                }
            ),
            f"brand = {sql_text(settings.code)} AND as_of = '{as_of.isoformat()}'",
            partition_by=["brand", "as_of"],
        )
    return {
        "brand": settings.code,
        "as_of": as_of.isoformat(),
        "previous": before_day.isoformat(),
        "model": "bgnbd" if fit_row is not None else None,
        "rules": rules.__dict__,
        "stages": {s: counts.get(s, 0) for s in STAGES},
        "flows": [{"from": r["was"], "to": r["stage"], "customers": int(r["n"])} for r in flows.to_pylist()],
    }
