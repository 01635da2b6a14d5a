"""The Gamma-Gamma spend model [FH13]: parameters, likelihood, fit, and expected spend per transaction.

References: see `siyu.clv.models`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from siyu.clv.models.fit import FitError, FloatArray, as_float_array, distinct_rows, minimise, wsum

_MIN_GG_CUSTOMERS = 10


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma spend parameters [FH13].

    A transaction's value is gamma(p, nu); nu is gamma(q, gamma) across customers. The population mean
    spend per transaction is ``p * gamma / (q - 1)``. ``log_likelihood`` is the total log-density of the
    observed mean spends; ``customers`` counts the repeat customers (x > 0) fitted.
    """

    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int

    @property
    def population_mean_spend(self) -> float:
        """E(M) = p * gamma / (q - 1) [FH13, eq. 4 with x = 0]."""
        return self.p * self.gamma / (self.q - 1.0)


@dataclass(frozen=True)
class _SpendRows:
    """Repeat customers aggregated for the Gamma-Gamma likelihood: distinct (x, mean spend) with counts,
    x-only terms per distinct x, and the data-only sums precomputed."""

    x: FloatArray
    m: FloatArray
    weight: FloatArray
    x_values: FloatArray
    x_weight: FloatArray
    total: float
    sum_log_m: float  # sum w ln m
    sum_x_log_m: float  # sum w x ln m
    sum_x_log_x: float  # sum w x ln x


def _spend_rows(x: FloatArray, m: FloatArray) -> _SpendRows:
    first, w = distinct_rows(x, m)
    xr, mr = x[first], m[first]
    x_values, x_index = np.unique(xr, return_inverse=True)
    log_m = np.log(mr)
    return _SpendRows(
        x=xr,
        m=mr,
        weight=w,
        x_values=x_values,
        x_weight=np.bincount(x_index.reshape(-1), weights=w).astype(np.float64),
        total=float(w.sum()),
        sum_log_m=wsum(w, log_m),
        sum_x_log_m=wsum(w * xr, log_m),
        sum_x_log_x=wsum(w * xr, np.log(xr)),
    )


def _gg_loglik_and_grad(theta: FloatArray, d: _SpendRows) -> tuple[float, FloatArray]:
    """Total log-density of the mean spends [FH13, eq. 3] and its gradient in log-parameters:

    ln f(m | x) = ln G(px+q) - ln G(px) - ln G(q) + q ln(gamma) + (px-1) ln(m) + px ln(x) - (px+q) ln(gamma + m x)
    """
    p, q, g = np.exp(theta)
    n, xv, wx = d.total, d.x_values, d.x_weight
    pxv = p * xv
    psi_pxq = digamma(pxv + q)
    log_gmx = np.log(g + d.m * d.x)
    wx_row = d.weight * d.x
    sum_l = wsum(d.weight, log_gmx)
    sum_xl = wsum(wx_row, log_gmx)
    ll = (
        wsum(wx, gammaln(pxv + q) - gammaln(pxv))
        + n * (q * np.log(g) - gammaln(q))
        + p * d.sum_x_log_m
        - d.sum_log_m
        + p * d.sum_x_log_x
        - p * sum_xl
        - q * sum_l
    )
    inv = 1.0 / (g + d.m * d.x)
    d_p = wsum(wx * xv, psi_pxq - digamma(pxv)) + d.sum_x_log_m + d.sum_x_log_x - sum_xl
    d_q = wsum(wx, psi_pxq) - n * digamma(q) + n * np.log(g) - sum_l
    d_g = n * q / g - p * wsum(wx_row, inv) - q * wsum(d.weight, inv)
    return float(ll), np.array([d_p * p, d_q * q, d_g * g])


def _check_spend(x: ArrayLike, mean_spend: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xs, ms = as_float_array("x", x), as_float_array("mean_spend", mean_spend)
    if xs.shape != ms.shape:
        raise FitError(
            f"x and mean_spend must have the same length (got {xs.size}, {ms.size}) · "
            f"x 与 mean_spend 长度必须一致（实际 {xs.size}、{ms.size}）"
        )
    if not np.all(np.isfinite(xs)) or np.any(xs < 0) or np.any(xs != np.round(xs)):
        raise FitError("x must be whole numbers >= 0 · x 必须是非负整数")
    repeat = xs > 0
    bad = int(np.count_nonzero(repeat & ~(np.isfinite(ms) & (ms > 0))))
    if bad:
        raise FitError(
            f"{bad} repeat customers have a missing, zero or negative mean spend · "
            f"{bad} 位复购客户的平均客单价缺失、为零或为负"
        )
    return xs, ms


def fit_gamma_gamma(x: ArrayLike, mean_spend: ArrayLike) -> GammaGammaParams:
    """Fit the Gamma-Gamma spend model [FH13] by maximum likelihood on the repeat customers (x > 0).

    ``x``: number of repeat transactions; ``mean_spend``: their mean value (the first purchase excluded,
    as in the note). Customers with x == 0 are ignored. Needs at least 10 repeat customers and q > 1
    (a finite mean spend); FitError otherwise.
    """
    xs, ms = _check_spend(x, mean_spend)
    repeat = xs > 0
    n = int(np.count_nonzero(repeat))
    if n < _MIN_GG_CUSTOMERS:
        raise FitError(
            f"the Gamma-Gamma model needs at least {_MIN_GG_CUSTOMERS} repeat customers, got {n} · "
            f"Gamma-Gamma 模型至少需要 {_MIN_GG_CUSTOMERS} 位复购客户，实际 {n} 位"
        )
    rows = _spend_rows(xs[repeat], ms[repeat])
    if rows.m.size < 2:
        raise FitError("every repeat customer has the same mean spend · 所有复购客户的平均客单价完全相同")
    theta0 = np.log(np.array([1.0, 2.0, float(np.average(rows.m, weights=rows.weight))]))
    p, q, g = minimise(_gg_loglik_and_grad, theta0, (rows,), rows.total, ("p", "q", "gamma"))
    if q <= 1.0:
        raise FitError(
            f"the fitted spend distribution has no finite mean (q = {q:.3g} <= 1): spend is too heavy-tailed; "
            "check for outliers · 拟合的客单价分布均值无穷（q ≤ 1），客单价尾部过重，请检查异常值"
        )
    ll, _ = _gg_loglik_and_grad(np.log(np.array([p, q, g])), rows)
    return GammaGammaParams(p=float(p), q=float(q), gamma=float(g), log_likelihood=float(ll), customers=n)


def gamma_gamma_expected_spend(params: GammaGammaParams, x: ArrayLike, mean_spend: ArrayLike) -> FloatArray:
    """E(M | p, q, gamma; m_x, x): expected spend per transaction given x repeat transactions of mean m_x
    [FH13, eq. 5]:

        E = (p gamma + p x m_x) / (p x + q - 1)
          = (q-1)/(px+q-1) * p gamma/(q-1) + px/(px+q-1) * m_x   (population mean and own mean, weighted)

    For x == 0 this is the population mean p gamma / (q - 1) (mean_spend is then ignored).
    """
    xs, ms = _check_spend(x, mean_spend)
    p, q, g = params.p, params.q, params.gamma
    own = np.where(xs > 0, ms, 0.0)
    return np.asarray((p * g + p * xs * own) / (p * xs + q - 1.0), dtype=np.float64)
