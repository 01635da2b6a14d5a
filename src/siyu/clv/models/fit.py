"""What both CLV models share: the error, input arrays, aggregation to distinct rows, and the
maximum-likelihood driver (L-BFGS-B on log-parameters with analytic gradients)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

from siyu.core.errors import SiyuError

FloatArray = NDArray[np.float64]

# Parameters outside [_PARAM_MIN, _PARAM_MAX] are reported as a failed fit, never returned.
_PARAM_MIN = 1e-8
_PARAM_MAX = 1e6
# The optimiser may wander a little further than that, so a drift to the edge is seen, not clipped.
_LOG_BOUNDS = (float(np.log(1e-10)), float(np.log(1e8)))


class FitError(SiyuError):
    """A CLV model could not be fitted to the data (the message says why and what to do)."""

    code = "clv_fit_failed"


def as_float_array(name: str, values: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FitError(f"{name} must be numeric · {name} 必须是数值") from exc
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr


def distinct_index(*columns: FloatArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(first, inverse): one row index per distinct tuple of ``columns``, and each row's tuple number.

    Same as ``np.unique(np.stack(columns, 1), axis=0, return_index=True, return_inverse=True)`` but ~7x
    faster on a million rows: each column is coded by a 1-D unique, the codes are packed into one int64
    key, and the keys are uniqued (the 2-D unique sorts a structured view, 1.7 s for 10^6 rows).
    """
    key = np.zeros(columns[0].shape, dtype=np.int64)
    span = 1
    for col in columns:
        values, inverse = np.unique(col, return_inverse=True)
        span *= max(values.size, 1)
        if span >= 2**62:  # the key would overflow: 2-D unique
            _, first, inv = np.unique(np.stack(columns, axis=1), axis=0, return_index=True, return_inverse=True)
            return first, inv.reshape(-1)
        key = key * values.size + inverse.reshape(-1)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return first, inv.reshape(-1)


def distinct_rows(*columns: FloatArray) -> tuple[NDArray[np.intp], FloatArray]:
    """One row index per distinct tuple of ``columns`` and the number of rows sharing it."""
    first, inverse = distinct_index(*columns)
    return first, np.bincount(inverse, minlength=first.size).astype(np.float64)


def wsum(w: FloatArray, v: FloatArray) -> float:
    """sum(w * v). Not np.dot: 1-D dot goes to multithreaded BLAS, 3-8x slower here on a busy machine."""
    return float(np.einsum("i,i->", w, v))


def minimise(
    fun_and_grad: Any, theta0: FloatArray, args: tuple[Any, ...], total: float, names: tuple[str, ...]
) -> FloatArray:
    """L-BFGS-B on log-parameters, minimising the mean negative log-likelihood; FitError unless it converged."""

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = fun_and_grad(theta, *args)
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(theta)
        return -ll / total, -grad / total

    res = minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=[_LOG_BOUNDS] * len(theta0),
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9, "maxcor": 20},
    )
    theta = np.asarray(res.x, dtype=np.float64)
    _, grad = objective(theta)
    # L-BFGS-B sometimes stops on a failed line search at the optimum (the objective cannot decrease any
    # further in floating point): accept that only when the gradient is ~0.
    converged = bool(res.success) or (np.isfinite(res.fun) and float(np.max(np.abs(grad))) < 1e-5)
    if not converged or not np.isfinite(res.fun):
        raise FitError(
            f"the optimiser did not converge ({res.message}) · 优化器未收敛（{res.message}）。"
            "Check the data (units, outliers) · 请检查数据（时间单位、异常值）"
        )
    values = np.exp(theta)
    absurd = [f"{n}={v:.3g}" for n, v in zip(names, values, strict=True) if not (_PARAM_MIN <= v <= _PARAM_MAX)]
    if absurd:
        raise FitError(
            f"the fit gave degenerate parameters ({', '.join(absurd)}): the data do not identify the model; "
            "use more customers or a longer calibration period · "
            f"拟合得到退化参数（{', '.join(absurd)}）：数据不足以识别模型，请增加客户数或延长校准期"
        )
    return values
