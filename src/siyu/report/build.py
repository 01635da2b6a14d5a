"""Gather everything the health report shows: FAST+ for the period and the one before, the trend,
the CLV matrix, RFM at the period's last day, and the diagnosis."""

from __future__ import annotations

from typing import Any

from siyu.bootstrap import App
from siyu.metrics.clv_matrix import clv_matrix
from siyu.metrics.fast import DEFAULT_WINDOW_DAYS, FastMetrics
from siyu.metrics.rfm import rfm

TREND_PERIODS = 12


def report_data(
    app: App, brand: str, period: str, grain: str = "month", window_days: int = DEFAULT_WINDOW_DAYS
) -> dict[str, Any]:
    from siyu.report.diagnosis import diagnose

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
    return {
        "fast": fast,
        "previous": previous if has_previous else None,
        "trend": trend[first:],
        "clv_matrix": clv_matrix(m, p),
        "rfm": rfm(app, brand, p.last_day, 365),
        "diagnosis": diagnose(fast, previous if has_previous else None),
    }
