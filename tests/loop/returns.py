"""Synthetic per-decision net returns with the features real ones have: fat tails (Student-t bar
returns), volatility clustering (GARCH(1,1)), serial correlation (AR bars and/or outcomes that
overlap `horizon` bars, sticky positions) and many exact zeros (flat decisions).

Units: bar returns have unconditional variance 1 (so a cost of 0.1 per unit of turnover is about
taker fee plus half spread on 1h crypto bars). Arrays are n x trials, one column per independent
trial, generated with the time loop vectorised across trials.
"""

from __future__ import annotations

import numpy as np

GARCH = (0.02, 0.08, 0.90)  # omega, alpha, beta: unconditional variance omega / (1 - alpha - beta) = 1


def bars(rng: np.random.Generator, n: int, trials: int, *, df: float = 4.0, phi: float = 0.0):
    """(returns, conditional sd) of GARCH(1,1)-t bars with AR(1) coefficient phi, n x trials."""
    omega, alpha, beta = GARCH
    z = rng.standard_t(df, size=(n, trials)) / np.sqrt(df / (df - 2.0))
    r = np.empty((n, trials))
    sd = np.empty((n, trials))
    h = np.ones(trials)
    eps = np.zeros(trials)
    prev = np.zeros(trials)
    for t in range(n):
        h = omega + alpha * eps * eps + beta * h
        sd[t] = np.sqrt(h)
        eps = sd[t] * z[t]
        prev = phi * prev + eps * np.sqrt(1.0 - phi * phi)
        r[t] = prev
    return r, sd


def positions(rng: np.random.Generator, n: int, trials: int, *, flat: float = 0.5, stay: float = 0.8):
    """Markov positions in {-1, 0, 1}: keep the last one with probability `stay`, else draw afresh
    (0 with probability `flat`, +-1 otherwise); the stationary flat fraction is `flat`."""
    new = rng.choice([-1.0, 0.0, 1.0], p=[(1 - flat) / 2, flat, (1 - flat) / 2], size=(n, trials))
    keep = rng.random((n, trials)) < stay
    p = np.empty((n, trials))
    cur = new[0]
    for t in range(n):
        cur = np.where(keep[t], cur, new[t]) if t else new[0]
        p[t] = cur
    return p


def outcomes(r: np.ndarray, sd: np.ndarray, horizon: int):
    """Per-decision outcome: the sum of the next `horizon` bars (overlapping when horizon > 1), and
    its scale (conditional sd at the decision times sqrt(horizon))."""
    n = r.shape[0] - horizon
    c = np.cumsum(np.vstack([np.zeros((1, r.shape[1])), r]), axis=0)
    return c[1 + horizon : 1 + horizon + n] - c[1 : 1 + n], sd[1 : 1 + n] * np.sqrt(horizon)


def strategy(p: np.ndarray, m: np.ndarray, scale: np.ndarray, *, edge: float, cost: float) -> np.ndarray:
    """Net per-decision return: position x outcome, plus `edge` x scale while in a position (the
    planted skill, in units of the outcome's own sd), minus `cost` per unit of turnover."""
    turnover = np.abs(np.diff(np.vstack([np.zeros((1, p.shape[1])), p]), axis=0))
    return p * m + np.abs(p) * edge * scale - cost * turnover


def scenario(
    rng: np.random.Generator,
    n: int,
    trials: int,
    *,
    edge: float = 0.0,
    champion_edge: float | None = None,
    cost: float = 0.0,
    horizon: int = 1,
    phi: float = 0.0,
    flat: float = 0.5,
    stay: float = 0.8,
    df: float = 4.0,
):
    """(champion, candidate) per-decision net returns on the same decisions of the same market.
    champion_edge None: the champion is flat (all zeros). With edge == champion_edge and equal
    costs the two are exchangeable, so E[candidate - champion] = 0 exactly; with a flat champion,
    edge = 0 and cost = 0 give E[candidate] = 0 exactly (symmetric outcomes, independent positions)."""
    r, sd = bars(rng, n + horizon, trials, df=df, phi=phi)
    m, scale = outcomes(r, sd, horizon)
    cand = strategy(positions(rng, n, trials, flat=flat, stay=stay), m, scale, edge=edge, cost=cost)
    if champion_edge is None:
        champ = np.zeros_like(cand)
    else:
        champ = strategy(
            positions(rng, n, trials, flat=flat, stay=stay), m, scale, edge=champion_edge, cost=cost
        )
    return champ, cand


def population_sharpe(rng: np.random.Generator, **kw) -> tuple[float, float]:
    """Typical per-decision Sharpe of the candidate and of candidate - champion: the median over 250
    independent paths of 4,000 decisions of each path's Sharpe. (With t(4) GARCH bars the 4th
    moment is infinite, so one pooled sample's sd -- and a pooled Sharpe -- swings with the largest
    excursion; the median path is the stable statement.)"""
    champ, cand = scenario(rng, 4000, 250, **kw)
    d = cand - champ
    return float(np.median(cand.mean(0) / cand.std(0))), float(np.median(d.mean(0) / d.std(0)))
