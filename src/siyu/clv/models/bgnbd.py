"""The BG/NBD purchase model [FHL05]: parameters, likelihood, fit, and predictions (P(alive),
expected purchases).

References: see `siyu.clv.models`."""

# The papers' notation (T = customer age) is kept in names.
# ruff: noqa: N803, N806
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betainc, betaln, digamma, expit, gammaln, hyp2f1

from siyu.clv.models.fit import FitError, FloatArray, as_float_array, distinct_index, distinct_rows, minimise, wsum

# Eq. 10 is 0/0 at a = 1 (and at a + b + x = 1): there it is extrapolated from a +- _NUDGE_A, a +- 2 _NUDGE_A.
# The error is ~1e-16 / (_NUDGE_A * z) from cancellation plus O(_NUDGE_A^4): ~1e-10 relative for the horizons
# that reach it (t > 0.01 (alpha + T); shorter ones use an exact series).
_NUDGE_A = 1e-4


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters [FHL05].

    ``r, alpha``: gamma heterogeneity of the purchase rate lambda (shape, rate; alpha is in the time unit
    of the data). ``a, b``: beta heterogeneity of the drop-out probability p after each purchase.
    ``log_likelihood``: the maximised total log-likelihood (sum over customers, eq. 6).
    ``customers``: number of customers fitted.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int


def check_rfm(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validated float copies of (x, t_x, T); FitError on anything the model cannot take."""
    xs, txs, Ts = as_float_array("x", x), as_float_array("t_x", t_x), as_float_array("T", T)
    if not (xs.shape == txs.shape == Ts.shape):
        raise FitError(
            f"x, t_x and T must have the same length (got {xs.size}, {txs.size}, {Ts.size}) · "
            f"x、t_x、T 长度必须一致（实际 {xs.size}、{txs.size}、{Ts.size}）"
        )
    for name, arr in (("x", xs), ("t_x", txs), ("T", Ts)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise FitError(f"{name} has {bad} missing or infinite values · {name} 有 {bad} 个缺失值或无穷值")
        neg = int(np.count_nonzero(arr < 0))
        if neg:
            raise FitError(f"{name} has {neg} negative values · {name} 有 {neg} 个负值")
    if np.any(xs != np.round(xs)):
        raise FitError("x (repeat purchases) must be whole numbers · x（复购次数）必须是整数")
    late = int(np.count_nonzero(txs > Ts))
    if late:
        raise FitError(
            f"{late} customers have t_x (last purchase) after T (age) · {late} 位客户的 t_x（最近购买）晚于 T（客龄）"
        )
    return xs, txs, Ts


@dataclass(frozen=True)
class _RFMRows:
    """Customers aggregated for the likelihood: distinct T among those without repeat purchases (x == 0),
    distinct (x, t_x, T) among the others, each with its customer count; x-only terms use distinct x."""

    T0: FloatArray  # x == 0: distinct T
    w0: FloatArray
    x: FloatArray  # x > 0: distinct (x, t_x, T)
    t_x: FloatArray
    T: FloatArray
    weight: FloatArray
    x_values: FloatArray  # distinct x (0 included when present)
    x_weight: FloatArray  # customers per distinct x
    total: float


def _aggregate_rfm(x: FloatArray, t_x: FloatArray, T: FloatArray) -> _RFMRows:
    """Aggregate customers with identical summaries (the likelihood becomes a weighted sum)."""
    repeat = x > 0
    first0, w0 = distinct_rows(T[~repeat])  # t_x carries no information when x == 0 (eq. 6)
    xr, txr, Tr = x[repeat], t_x[repeat], T[repeat]
    first, weight = distinct_rows(xr, txr, Tr)
    x_values, x_index = np.unique(np.concatenate([np.zeros(min(first0.size, 1)), xr[first]]), return_inverse=True)
    x_weight = np.bincount(
        x_index.reshape(-1), weights=np.concatenate([[w0.sum()] if first0.size else [], weight])
    ).astype(np.float64)
    return _RFMRows(
        T0=T[~repeat][first0],
        w0=w0,
        x=xr[first],
        t_x=txr[first],
        T=Tr[first],
        weight=weight,
        x_values=x_values,
        x_weight=x_weight,
        total=float(x.size),
    )


def _bgnbd_loglik_and_grad(theta: FloatArray, d: _RFMRows) -> tuple[float, FloatArray]:
    """Total log-likelihood (eq. 6, in the form of note 004, section 7) and its gradient in log-parameters.

    ln L_i = ln G(r+x) - ln G(r) + r ln(alpha) + ln B(a, b+x) - ln B(a, b)        (depends on x only)
             - (r+x) ln(alpha+T) + 1{x>0} ln(1 + exp(delta)),
    delta = ln(a/(b+x-1)) + (r+x) ln((alpha+T)/(alpha+t_x))   (the second term of eq. 6 over the first)
    """
    r, alpha, a, b = np.exp(theta)
    xv = d.x_values
    # Terms that depend on x only: evaluated once per distinct x.
    const_x = gammaln(r + xv) - gammaln(r) + r * np.log(alpha) + betaln(a, b + xv) - betaln(a, b)
    dr_x = digamma(r + xv) - digamma(r) + np.log(alpha)
    psi_abx = digamma(a + b + xv)
    da_x = digamma(a + b) - psi_abx
    db_x = digamma(b + xv) - psi_abx - digamma(b) + digamma(a + b)
    ll = wsum(d.x_weight, const_x)
    g_r = wsum(d.x_weight, dr_x)
    g_alpha = r / alpha * d.total
    g_a = wsum(d.x_weight, da_x)
    g_b = wsum(d.x_weight, db_x)

    # x == 0: -r ln(alpha + T)
    log_a_t0 = np.log(alpha + d.T0)
    ll -= r * wsum(d.w0, log_a_t0)
    g_r -= wsum(d.w0, log_a_t0)
    g_alpha -= r * wsum(d.w0, 1.0 / (alpha + d.T0))

    # x > 0
    w, x = d.weight, d.x
    rx = r + x
    bx1 = b + x - 1.0
    log_at = np.log(alpha + d.T)
    log_atx = np.log(alpha + d.t_x)
    delta = np.log(a / bx1) + rx * (log_at - log_atx)
    ll += wsum(w, np.logaddexp(0.0, delta) - rx * log_at)
    w4 = w * expit(delta)  # customers x the posterior weight of "dropped out after the last purchase"
    w3 = w - w4
    g_r -= wsum(w3, log_at) + wsum(w4, log_atx)
    g_alpha -= wsum(w3, rx / (alpha + d.T)) + wsum(w4, rx / (alpha + d.t_x))
    g_a += w4.sum() / a
    g_b -= wsum(w4, 1.0 / bx1)
    return float(ll), np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BGNBDParams:
    """Fit the BG/NBD model by maximum likelihood (eq. 6 summed over customers).

    ``x``: repeat purchases in the calibration period (total purchases - 1); ``t_x``: time of the last
    purchase and ``T``: time from the first purchase to the end of calibration, both measured from the
    first purchase, in one time unit (e.g. weeks). Raises FitError on invalid input, on data without
    repeat purchases, and on a fit that does not converge or degenerates.
    """
    xs, txs, Ts = check_rfm(x, t_x, T)
    n = xs.size
    if n < 2:
        raise FitError(f"need at least 2 customers, got {n} · 至少需要 2 位客户，实际 {n} 位")
    repeaters = int(np.count_nonzero(xs > 0))
    if repeaters == 0:
        raise FitError(
            "no customer made a repeat purchase (everyone bought once): the BG/NBD model cannot be fitted · "
            "没有任何客户复购（所有人只买过一次），无法拟合 BG/NBD 模型"
        )
    if float(Ts.max()) <= 0:
        raise FitError("every customer has T = 0 (no observation time) · 所有客户的 T 都为 0（没有观察期）")
    rows = _aggregate_rfm(xs, txs, Ts)
    # Start: r = 1 and alpha = 1 / (observed repeat rate), a = b = 1 (scale-free in the time unit).
    rate = float(xs.sum()) / float(Ts.sum())
    theta0 = np.log(np.array([1.0, 1.0 / rate, 1.0, 1.0]))
    r, alpha, a, b = minimise(_bgnbd_loglik_and_grad, theta0, (rows,), rows.total, ("r", "alpha", "a", "b"))
    if a / (a + b) < 1e-6:
        # The likelihood keeps rising as the drop-out probability goes to 0: customers never seem to leave.
        raise FitError(
            f"the fit is degenerate: mean drop-out probability per purchase a/(a+b) = {a / (a + b):.2g}, "
            "i.e. no customer ever seems to drop out; use a longer calibration period · "
            "拟合退化：每次购买后的平均流失概率几乎为 0（数据中看不到流失），请延长校准期"
        )
    ll, _ = _bgnbd_loglik_and_grad(np.log(np.array([r, alpha, a, b])), rows)
    return BGNBDParams(
        r=float(r), alpha=float(alpha), a=float(a), b=float(b), log_likelihood=float(ll), customers=int(n)
    )


def alive_purchases(
    r: float, alpha: float, a: float, b: float, x: FloatArray, T: FloatArray, t: FloatArray
) -> FloatArray:
    """Expected purchases in (T, T+t] of a customer known to be alive at T (eq. 10 without its denominator).

        (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],  z = t/(alpha+T+t)

    2F1 is evaluated after Euler's transformation 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z):

        ((alpha+T)/(alpha+T+t))^(r+x) 2F1(...) = (1-z)^(a-1) 2F1(a-1, a+b-1-r; a+b+x-1; z)

    whose numerator parameters do not grow with x; the direct form overflows for large x and z near 1
    (scipy returns inf/nan). Against mpmath this is accurate to ~1e-10 relative, except:

    * short horizons, t <= 0.01 (alpha+T): 1 - (...) cancels (up to 1e-6 relative error for large a, 0/0
      at a = 1), so these use the exact positive series of ``_alive_purchases_series`` (a few terms there).
    * C-A-B = r+x+1-a an exact integer with z near 1 (scipy returns inf/nan): extrapolated from r(1 +- h),
      r(1 +- 2h), h = 1e-7 (Richardson on symmetric means; the function is smooth in r).
    * the prefactor is 0/0 at a = 1 (and at a+b+x = 1): likewise from a +- _NUDGE_A, a +- 2 _NUDGE_A.
    * large a and b (e.g. a fit on the ridge a, b -> infinity, see the docs), where scipy returns inf/nan
      for any form of 2F1: the series again.
    """
    x, T, t = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(x, T, t))
    out = np.empty(x.shape)
    short = t <= 0.01 * (alpha + T)
    if np.any(short):
        out[short] = _alive_purchases_series(r, alpha, a, b, x[short], T[short], t[short])
    rest = ~short
    if not np.any(rest):
        return out
    x, T, t = x[rest], T[rest], t[rest]

    def closed_form(r_: float, a_: float, sel: Any = ...) -> FloatArray:
        xs, Ts, ts = x[sel], T[sel], t[sel]
        c = a_ + b + xs - 1.0
        z = ts / (alpha + Ts + ts)
        with np.errstate(invalid="ignore", over="ignore"):
            g = hyp2f1(a_ - 1.0, a_ + b - 1.0 - r_, c, z) * np.exp((a_ - 1.0) * np.log1p(-z))
            return np.asarray(c / (a_ - 1.0) * (1.0 - g), dtype=np.float64)

    near_a1 = abs(a - 1.0) < _NUDGE_A
    near_c0 = np.abs(a + b + x - 1.0) < _NUDGE_A
    value = np.full(x.shape, np.nan) if near_a1 else closed_form(r, a)
    fix = ~(np.isfinite(value) & (value >= 0)) | near_c0
    if np.any(fix):
        da = _NUDGE_A if near_a1 or bool(np.any(near_c0)) else 0.0
        # Symmetric means at steps h and 2h, Richardson-combined: the error is O(h^4).
        near = 0.5 * (closed_form(r * (1.0 + 1e-7), a + da, fix) + closed_form(r * (1.0 - 1e-7), a - da, fix))
        far = 0.5 * (closed_form(r * (1.0 + 2e-7), a + 2 * da, fix) + closed_form(r * (1.0 - 2e-7), a - 2 * da, fix))
        value[fix] = (4.0 * near - far) / 3.0
    bad = ~(np.isfinite(value) & (value >= 0))
    if np.any(bad):
        value[bad] = _alive_purchases_series(r, alpha, a, b, x[bad], T[bad], t[bad])
    out[rest] = value
    return out


def _alive_purchases_series(
    r: float, alpha: float, a: float, b: float, x: FloatArray, T: FloatArray, t: FloatArray
) -> FloatArray:
    """The same expectation as ``alive_purchases`` as a series of positive terms (no cancellation):

        sum_{n>=1} P(N >= n) E[(1-p)^(n-1)],   N ~ NegBin(r+x, z) (purchases in t if the customer never
        left; P(N >= n) = I_z(n, r+x)), p ~ Beta(a, b+x) (E[(1-p)^(n-1)] = B(a, b+x+n-1) / B(a, b+x))

    since a customer alive at T makes at least n purchases in (T, T+t] iff the Poisson process gives n and
    the customer survives the first n-1 of them. Exact for all parameters, but needs about as many terms as
    the larger of E[N] and 1/E[p]: used only where scipy's 2F1 fails. NaN if 10^6 terms do not converge.
    """
    A, beta = r + x, b + x
    z = t / (alpha + T + t)
    out = np.zeros(x.shape)
    todo = np.flatnonzero(z > 0)
    start, size = 1, 64
    while todo.size and start <= 1_000_000:
        size = max(16, min(size, 2**21 // todo.size))  # at most ~2M terms in memory at once
        n = np.arange(start, start + size, dtype=np.float64)[None, :]
        a_t, b_t, z_t = A[todo, None], beta[todo, None], z[todo, None]
        terms = betainc(n, a_t, z_t) * np.exp(betaln(a, b_t + n - 1.0) - betaln(a, b_t))
        out[todo] += terms.sum(axis=1)
        # Bounds on the rest of the sum, given the last term: past the mode of N, P(N >= n) shrinks at
        # least geometrically with ratio rho; for a > 1, sum_{m>n} E[(1-p)^(m-1)] = E[(1-p)^(n-1)] (b+x+n-1)/(a-1).
        last_n = start + size - 1.0
        rho = z_t[:, 0] * (last_n + a_t[:, 0]) / (last_n + 1.0)
        by_n = np.where(rho < 1.0, rho / np.maximum(1.0 - rho, 1e-300), np.inf)
        by_p = (b_t[:, 0] + last_n - 1.0) / (a - 1.0) if a > 1.0 else np.inf
        remainder = terms[:, -1] * np.minimum(by_n, by_p)
        todo = todo[remainder > 1e-16 * out[todo]]
        start += size
        size *= 2
    out[todo] = np.nan
    return out


def _alive_purchases_by_row(params: BGNBDParams, x: FloatArray, T: FloatArray, t: float) -> FloatArray:
    """``alive_purchases`` for one horizon ``t``, evaluated once per distinct (x, T) (it does not depend on
    t_x): real data in days have few distinct pairs, so a million customers cost a few thousand 2F1 calls."""
    first, inverse = distinct_index(x, T)
    values = alive_purchases(params.r, params.alpha, params.a, params.b, x[first], T[first], np.full(first.size, t))
    return values[inverse]


def bgnbd_p_alive(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(alive at T | x, t_x, T) [FH05 note 021, eq. 1; FHL05 eq. 10's denominator]:

    1 / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)),   = 1 when x == 0.
    """
    xs, txs, Ts = check_rfm(x, t_x, T)
    return p_alive(params, xs, txs, Ts)


def p_alive(params: BGNBDParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """``bgnbd_p_alive`` on arrays already validated by ``check_rfm`` (no second pass over the input)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    bx1 = np.where(repeat, b + x - 1.0, 1.0)
    log_odds = np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.asarray(np.where(repeat, expit(-log_odds), 1.0), dtype=np.float64)


def bgnbd_expected_purchases(
    params: BGNBDParams, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: expected purchases in (T, T+t] given the customer's history (eq. 10).

        E = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
            / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))

    ``t`` is a scalar or an array broadcastable against the customers.
    """
    xs, txs, Ts = check_rfm(x, t_x, T)
    ts = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(ts)) or np.any(ts < 0):
        raise FitError("t must be finite and non-negative · t 必须是有限的非负数")
    alive = p_alive(params, xs, txs, Ts)
    if ts.ndim == 0:
        return alive * _alive_purchases_by_row(params, xs, Ts, float(ts))
    return alive * alive_purchases(params.r, params.alpha, params.a, params.b, xs, Ts, ts)


def bgnbd_unconditional_expected(params: BGNBDParams, t: ArrayLike) -> FloatArray | float:
    """E[X(t)]: expected repeat purchases in (0, t] of a customer who first bought at 0 (eq. 7).

        E[X(t)] = (a+b-1)/(a-1) * [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]

    (eq. 10 at x = 0, T = 0). Returns a float for a scalar ``t``.
    """
    ts = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(ts)) or np.any(ts < 0):
        raise FitError("t must be finite and non-negative · t 必须是有限的非负数")
    zero = np.zeros(1 if ts.ndim == 0 else ts.shape)
    out = alive_purchases(params.r, params.alpha, params.a, params.b, zero, zero, ts.reshape(zero.shape))
    return float(out[0]) if ts.ndim == 0 else out
