"""Performance statistics shared by the backtest report, the exit evaluation and the loop's gate.

One home for the Sharpe family so every table in Kaizen computes them the same way:
- `sharpe`: mean / std (ddof 1) of per-period returns, optionally annualised by sqrt(periods);
- `psr`: probabilistic Sharpe ratio (Bailey & Lopez de Prado, 2012): P(true SR > sr_star) given
  the sample's length, skewness and kurtosis;
- `expected_max_sharpe`: the expected maximum SR of N unskilled trials whose estimates vary with
  variance `var_sr` (the "false strategy" theorem);
- `deflated_sharpe`: PSR against that expected maximum (Bailey & Lopez de Prado, 2014). Promote
  at >= 0.95 with N = every trial logged for the role.
All Sharpe ratios inside PSR/DSR are per period (not annualised), as the formulas require.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(returns: np.ndarray, periods_per_year: float | None = None) -> float:
    """Mean over sample std (ddof 1); annualised by sqrt(periods_per_year) when given. 0 when the
    std is 0 or there are fewer than 2 finite returns."""
    r = np.asarray(returns, np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    if not sd > 0:
        return 0.0
    sr = float(r.mean()) / sd
    return sr * math.sqrt(periods_per_year) if periods_per_year else sr


def sortino(returns: np.ndarray, periods_per_year: float | None = None) -> float:
    """Mean over downside deviation (root mean square of min(r, 0)); annualised like `sharpe`."""
    r = np.asarray(returns, np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 2:
        return 0.0
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if not dd > 0:
        return 0.0
    s = float(r.mean()) / dd
    return s * math.sqrt(periods_per_year) if periods_per_year else s


def moments(returns: np.ndarray) -> tuple[float, float]:
    """(skewness, kurtosis) of the sample; kurtosis is the plain fourth standardized moment
    (3 for a normal), as PSR uses it. (0, 3) when undefined."""
    r = np.asarray(returns, np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 3:
        return 0.0, 3.0
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if not m2 > 0:
        return 0.0, 3.0
    return float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2


def sr_variance(sr: float, n: int, skew: float = 0.0, kurt: float = 3.0) -> float:
    """Variance of the per-period SR estimator (Mertens 2002, as in PSR's denominator)."""
    if n < 2:
        return math.inf
    return max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr, 1e-12) / (n - 1)


def psr(sr: float, n: int, skew: float = 0.0, kurt: float = 3.0, sr_star: float = 0.0) -> float:
    """P(true per-period SR > sr_star) for an estimate `sr` from `n` returns."""
    if n < 2 or not math.isfinite(sr):
        return 0.0
    return _N.cdf((sr - sr_star) / math.sqrt(sr_variance(sr, n, skew, kurt)))


def expected_max_sharpe(n_trials: int, var_sr: float) -> float:
    """E[max SR] over n_trials unskilled trials whose SR estimates have variance var_sr."""
    if n_trials <= 1 or not var_sr > 0:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sr) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def deflated_sharpe(
    returns: np.ndarray, n_trials: int, trial_srs: np.ndarray | None = None
) -> dict[str, float]:
    """Deflated Sharpe ratio of `returns` (per period) after `n_trials` trials.

    The variance of SR across trials comes from `trial_srs` (the per-period SRs of every trial, when
    known and more than one) or else from the estimator's own variance at this sample length.
    Returns {"sr", "sr0", "psr", "dsr", "n", "trials"} (SRs per period)."""
    r = np.asarray(returns, np.float64)
    r = r[np.isfinite(r)]
    n = len(r)
    sr = sharpe(r)
    skew, kurt = moments(r)
    if trial_srs is not None and len(trial_srs) > 1:
        var = float(np.var(np.asarray(trial_srs, np.float64), ddof=1))
    else:
        var = sr_variance(0.0, n)
    sr0 = expected_max_sharpe(max(int(n_trials), 1), var)
    return {
        "sr": sr,
        "sr0": sr0,
        "psr": psr(sr, n, skew, kurt, 0.0),
        "dsr": psr(sr, n, skew, kurt, sr0),
        "n": float(n),
        "trials": float(max(int(n_trials), 1)),
    }


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall as a fraction of the peak (0 for a curve that never falls)."""
    e = np.asarray(equity, np.float64)
    if len(e) == 0:
        return 0.0
    peak = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, (peak - e) / peak, 0.0)
    return float(np.nanmax(dd)) if len(dd) else 0.0
