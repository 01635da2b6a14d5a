"""Predicted CLV: BG/NBD purchases x Gamma-Gamma spend, discounted month by month."""

# The papers' notation (T = customer age) is kept in names.
# ruff: noqa: N803, N806
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from siyu.clv.models.bgnbd import BGNBDParams, alive_purchases, check_rfm, p_alive
from siyu.clv.models.fit import FitError, FloatArray, distinct_index
from siyu.clv.models.gamma_gamma import GammaGammaParams, gamma_gamma_expected_spend

DAYS_PER_MONTH = 30.4375  # 365.25 / 12


def predicted_clv(
    bg: BGNBDParams,
    gg: GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    mean_spend: ArrayLike,
    horizon_months: int,
    monthly_discount: float = 0.01,
    unit_days: float = 7.0,
) -> FloatArray:
    """Discounted expected spend over the next ``horizon_months`` months:

        CLV = sum_{m=1..H} [E(Y(m M)) - E(Y((m-1) M))] * E(M | x, m_x) / (1 + d)^m

    with E(Y(t)) from eq. 10, E(M | ...) from [FH13, eq. 5], M = 30.4375 days / ``unit_days`` (the length
    of a month in the unit the BG/NBD model was fitted in: 7 for weeks, 1 for days), d = ``monthly_discount``.
    Vectorised over customers; loops over months only.
    """
    if horizon_months < 0:
        raise FitError("horizon_months must be >= 0 · horizon_months 必须 ≥ 0")
    if not (np.isfinite(monthly_discount) and monthly_discount > -1.0):
        raise FitError("monthly_discount must be > -1 · monthly_discount 必须大于 -1")
    if not (np.isfinite(unit_days) and unit_days > 0):
        raise FitError("unit_days must be > 0 · unit_days 必须大于 0")
    xs, txs, Ts = check_rfm(x, t_x, T)
    spend = gamma_gamma_expected_spend(gg, xs, mean_spend)
    alive = p_alive(bg, xs, txs, Ts)
    month = DAYS_PER_MONTH / unit_days
    # Eq. 10 = P(alive) x a numerator that depends on (x, T) only: discount the numerator's monthly
    # increments once per distinct (x, T), then scale by each customer's P(alive) and expected spend.
    first, inverse = distinct_index(xs, Ts)
    x1, T1 = xs[first], Ts[first]
    discounted = np.zeros(x1.size)
    previous = np.zeros(x1.size)
    for m in range(1, horizon_months + 1):
        cumulative = alive_purchases(bg.r, bg.alpha, bg.a, bg.b, x1, T1, np.full(x1.size, m * month))
        discounted += np.maximum(cumulative - previous, 0.0) / (1.0 + monthly_discount) ** m
        previous = cumulative
    return np.asarray(alive * discounted[inverse] * spend, dtype=np.float64)
