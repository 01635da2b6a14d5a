"""BG/NBD and Gamma-Gamma: published CDNOW estimates, point predictions, gradients, numerics, errors.

CDNOW 1/10 sample: the raw transactions file shipped inside the `lifetimes` package (read directly:
`lifetimes.datasets` does not import with setuptools >= 82).
"""

# The paper's notation (T = customer age) is kept in names.
# ruff: noqa: N803, N806

from __future__ import annotations

import importlib.resources
import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import IntegrationWarning, quad
from scipy.optimize import approx_fprime
from scipy.special import betaln, gammaln

from siyu.clv.models import (
    BGNBDParams,
    FitError,
    GammaGammaParams,
    bgnbd_expected_purchases,
    bgnbd_p_alive,
    bgnbd_unconditional_expected,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_spend,
    predicted_clv,
)
from siyu.clv.models.bgnbd import _aggregate_rfm, _alive_purchases_series, _bgnbd_loglik_and_grad, alive_purchases
from siyu.clv.models.fit import distinct_rows
from siyu.clv.models.gamma_gamma import _gg_loglik_and_grad, _spend_rows

CAL_END = pd.Timestamp("1997-09-30")


@dataclass(frozen=True)
class CDNOW:
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    mean_spend: np.ndarray  # mean of the repeat transactions (first purchase excluded); 0 when x == 0


def _lifetimes_file(name: str) -> pd.DataFrame:
    with warnings.catch_warnings():  # importing lifetimes warns about a pandas option it sets
        warnings.simplefilter("ignore")
        path = importlib.resources.files("lifetimes") / "datasets" / name
    with importlib.resources.as_file(path) as p:
        if name.endswith(".txt"):
            return pd.read_csv(
                p, sep=r"\s+", header=None, names=["master_id", "id", "date", "cds", "spend"], dtype={"date": str}
            )
        return pd.read_csv(p)


def _cdnow(end_of_day: bool = False) -> CDNOW:
    """The paper's conversion: one transaction per customer-day (same-day spends summed), time in days / 7,
    calibration = first purchase .. 1997-09-30, T = (1997-09-30 - first purchase day) / 7."""
    raw = _lifetimes_file("CDNOW_sample.txt")
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    daily = raw.groupby(["id", "date"], as_index=False)["spend"].sum().sort_values(["id", "date"])
    first = daily.groupby("id")["date"].transform("min")
    cal = daily[daily["date"] <= CAL_END].assign(first=first)
    g = cal.groupby("id")
    x = g.size() - 1
    first_day = g["first"].first()
    t_x = (g["date"].max() - first_day).dt.days / 7
    end = CAL_END + pd.Timedelta(days=1 if end_of_day else 0)
    T = (end - first_day).dt.days / 7
    repeat_spend = cal[cal["date"] > cal["first"]].groupby("id")["spend"].mean()
    mean_spend = repeat_spend.reindex(x.index).fillna(0.0)
    return CDNOW(x.to_numpy(float), t_x.to_numpy(), T.to_numpy(), mean_spend.to_numpy())


@pytest.fixture(scope="module")
def cdnow() -> CDNOW:
    return _cdnow()


@pytest.fixture(scope="module")
def bg(cdnow: CDNOW) -> BGNBDParams:
    return fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.T)


@pytest.fixture(scope="module")
def gg(cdnow: CDNOW) -> GammaGammaParams:
    return fit_gamma_gamma(cdnow.x, cdnow.mean_spend)


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Draw (x, t_x, T) from the BG/NBD process (weeks; first purchases spread over 12 weeks, 39-week end)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = 39.0 - rng.uniform(0, 12, n)
    purchases = rng.poisson(lam * T)  # repeat purchases if the customer never dropped out
    dropout_after = rng.geometric(p)  # the customer leaves right after this repeat purchase
    x = np.minimum(purchases, dropout_after)
    t_x = np.zeros(n)
    repeat = x > 0
    # the x-th of N uniform arrival times on (0, T) is T * Beta(x, N - x + 1)
    t_x[repeat] = T[repeat] * rng.beta(x[repeat], purchases[repeat] - x[repeat] + 1)
    return x.astype(float), t_x, T


# --------------------------------------------------------------------------------------------------
# CDNOW: data conversion and published estimates
# --------------------------------------------------------------------------------------------------


def test_cdnow_conversion_matches_the_published_summary(cdnow: CDNOW) -> None:
    # Hardie's per-customer summary (x, t_x, T, zbar), also shipped in `lifetimes`, rounded to 2 decimals.
    ref = _lifetimes_file("cdnow_customers_summary_with_transactions.csv")
    assert len(cdnow.x) == len(ref) == 2357
    assert np.array_equal(cdnow.x, ref["x"].to_numpy(float))
    assert np.abs(cdnow.t_x - ref["t_x"].to_numpy()).max() < 0.0051
    assert np.abs(cdnow.T - ref["T"].to_numpy()).max() < 0.0051
    assert np.abs(cdnow.mean_spend - ref["zbar"].to_numpy()).max() < 0.0051
    # The paper's example customer: first purchase 1997-01-01, repeats on 01-18 and 08-02.
    assert (cdnow.x[0], round(cdnow.t_x[0], 2), round(cdnow.T[0], 2)) == (2, 30.43, 38.86)
    assert cdnow.mean_spend[0] == pytest.approx((29.73 + 14.96) / 2)


def test_bgnbd_reproduces_the_published_cdnow_estimates(bg: BGNBDParams) -> None:
    # Fader, Hardie & Lee (2005), section 5: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
    assert (round(bg.r, 3), round(bg.alpha, 3), round(bg.a, 3), round(bg.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    assert round(bg.log_likelihood, 1) == -9582.4
    assert bg.customers == 2357


def test_t_to_the_end_of_the_last_calibration_day_does_not_reproduce_the_paper() -> None:
    other = _cdnow(end_of_day=True)
    fitted = fit_bgnbd(other.x, other.t_x, other.T)
    assert round(fitted.log_likelihood, 1) != -9582.4
    assert round(fitted.a, 3) != 0.793


def test_gamma_gamma_reproduces_the_published_cdnow_estimates(gg: GammaGammaParams) -> None:
    # Fader & Hardie (2013), "The Gamma-Gamma model of monetary value": p = 6.25, q = 3.74, gamma = 15.44
    assert (round(gg.p, 2), round(gg.q, 2), round(gg.gamma, 2)) == (6.25, 3.74, 15.44)
    assert gg.customers == 946
    assert gg.population_mean_spend == pytest.approx(gg.p * gg.gamma / (gg.q - 1))


def test_gamma_gamma_on_the_mean_of_all_transactions_does_not_reproduce_the_note(cdnow: CDNOW) -> None:
    raw = _lifetimes_file("CDNOW_sample.txt")
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    daily = raw[raw["date"] <= CAL_END].groupby(["id", "date"], as_index=False)["spend"].sum()
    all_mean = daily.groupby("id")["spend"].mean().to_numpy()
    fitted = fit_gamma_gamma(cdnow.x, all_mean)
    assert round(fitted.p, 2) != 6.25


def test_published_point_predictions(bg: BGNBDParams, gg: GammaGammaParams) -> None:
    # FHL05: x = 2, t_x = 30.43, T = 38.86 -> 1.226 purchases expected in the next 39 weeks.
    assert round(float(bgnbd_expected_purchases(bg, 39, [2], [30.43], [38.86])[0]), 3) == 1.226
    # FH13: x = 2 repeat transactions of mean $22.345 (shown as $22.35) -> $24.65 expected per transaction.
    assert round(float(gamma_gamma_expected_spend(gg, [2], [22.345])[0]), 2) == 24.65


# --------------------------------------------------------------------------------------------------
# Predictions: properties
# --------------------------------------------------------------------------------------------------


def test_p_alive_is_a_probability_and_one_without_repeat_purchases(bg: BGNBDParams, cdnow: CDNOW) -> None:
    alive = bgnbd_p_alive(bg, cdnow.x, cdnow.t_x, cdnow.T)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(alive[cdnow.x == 0] == 1.0)
    # A customer with many purchases who has been silent for a long time is likely gone.
    assert bgnbd_p_alive(bg, [20], [1.0], [38.0])[0] < 0.01
    assert bgnbd_p_alive(bg, [20], [38.0], [38.0])[0] > 0.9


def test_expected_purchases_increase_with_t(bg: BGNBDParams, cdnow: CDNOW) -> None:
    ts = np.array([0.0, 1.0, 5.0, 39.0, 100.0, 1000.0, 1e5])
    values = np.stack([bgnbd_expected_purchases(bg, t, cdnow.x, cdnow.t_x, cdnow.T) for t in ts])
    assert np.all(values[0] == 0.0)
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values, axis=0) > 0)
    uncond = bgnbd_unconditional_expected(bg, ts)
    assert isinstance(uncond, np.ndarray)
    assert np.all(np.diff(uncond) > 0)
    assert isinstance(bgnbd_unconditional_expected(bg, 39.0), float)


def test_unconditional_expectation_is_eq_10_at_x_0_and_t_0(bg: BGNBDParams) -> None:
    ts = np.array([0.5, 39.0, 78.0])
    assert np.allclose(
        bgnbd_unconditional_expected(bg, ts), bgnbd_expected_purchases(bg, ts, [0, 0, 0], [0, 0, 0], [0, 0, 0])
    )


def test_predicted_clv(bg: BGNBDParams, gg: GammaGammaParams, cdnow: CDNOW) -> None:
    args = (cdnow.x, cdnow.t_x, cdnow.T, cdnow.mean_spend)
    clv = predicted_clv(bg, gg, *args, horizon_months=12)
    assert clv.shape == cdnow.x.shape
    assert np.all(clv >= 0) and np.all(np.isfinite(clv))
    assert np.all(predicted_clv(bg, gg, *args, horizon_months=12, monthly_discount=0.05) < clv)
    assert np.all(predicted_clv(bg, gg, *args, horizon_months=24) > clv)
    assert np.all(predicted_clv(bg, gg, *args, horizon_months=0) == 0)
    # Without discounting the monthly increments telescope: E(Y(12 months)) * E(M).
    flat = predicted_clv(bg, gg, *args, horizon_months=12, monthly_discount=0.0)
    year = 12 * 30.4375 / 7
    expected = bgnbd_expected_purchases(bg, year, cdnow.x, cdnow.t_x, cdnow.T) * gamma_gamma_expected_spend(
        gg, cdnow.x, cdnow.mean_spend
    )
    assert np.allclose(flat, expected, rtol=1e-12)
    # Days as the time unit: same model rescaled (alpha in days) gives the same CLV.
    bg_days = BGNBDParams(bg.r, bg.alpha * 7, bg.a, bg.b, bg.log_likelihood, bg.customers)
    in_days = predicted_clv(
        bg_days, gg, cdnow.x, cdnow.t_x * 7, cdnow.T * 7, cdnow.mean_spend, horizon_months=12, unit_days=1.0
    )
    assert np.allclose(in_days, clv, rtol=1e-9)


def test_expected_spend_without_repeat_purchases_is_the_population_mean(gg: GammaGammaParams) -> None:
    out = gamma_gamma_expected_spend(gg, [0, 0], [0.0, 999.0])
    assert np.allclose(out, gg.p * gg.gamma / (gg.q - 1))


# --------------------------------------------------------------------------------------------------
# Agreement with lifetimes
# --------------------------------------------------------------------------------------------------


def test_agrees_with_lifetimes_on_cdnow(bg: BGNBDParams, gg: GammaGammaParams, cdnow: CDNOW) -> None:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    x, t_x, T = cdnow.x, cdnow.t_x, cdnow.T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter().fit(x, t_x, T)
        repeat = x > 0
        ggf = GammaGammaFitter().fit(x[repeat], cdnow.mean_spend[repeat])
    theirs = bgf.params_
    assert np.allclose(
        [bg.r, bg.alpha, bg.a, bg.b], [theirs["r"], theirs["alpha"], theirs["a"], theirs["b"]], rtol=1e-3
    )
    for t in (1.0, 39.0, 200.0):
        ours = bgnbd_expected_purchases(bg, t, x, t_x, T)
        assert np.abs(ours - bgf.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T)).max() < 1e-4
    assert np.abs(bgnbd_p_alive(bg, x, t_x, T) - bgf.conditional_probability_alive(x, t_x, T)).max() < 1e-4
    assert np.abs(bgnbd_unconditional_expected(bg, 39.0) - bgf.expected_number_of_purchases_up_to_time(39.0)) < 1e-4
    spend_theirs = ggf.conditional_expected_average_profit(pd.Series(x), pd.Series(cdnow.mean_spend)).to_numpy()
    spend_ours = gamma_gamma_expected_spend(gg, x, cdnow.mean_spend)
    assert np.allclose(spend_ours[repeat], spend_theirs[repeat], rtol=1e-4)

    # With the same parameters the formulas agree to rounding.
    bgf.params_ = pd.Series({"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b})
    for t in (1.0, 39.0, 200.0):
        ours = bgnbd_expected_purchases(bg, t, x, t_x, T)
        assert np.allclose(ours, bgf.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T), rtol=1e-10)
    assert np.allclose(bgnbd_p_alive(bg, x, t_x, T), bgf.conditional_probability_alive(x, t_x, T), rtol=1e-12)
    # lifetimes' negative log-likelihood is the mean over customers.
    theta = np.log([bg.r, bg.alpha, bg.a, bg.b])
    theirs_ll = -bgf._negative_log_likelihood(theta, x.astype(int), t_x, T, np.ones_like(x), 0.0) * len(x)
    assert theirs_ll == pytest.approx(bg.log_likelihood, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# Gradients and numerics
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [(0.2, 6.0, 0.6, 3.0), (0.5, 2.0, 1.5, 3.0), (0.1, 10.0, 0.3, 0.8), (2.0, 1.0, 5.0, 20.0)],
)
def test_bgnbd_gradient_matches_finite_differences(cdnow: CDNOW, params: tuple[float, ...]) -> None:
    rows = _aggregate_rfm(cdnow.x, cdnow.t_x, cdnow.T)
    theta = np.log(np.array(params))

    def mean_ll(th: np.ndarray) -> float:
        return _bgnbd_loglik_and_grad(th, rows)[0] / rows.total

    _, grad = _bgnbd_loglik_and_grad(theta, rows)
    numeric = approx_fprime(theta, mean_ll, 1e-7)
    assert np.linalg.norm(numeric - grad / rows.total) / np.linalg.norm(numeric) < 1e-5


@pytest.mark.parametrize("params", [(5.0, 4.0, 12.0), (1.0, 2.0, 30.0), (20.0, 1.5, 3.0)])
def test_gamma_gamma_gradient_matches_finite_differences(cdnow: CDNOW, params: tuple[float, ...]) -> None:
    repeat = cdnow.x > 0
    x, m = cdnow.x[repeat], cdnow.mean_spend[repeat]
    rows = _spend_rows(x, m)
    theta = np.log(np.array(params))
    _, grad = _gg_loglik_and_grad(theta, rows)
    numeric = approx_fprime(theta, lambda th: _gg_loglik_and_grad(th, rows)[0] / len(x), 1e-7)
    assert np.linalg.norm(numeric - grad / len(x)) / np.linalg.norm(numeric) < 1e-5


def test_gamma_gamma_likelihood_is_eq_3_summed_over_customers(cdnow: CDNOW) -> None:
    repeat = cdnow.x > 0
    x, m = cdnow.x[repeat], cdnow.mean_spend[repeat]
    p, q, g = 5.0, 3.0, 12.0
    # Gamma(px, nu x) density of the mean, integrated over nu ~ Gamma(q, g), written out per customer.
    direct = (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(g)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(g + m * x)
    ).sum()
    assert _gg_loglik_and_grad(np.log([p, q, g]), _spend_rows(x, m))[0] == pytest.approx(direct, rel=1e-12)


def test_aggregated_likelihood_is_eq_6_summed_over_customers(cdnow: CDNOW) -> None:
    rows = _aggregate_rfm(cdnow.x, cdnow.t_x, cdnow.T)
    assert rows.x.size + rows.T0.size < cdnow.x.size
    assert rows.total == rows.weight.sum() + rows.w0.sum() == cdnow.x.size
    r, alpha, a, b = 0.3, 5.0, 0.9, 2.0
    # Eq. 6 written out directly, one customer at a time.
    x, t_x, T = cdnow.x, cdnow.t_x, cdnow.T
    gam = np.exp(gammaln(r + x) - gammaln(r) + r * np.log(alpha))
    first = np.exp(betaln(a, b + x) - betaln(a, b)) * gam / (alpha + T) ** (r + x)
    second = np.where(x > 0, np.exp(betaln(a + 1, b + x - 1) - betaln(a, b)) * gam / (alpha + t_x) ** (r + x), 0.0)
    direct = np.log(first + second).sum()
    ll, _ = _bgnbd_loglik_and_grad(np.log([r, alpha, a, b]), rows)
    assert ll == pytest.approx(direct, rel=1e-12)


def test_distinct_rows_matches_numpy_unique() -> None:
    rng = np.random.default_rng(3)
    cols = [rng.integers(0, 5, 1000).astype(float), rng.integers(0, 7, 1000) / 7, rng.integers(0, 3, 1000) * 0.5]
    first, counts = distinct_rows(*cols)
    rows, ref_counts = np.unique(np.stack(cols, 1), axis=0, return_counts=True)
    mine = np.stack([c[first] for c in cols], 1)
    order = np.lexsort(mine.T[::-1])
    assert np.array_equal(mine[order], rows)
    assert np.array_equal(counts[order], ref_counts)


def _alive_purchases_by_quadrature(r: float, alpha: float, a: float, b: float, x: float, T: float, t: float) -> float:
    """Independent reference for eq. 10's numerator: E_p[(1 - (1 + p u)^-(r+x)) / p] with p ~ Beta(a, b+x),
    u = t / (alpha + T) (the lambda integral done in closed form), by adaptive quadrature in log p."""
    u, A, beta, lb = t / (alpha + T), r + x, b + x - 1, betaln(a, b + x)

    def f(v: float) -> float:
        p = np.exp(v)
        bought = -np.expm1(-A * np.log1p(p * u))  # ~ A u p as p -> 0
        if bought <= 0 or p >= 1:
            return 0.0
        return float(np.exp(np.log(bought) + (a - 1) * v + beta * np.log1p(-p) - lb))

    def g(p: float) -> float:
        return float(-np.expm1(-A * np.log1p(p * u)) * p ** (a - 2) * np.exp(-lb))

    half = np.log(0.5)
    pts = sorted({float(np.log(a / (a + b + x))), float(min(-np.log(u), half)), half})
    pts = [p for p in pts if p <= half]
    edges = [pts[0] - 2, *pts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        total = quad(f, -np.inf, edges[0], epsabs=0, epsrel=1e-13, limit=200)[0]
        for lo, hi in itertools.pairwise(edges):
            if hi > lo:
                total += quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=200)[0]
        if beta >= 0:
            total += quad(f, half, 0.0, epsabs=0, epsrel=1e-13, limit=200)[0]
        else:  # integrable singularity (1 - p)^beta at p = 1: algebraic-weight quadrature
            total += quad(g, 0.5, 1, weight="alg", wvar=(0, beta), epsabs=0, epsrel=1e-13, limit=200)[0]
    return float(total)


CASES = [
    # (r, alpha, a, b): CDNOW, generic, a < 1 with b < 1, a within 1e-7 of 1 and a = 1 (0/0 in eq. 10),
    # integer parameters (scipy's hyp2f1 returns inf/nan for large x and z near 1), a + b < 1 (c < 0 at x = 0).
    (0.243, 4.414, 0.793, 2.426),
    (1.7, 20.0, 2.3, 5.1),
    (0.05, 0.5, 0.3, 0.2),
    (5.0, 100.0, 1.0 + 1e-7, 3.0),
    (5.0, 100.0, 1.0, 3.0),
    (1.0, 1.0, 2.0, 1.0),
    (2.0, 3.0, 3.0, 1.0),
    (0.4, 2.0, 0.3, 0.5),
    # large a and b (a fit on the ridge a, b -> infinity): every 2F1 form fails in scipy, the series is used
    (0.48, 28.0, 12862.0, 527086.0),
    (0.2, 4.4, 1000.0, 1e5),
]


@pytest.mark.parametrize("params", CASES)
def test_eq10_numerator_is_accurate_for_extreme_inputs(params: tuple[float, float, float, float]) -> None:
    r, alpha, a, b = params
    xs, Ts, ts = [], [], []
    for x in (0, 1, 2, 20, 500, 3000):
        for T in (0.5, 38.86, 500.0):
            for t in (1e-3, 1.0, 39.0, 1e3, 1e6):
                xs.append(x)
                Ts.append(T)
                ts.append(t)
    x_arr, T_arr, t_arr = np.array(xs, float), np.array(Ts), np.array(ts)
    ours = alive_purchases(r, alpha, a, b, x_arr, T_arr, t_arr)
    assert np.all(np.isfinite(ours)) and np.all(ours > 0)
    ref = np.array([_alive_purchases_by_quadrature(r, alpha, a, b, *row) for row in zip(xs, Ts, ts, strict=True)])
    rel = np.abs(ours - ref) / ref
    worst = int(rel.argmax())
    assert rel[worst] < 1e-8, (rel[worst], xs[worst], Ts[worst], ts[worst])


def test_positive_series_matches_the_closed_form() -> None:
    # The series (exact, used for short horizons and where scipy fails) and eq. 10 through scipy's 2F1
    # agree where both apply, including a = 1 exactly (0/0 in eq. 10, extrapolated there).
    x = np.array([0.0, 1, 2, 7, 40, 0, 3])
    T = np.array([38.86, 38.86, 20.0, 5.0, 38.0, 0.0, 1.0])
    t = np.array([39.0, 1.0, 100.0, 52.0, 10.0, 39.0, 0.5])
    for params in [(0.243, 4.414, 0.793, 2.426), (1.7, 20.0, 2.3, 5.1), (5.0, 100.0, 1.0, 3.0), (1.0, 1.0, 2.0, 1.0)]:
        series = _alive_purchases_series(*params, x, T, t)
        closed = alive_purchases(*params, x, T, t)
        tolerance = 1e-8 if params[2] == 1.0 else 1e-9
        assert np.allclose(series, closed, rtol=tolerance, atol=0)


def test_fit_recovers_simulated_parameters() -> None:
    truth = (0.243, 4.414, 0.793, 2.426)
    x, t_x, T = simulate_bgnbd(300_000, *truth, seed=7)
    fitted = fit_bgnbd(x, t_x, T)
    assert np.allclose([fitted.r, fitted.alpha, fitted.a, fitted.b], truth, rtol=0.05)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_everyone_bought_once_is_a_fit_error() -> None:
    with pytest.raises(FitError, match="everyone bought once") as err:
        fit_bgnbd(np.zeros(100), np.zeros(100), np.linspace(1, 30, 100))
    assert err.value.code == "clv_fit_failed"
    assert "复购" in err.value.message


def test_too_few_customers_is_a_fit_error() -> None:
    with pytest.raises(FitError, match="at least 2 customers"):
        fit_bgnbd([1], [2.0], [5.0])


@pytest.mark.parametrize(
    ("x", "t_x", "T", "match"),
    [
        ([1, -1, 0], [1, 1, 0], [2, 2, 2], "negative"),
        ([1, 1, 0], [1, 3, 0], [2, 2, 2], "after T"),
        ([1, 1, 0], [1, np.nan, 0], [2, 2, 2], "missing"),
        ([1, 1, 0], [1, 1, 0], [2, np.inf, 2], "infinite"),
        ([1, 1.5, 0], [1, 1, 0], [2, 2, 2], "whole numbers"),
        ([1, 1], [1, 1, 0], [2, 2, 2], "same length"),
        (["a", "b"], [1, 1], [2, 2], "numeric"),
    ],
)
def test_invalid_input_is_a_fit_error(x: list[object], t_x: list[float], T: list[float], match: str) -> None:
    with pytest.raises(FitError, match=match):
        fit_bgnbd(x, t_x, T)  # type: ignore[arg-type]


def test_degenerate_data_is_a_fit_error_not_nonsense() -> None:
    # Every customer bought steadily right up to the end: no drop-out is ever seen, so p -> 0 (a -> 0 or
    # b -> infinity) and there is no finite maximum-likelihood estimate.
    rng = np.random.default_rng(0)
    T = rng.uniform(20, 39, 500)
    x = rng.integers(1, 10, 500).astype(float)
    with pytest.raises(FitError, match=r"degenerate|converge"):
        fit_bgnbd(x, T, T)


def test_gamma_gamma_needs_ten_repeat_customers() -> None:
    x = np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 0, 0], float)
    spend = np.array([10, 20, 30, 15, 25, 35, 12, 22, 32, 0, 0], float)
    with pytest.raises(FitError, match="at least 10 repeat customers"):
        fit_gamma_gamma(x, spend)


@pytest.mark.parametrize("bad", [0.0, -5.0, np.nan])
def test_gamma_gamma_needs_positive_mean_spend(bad: float) -> None:
    x = np.ones(20)
    spend = np.linspace(10, 30, 20)
    spend[3] = bad
    with pytest.raises(FitError, match="mean spend"):
        fit_gamma_gamma(x, spend)


def test_gamma_gamma_ignores_customers_without_repeat_purchases(cdnow: CDNOW, gg: GammaGammaParams) -> None:
    spend = np.where(cdnow.x > 0, cdnow.mean_spend, np.nan)  # whatever sits there for x == 0 is not used
    again = fit_gamma_gamma(cdnow.x, spend)
    assert (again.p, again.q, again.gamma) == pytest.approx((gg.p, gg.q, gg.gamma), rel=1e-9)
