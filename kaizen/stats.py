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

Paired tests on per-decision differences d_t = candidate_t - champion_t (net returns, so larger is
better), used by the loop's validation gate:
- `diebold_mariano`: one-sided DM test with the Harvey-Leybourne-Newbold small-sample correction;
  the statistic and its Newey-West (Bartlett) long-run variance come from statsmodels'
  `diebold_mariano_test`, with `newey_west_lags` as the stated lag rule;
- `bootstrap_pvalue`: paired stationary (Politis-Romano) or circular block bootstrap of the mean
  difference (the `arch` package), block length by Politis-White (2004, Patton et al. 2009);
- `pbo_cscv`: probability of backtest overfitting by combinatorially symmetric cross-validation
  (Bailey, Borwein, Lopez de Prado and Zhu, 2017), S = 16 blocks by default;
- `model_confidence_set`: Hansen-Lunde-Nason MCS over many variants (the `arch` package).
"""

from __future__ import annotations

import math
from itertools import combinations
from statistics import NormalDist
from typing import Literal

import msgspec
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


# --- paired tests for the validation gate -----------------------------------------------------------
class PairedTest(msgspec.Struct, frozen=True, kw_only=True):
    """Result of a one-sided paired test of H0: E[d] <= 0 against H1: E[d] > 0 (or the reverse for
    alternative="less"). `statistic` is the test's own (t-like for DM, the mean for the bootstrap);
    `lags` is the Newey-West lag count (DM) and `block` the mean block length (bootstrap)."""

    method: str
    alternative: str
    statistic: float
    p_value: float
    mean: float
    n: int
    lags: int = 0
    block: float = 0.0
    reps: int = 0


def _diff(diff: np.ndarray) -> np.ndarray:
    d = np.asarray(diff, np.float64).ravel()
    if not np.all(np.isfinite(d)):
        raise ValueError("paired test: the differences contain NaN or inf")
    return d


def _degenerate(d: np.ndarray, alternative: str) -> float | None:
    """p-value when d has no variance (e.g. both sides flat): the evidence is the sign of the mean."""
    if len(d) >= 2 and float(np.ptp(d)) > 0:
        return None
    m = float(d.mean()) if len(d) else 0.0
    better = m > 0 if alternative == "greater" else m < 0
    return 0.0 if better and len(d) >= 2 else 1.0


def newey_west_lags(n: int, horizon: int = 1) -> int:
    """The lag rule: max(horizon - 1, ceil(n ** (1/3))) -- statsmodels' default for the DM test,
    which grows with the sample as consistency requires (n = 1000 -> 10 lags). `horizon` is the
    number of decisions an outcome overlaps (an h-bar label overlaps h - 1 neighbours)."""
    return int(max(horizon - 1, math.ceil(max(n, 1) ** (1.0 / 3.0))))


def diebold_mariano(
    diff: np.ndarray,
    *,
    alternative: Literal["greater", "less"] = "greater",
    lags: int | None = None,
    horizon: int = 1,
) -> PairedTest:
    """One-sided Diebold-Mariano test on per-decision differences d (candidate - champion net
    returns): H1 "greater" is E[d] > 0. Statistic: mean(d) / sqrt(LRV / T) with the Bartlett-kernel
    Newey-West long-run variance at `lags` (default `newey_west_lags`), scaled by the
    Harvey-Leybourne-Newbold factor sqrt((T + 1 - 2h + h(h - 1) / T) / T) and referred to Student's t
    with T - 1 degrees of freedom. Computed by statsmodels (>= 0.15)."""
    from scipy import stats as sps
    from statsmodels.tsa.stattools import diebold_mariano_test

    d = _diff(diff)
    n = len(d)
    lags = newey_west_lags(n, horizon) if lags is None else int(lags)
    p = _degenerate(d, alternative)
    if p is not None:
        return PairedTest(
            method="dm_hln",
            alternative=alternative,
            statistic=0.0,
            p_value=p,
            mean=float(np.mean(d)) if n else 0.0,
            n=n,
            lags=lags,
        )
    zero = np.zeros(n)
    # The loss criterion is the identity, so statsmodels' loss differential is d itself.
    res = diebold_mariano_test(
        zero, d, zero, criterion=lambda _y, f: f, lags=lags, harvey_adj=True, horizon=horizon
    )
    stat = float(res.statistic)
    p = float(sps.t.sf(stat, n - 1)) if alternative == "greater" else float(sps.t.cdf(stat, n - 1))
    return PairedTest(
        method="dm_hln",
        alternative=alternative,
        statistic=stat,
        p_value=p,
        mean=float(d.mean()),
        n=n,
        lags=lags,
    )


def optimal_block(diff: np.ndarray, method: Literal["stationary", "circular"] = "stationary") -> float:
    """Politis-White (2004) optimal block length with the Patton-Politis-White (2009) correction, as
    computed by arch; at least 1."""
    from arch.bootstrap import optimal_block_length

    d = _diff(diff)
    if len(d) < 8 or not float(np.ptp(d)) > 0:
        return 1.0
    b = float(optimal_block_length(d)[method].iloc[0])
    return max(1.0, b) if math.isfinite(b) else 1.0


def bootstrap_pvalue(
    diff: np.ndarray,
    *,
    alternative: Literal["greater", "less"] = "greater",
    method: Literal["stationary", "circular"] = "stationary",
    reps: int = 999,
    block: float | None = None,
    seed: int | np.random.Generator | None = 0,
) -> PairedTest:
    """Paired block bootstrap p-value for the mean difference: the differences are centred (so H0
    holds in the resampling world), resampled `reps` times with arch's StationaryBootstrap or
    CircularBlockBootstrap (mean block length `block`, default `optimal_block`), and
    p = (1 + #{mean* >= mean(d)}) / (reps + 1) for "greater". Resampling whole decisions keeps the
    champion/candidate pairing; blocks keep the serial dependence."""
    from arch.bootstrap import CircularBlockBootstrap, StationaryBootstrap

    d = _diff(diff)
    n = len(d)
    b = optimal_block(d, method) if block is None else max(1.0, float(block))
    p = _degenerate(d, alternative)
    if p is not None:
        return PairedTest(
            method=f"{method}_bootstrap",
            alternative=alternative,
            statistic=float(np.mean(d)) if n else 0.0,
            p_value=p,
            mean=float(np.mean(d)) if n else 0.0,
            n=n,
            block=b,
            reps=0,
        )
    m = float(d.mean())
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    cls = StationaryBootstrap if method == "stationary" else CircularBlockBootstrap
    bs = cls(max(1, int(round(b))), d - m, seed=rng)
    means = bs.apply(np.mean, reps).ravel()
    hits = int(np.sum(means >= m)) if alternative == "greater" else int(np.sum(means <= m))
    return PairedTest(
        method=f"{method}_bootstrap",
        alternative=alternative,
        statistic=m,
        p_value=(1 + hits) / (reps + 1),
        mean=m,
        n=n,
        block=b,
        reps=int(reps),
    )


# --- overfitting across trials ----------------------------------------------------------------------
class PBOResult(msgspec.Struct, frozen=True, kw_only=True):
    """`pbo`: fraction of the C(S, S/2) in-sample/out-of-sample splits where the trial best in sample
    ranks at or below the median out of sample (logit <= 0); `p_oos_loss`: fraction where it loses
    out of sample (OOS Sharpe < 0); `logits` per split; `slope`: least-squares slope of OOS on IS
    Sharpe of the selected trial (performance degradation)."""

    pbo: float
    p_oos_loss: float
    n_splits: int
    n_trials: int
    n_blocks: int
    slope: float
    logits: list[float]


def _block_sharpe(s: np.ndarray, q: np.ndarray, c: np.ndarray) -> np.ndarray:
    mean = s / c
    var = np.maximum(q - s * s / c, 0.0) / np.maximum(c - 1, 1)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / sd, 0.0)


def pbo_cscv(returns: np.ndarray, n_blocks: int = 16) -> PBOResult:
    """Probability of backtest overfitting by CSCV (Bailey et al. 2017).

    `returns` is T x N: per-period (e.g. per-decision) net returns of N trials over the same T
    periods. Rows are cut into `n_blocks` (S, even) contiguous blocks; for each of the C(S, S/2)
    ways to pick half the blocks as in-sample (IS), the trial with the best IS Sharpe is found and
    its out-of-sample (OOS, the other half) Sharpe ranked among all N trials: relative rank
    w = rank / (N + 1) (rank 1 = worst, ties averaged), logit = ln(w / (1 - w)). PBO is the
    fraction of splits with logit <= 0. Sharpe is computed from per-block sums, so all 12,870 splits
    at S = 16 take a few matrix products."""
    m = np.asarray(returns, np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError("pbo_cscv: returns must be a T x N matrix with N >= 2 trials")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError("pbo_cscv: n_blocks must be even and >= 2")
    t, n = m.shape
    if t < 2 * n_blocks:
        raise ValueError(f"pbo_cscv: {t} periods are too few for {n_blocks} blocks")
    if not np.all(np.isfinite(m)):
        raise ValueError("pbo_cscv: returns contain NaN or inf")
    blocks = np.array_split(np.arange(t), n_blocks)
    bs = np.stack([m[b].sum(axis=0) for b in blocks])  # S x N
    bq = np.stack([(m[b] ** 2).sum(axis=0) for b in blocks])
    bc = np.array([len(b) for b in blocks], np.float64)
    combos = np.array(list(combinations(range(n_blocks), n_blocks // 2)))
    sel = np.zeros((len(combos), n_blocks))
    sel[np.arange(len(combos))[:, None], combos] = 1.0
    is_s, is_q, is_c = sel @ bs, sel @ bq, (sel @ bc)[:, None]
    oos_s, oos_q, oos_c = bs.sum(0) - is_s, bq.sum(0) - is_q, bc.sum() - is_c
    sr_is = _block_sharpe(is_s, is_q, is_c)
    sr_oos = _block_sharpe(oos_s, oos_q, oos_c)
    best = np.argmax(sr_is, axis=1)
    rows = np.arange(len(combos))
    star = sr_oos[rows, best][:, None]
    below = (sr_oos < star).sum(axis=1)
    ties = (sr_oos == star).sum(axis=1) - 1  # other trials equal to the selected one
    rank = 1.0 + below + 0.5 * ties
    w = rank / (n + 1.0)
    logits = np.log(w / (1.0 - w))
    x, y = sr_is[rows, best], star[:, 0]
    slope = float(np.polyfit(x, y, 1)[0]) if float(np.ptp(x)) > 0 else 0.0
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        p_oos_loss=float(np.mean(y < 0)),
        n_splits=len(combos),
        n_trials=n,
        n_blocks=n_blocks,
        slope=slope,
        logits=[float(v) for v in logits],
    )


class MCSResult(msgspec.Struct, frozen=True, kw_only=True):
    included: list[int]
    excluded: list[int]
    p_values: list[float]  # per model, in column order


def model_confidence_set(
    losses: np.ndarray,
    size: float = 0.10,
    *,
    reps: int = 1000,
    block: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> MCSResult:
    """Hansen-Lunde-Nason model confidence set over the columns of `losses` (T x M, lower is better;
    pass -net returns), with arch's MCS (range statistic, stationary bootstrap). `included` are the
    columns not rejected at level `size`."""
    from arch.bootstrap import MCS

    x = np.asarray(losses, np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("model_confidence_set: losses must be T x M with M >= 2")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    mcs = MCS(x, size, reps=reps, block_size=block, method="R", bootstrap="stationary", seed=rng)
    mcs.compute()
    pv = mcs.pvalues["Pvalue"]
    return MCSResult(
        included=sorted(int(i) for i in mcs.included),
        excluded=sorted(int(i) for i in mcs.excluded),
        p_values=[float(pv.loc[i]) for i in range(x.shape[1])],
    )
