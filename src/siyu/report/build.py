"""Gather everything the health report shows: FAST+ for the period and the one before, the trend,
the CLV matrix, predicted CLV by layer (when a model is fitted), RFM and lifecycle at the period's
last day, and the diagnosis."""

from __future__ import annotations

from typing import Any

from siyu.bootstrap import App
from siyu.clv.service import PREDICTIONS_TABLE, STAGE_NAMES, lifecycle
from siyu.metrics.clv_matrix import clv_matrix
from siyu.metrics.fast import DEFAULT_WINDOW_DAYS, FastMetrics, average
from siyu.metrics.labels import LAYERS
from siyu.metrics.periods import Period
from siyu.metrics.rfm import rfm

TREND_PERIODS = 12


def predicted_by_layer(m: FastMetrics, period: Period) -> dict[str, Any] | None:
    """Average predicted CLV and P(alive) per layer at the end of `period`, from the brand's latest
    `siyu clv predict` (None when there is none)."""
    table = m.app.engine.table(PREDICTIONS_TABLE)
    if table is None:
        return None
    pred = table.filter(table.brand == m.settings.code)
    ranks = m.ranks(period)
    j = ranks.filter(ranks["rank"] >= 1).join(pred, "customer_id")
    rows = m.app.engine.to_arrow(
        j.group_by("rank").agg(n=j.count(), clv=j.clv_fen.sum(), alive=j.p_alive.mean())
    ).to_pylist()
    if not rows:
        return None
    meta = m.app.engine.to_arrow(pred.aggregate(as_of=pred.as_of.max(), h=pred.horizon_months.max(),
                                                n=pred.count(), clv=pred.clv_fen.sum(),
                                                alive=pred.p_alive.mean())).to_pylist()[0]  # fmt: skip
    return {
        "as_of": meta["as_of"].isoformat(),
        "horizon_months": int(meta["h"]),
        "average_clv_fen": average(int(meta["clv"]), int(meta["n"])),
        "average_p_alive": meta["alive"],
        "by_layer": {
            LAYERS[int(r["rank"])]: {
                "customers": int(r["n"]),
                "average_clv_fen": average(int(r["clv"]), int(r["n"])),
                "average_p_alive": r["alive"],
            }
            for r in rows
        },
    }


def report_data(
    app: App, brand: str, period: str, grain: str = "month", window_days: int = DEFAULT_WINDOW_DAYS
) -> dict[str, Any]:
    from siyu.report.diagnosis import diagnose
    from siyu.report.guides import guides_data

    m = FastMetrics(app, brand, grain, window_days)
    p = m.period(period)
    periods = [p]
    while len(periods) < TREND_PERIODS:
        periods.insert(0, periods[0].previous())
    m.prepare(periods[0], p)
    trend = [m.fast(q) for q in periods]
    fast = trend[-1]
    previous = trend[-2]
    # A previous period without any private-domain customer (before the brand's data) is no
    # comparison: the report says so instead of showing +∞%.
    has_previous = previous["capital"] > 0
    first = next((i for i, t in enumerate(trend) if t["capital"] > 0), len(trend) - 1)
    life = lifecycle(app, brand, p.last_day)
    life["stage_names"] = {k: list(v) for k, v in STAGE_NAMES.items()}
    return {
        "fast": fast,
        "previous": previous if has_previous else None,
        "trend": trend[first:],
        "clv_matrix": clv_matrix(m, p),
        "predicted_clv": predicted_by_layer(m, p),
        "rfm": rfm(app, brand, p.last_day, 365),
        "lifecycle": life,
        "guides": guides_data(app, brand, p),
        "diagnosis": diagnose(fast, previous if has_previous else None),
    }
