"""Bandit experiments with known reward distributions: the scenarios the tests and bench/ share.

Rewards are Gaussian, reward = mu[t, arm] + sigma * z_t (bps). Regret is the pseudo-regret against
the oracle that plays the best arm of every step, sum_t (max_k mu[t, k] - mu[t, a_t]): the
expectation of the realised regret given the choices, so its noise is only the policy's.
`flat` arms (portfolio built with flat=True) earn exactly 0 and are never updated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Run:
    choices: np.ndarray  # (T,) arm index per decision
    regret: np.ndarray  # (T,) cumulative pseudo-regret after each decision
    best: np.ndarray  # (T,) the oracle's arm per decision

    def share(self, arm: int | np.ndarray, start: int = 0, stop: int | None = None) -> float:
        """Fraction of decisions in [start, stop) that went to `arm` (or to the oracle's arm per step)."""
        c = self.choices[start:stop]
        target = arm[start:stop] if isinstance(arm, np.ndarray) else arm
        return float(np.mean(c == target)) if len(c) else math.nan


def run(portfolio, mu: np.ndarray, sigma: float | np.ndarray, seed: int) -> Run:
    """Play `portfolio` for len(mu) decisions; mu is (T, K) or (K,) for stationary arms."""
    mu = np.asarray(mu, dtype=np.float64)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (mu.shape[-1],))
    if mu.ndim == 1:
        raise ValueError("pass mu as (T, K): np.tile(mu, (T, 1)) for stationary arms")
    T, K = mu.shape
    if portfolio.n_variants != K:
        raise ValueError(f"portfolio has {portfolio.n_variants} variants, mu has {K} arms")
    flat = [portfolio.is_flat(k) for k in range(K)]
    mu = mu.copy()
    mu[:, flat] = 0.0
    z = np.random.default_rng(seed).standard_normal(T)
    best = np.argmax(mu, axis=1)
    top = mu[np.arange(T), best]
    choices = np.empty(T, dtype=np.int64)
    gaps = np.empty(T)
    mu_l, z_l, sig_l = mu.tolist(), z.tolist(), sig.tolist()
    choose, update = portfolio.choose, portfolio.update
    for t in range(T):
        a = choose()
        choices[t] = a
        m = mu_l[t][a]
        gaps[t] = m
        if not flat[a]:
            update(a, m + sig_l[a] * z_l[t])
    return Run(choices=choices, regret=np.cumsum(top - gaps), best=best)


def piecewise_means(T: int, levels: np.ndarray, changes: int) -> np.ndarray:
    """(T, K) means: `changes` abrupt changes at t_j = j * T // (changes + 1); at every change the
    levels rotate by one arm, so the best arm moves to a different arm each time."""
    levels = np.asarray(levels, dtype=np.float64)
    K = len(levels)
    mu = np.empty((T, K))
    bounds = [j * T // (changes + 1) for j in range(changes + 2)]
    for j in range(changes + 1):
        mu[bounds[j] : bounds[j + 1]] = np.roll(levels, j)
    return mu


def change_points(T: int, changes: int) -> list[int]:
    return [j * T // (changes + 1) for j in range(1, changes + 1)]


def tuned_discount(T: int, changes: int, c: float = 0.1) -> float:
    """gamma_T = 1 - c sqrt(B_T / T): with this rate discounted Thompson sampling's dynamic regret
    is O~(sqrt(T B_T)) for B_T abrupt changes (Qi, Wang and Zhu 2023, arXiv 2305.10718; Raj and
    Kalyani 2017). The constant c does not change the rate but sets where the asymptotic regime
    starts: the memory 1/(1 - gamma) must be long enough to tell the arms apart (bench/bandit_regret.py
    prints the slope for several c)."""
    return 1.0 - c * math.sqrt(max(changes, 1) / T)


def loglog_slope(T: np.ndarray, regret: np.ndarray) -> float:
    """Least-squares slope of log(regret) on log(T)."""
    return float(np.polyfit(np.log(np.asarray(T, float)), np.log(np.asarray(regret, float)), 1)[0])


# The regret sweep used by bench/bandit_regret.py and tests/policy (short T in the default suite).
LEVELS = np.array([0.0, -50.0, -75.0, -100.0, -150.0])  # bps; the best arm leads by 0.5 sigma
SIGMA = 100.0
CHANGES = 4


def regret_sweep(
    factory,
    Ts,
    reps: int,
    seed0: int,
    *,
    changes: int = CHANGES,
    discount: float | None = None,
    c: float = 0.1,
) -> dict:
    """Mean final dynamic regret per horizon T over `reps` seeds (LEVELS rotating at `changes`
    evenly spaced steps, Gaussian noise SIGMA).

    factory(K, discount, seed) builds a portfolio. discount=None tunes it per T
    (tuned_discount(T, changes, c)); a float keeps it fixed. Returns {"T", "regret_mean", "regret_se", "discount", "curves"} where
    curves[T] is the mean cumulative regret curve (length T)."""
    K = len(LEVELS)
    out = {"T": [], "regret_mean": [], "regret_se": [], "discount": [], "curves": {}}
    for T in Ts:
        g = tuned_discount(T, changes, c) if discount is None else float(discount)
        mu = piecewise_means(T, LEVELS, changes)
        finals, curve = [], np.zeros(T)
        for r in range(reps):
            seed = seed0 + 1000 * r + T
            res = run(factory(K, g, seed), mu, SIGMA, seed + 7)
            finals.append(res.regret[-1])
            curve += res.regret
        out["T"].append(T)
        out["regret_mean"].append(float(np.mean(finals)))
        out["regret_se"].append(float(np.std(finals, ddof=1) / math.sqrt(reps)) if reps > 1 else math.nan)
        out["discount"].append(g)
        out["curves"][T] = curve / reps
    return out


def write_regret_csv(path, sweeps: dict[str, dict], curve_points: int = 200) -> None:
    """Two CSVs: `path` (setting, T, discount, regret_mean, regret_se) and `path` with suffix
    `_curves.csv` (setting, T, t, cumulative regret), curves thinned to `curve_points` per T."""
    from pathlib import Path

    path = Path(path)
    with path.open("w") as f:
        f.write("setting,T,discount,regret_mean,regret_se,regret_per_decision\n")
        for name, sw in sweeps.items():
            for T, g, m, se in zip(sw["T"], sw["discount"], sw["regret_mean"], sw["regret_se"], strict=True):
                f.write(f"{name},{T},{g:.6f},{m:.3f},{se:.3f},{m / T:.5f}\n")
    with path.with_name(path.stem + "_curves.csv").open("w") as f:
        f.write("setting,T,t,regret\n")
        for name, sw in sweeps.items():
            for T, curve in sw["curves"].items():
                idx = np.unique(np.linspace(0, T - 1, curve_points).astype(int))
                for t in idx:
                    f.write(f"{name},{T},{t + 1},{curve[t]:.3f}\n")
