"""A small self-contained synthetic market with a planted, decaying predictable component.

Events arrive at random bars; at an event bar the signal (the Market's `edge`) announces a side z
and the price then drifts z * mu per bar for `horizon` bars, reverses at -z * reversal per bar for
the next `horizon` bars, then nothing: the best exit is at `horizon` bars after entry (the known
horizon), holding on gives back part of the gain. Outside event bars the signal says 0. Funding
settles every 8 h at small random rates. Features come from the real engine (batch_features).
Seeds used while writing the tests: 1 (tuned on); the assertions run on seeds 11 and 12.
"""

from __future__ import annotations

import numpy as np

from kaizen.market.data import Klines, SymbolData
from kaizen.models.features import batch_features
from kaizen.models.trades import Market

H_MS = 3_600_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % (8 * H_MS)  # on the 8 h funding grid


def planted(
    seed: int,
    n_bars: int = 12_000,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    horizon: int = 6,
    mu: float = 0.0015,
    reversal: float = 0.001,
    sigma: float = 0.004,
    event_rate: float = 0.03,
) -> tuple[list[Market], dict]:
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(n_bars, dtype=np.int64) * H_MS
    frames = {}
    edges = {}
    settle_t = t[(t % (8 * H_MS)) == 0]
    settle = {}
    for s in symbols:
        drift = np.zeros(n_bars + 3 * horizon)
        edge = np.zeros(n_bars)
        ev = np.flatnonzero(rng.random(n_bars) < event_rate)
        z = rng.choice([-1.0, 1.0], len(ev))
        for e, zz in zip(ev, z, strict=True):
            # the bar after the event (the entry fill's bar) starts the drift
            drift[e + 1 : e + 1 + horizon] += zz * mu
            drift[e + 1 + horizon : e + 1 + 2 * horizon] -= zz * reversal
            edge[e] = zz * mu * horizon
        r = drift[:n_bars] + sigma * rng.standard_normal(n_bars)
        c = 100.0 * np.exp(np.cumsum(r))
        o = np.concatenate(([100.0], c[:-1]))
        wig = np.abs(rng.standard_normal((2, n_bars))) * sigma * 0.5
        h = np.maximum(o, c) * (1 + wig[0])
        lo = np.minimum(o, c) * (1 - wig[1])
        v = rng.lognormal(3.0, 0.3, n_bars)
        rates = 1e-4 + 5e-5 * rng.standard_normal(len(settle_t))
        settle[s] = rates
        close_t = t + H_MS
        idx = np.searchsorted(settle_t, close_t, "right") - 1
        fund = np.where(idx >= 0, rates[np.maximum(idx, 0)], np.nan)
        k = Klines(s, H_MS, t, o, h, lo, c, v)
        frames[s] = SymbolData(k, fund, np.full(n_bars, np.nan))
        edges[s] = edge
    bf = batch_features(frames, leader=symbols[0])
    markets = []
    for i, s in enumerate(bf.symbols):
        rows = np.flatnonzero(bf.sid == i)
        k = frames[s].klines
        markets.append(
            Market(s, H_MS, k.open_time, k.open, k.high, k.low, k.close, bf.X[rows], bf.funding[rows],
                   edges[s], settle_t, settle[s])
        )  # fmt: skip
    return markets, {"horizon": horizon, "mu": mu, "reversal": reversal, "sigma": sigma}
