"""BG/NBD purchase model and Gamma-Gamma spend model, fitted by maximum likelihood.

References
----------
* [FHL05] Fader, Hardie & Lee (2005), "'Counting your customers' the easy way: an alternative to the
  Pareto/NBD model", Marketing Science 24(2), 275-284. Equation numbers in the modules are the paper's.
* [FH05] Fader, Hardie & Lee (2005/2008), "Computing P(alive) using the BG/NBD model",
  http://brucehardie.com/notes/021/ (eq. 1 there; also eq. A.2 with note 004 on the log-likelihood).
* [FH13] Fader & Hardie (2013), "The Gamma-Gamma model of monetary value",
  http://brucehardie.com/notes/025/.

Everything is vectorised over customers with numpy/scipy; the fits use analytic gradients of the
log-likelihood with L-BFGS-B on log-parameters, on data aggregated to distinct (x, t_x, T) rows with
weights, so a million customers fit in about a second. See docs/clv-models.md.

Modules: `fit` (shared: errors, aggregation, the optimiser), `bgnbd`, `gamma_gamma`, `predicted`.
"""

from siyu.clv.models.bgnbd import (
    BGNBDParams,
    bgnbd_expected_purchases,
    bgnbd_p_alive,
    bgnbd_unconditional_expected,
    fit_bgnbd,
)
from siyu.clv.models.fit import FitError
from siyu.clv.models.gamma_gamma import GammaGammaParams, fit_gamma_gamma, gamma_gamma_expected_spend
from siyu.clv.models.predicted import DAYS_PER_MONTH, predicted_clv

__all__ = [
    "DAYS_PER_MONTH",
    "BGNBDParams",
    "FitError",
    "GammaGammaParams",
    "bgnbd_expected_purchases",
    "bgnbd_p_alive",
    "bgnbd_unconditional_expected",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_expected_spend",
    "predicted_clv",
]
