"""A synthetic archive (Binance layout: klines + funding) with a planted signal that decays at a
known horizon, for the engine path of `kaizen exit eval`.

Events arrive at random bars (rate `event_rate` per symbol): the event bar itself jumps by
z * jump on `volume_spike` times the usual volume (visible to the features: the signal ensemble
learns to follow it), the price then drifts
z * mu per bar for `horizon` bars and gives back z * reversal per bar for the next `horizon` bars.
The best causal exit is at `horizon` bars after the entry fill; holding on loses part of the gain.
The events are written beside the data: DIR/truth/events.csv (symbol, event bar open time, side).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

H_MS = 3_600_000
T0 = 1_577_836_800_000  # 2020-01-01
# realistic price levels: the venue rounds fills to the symbol's tick (0.1 on BTCUSDT)
PRICE0 = {"BTCUSDT": 30_000.0, "ETHUSDT": 2_000.0, "SOLUSDT": 100.0, "BNBUSDT": 300.0}


def write_planted(
    root: Path,
    seed: int,
    n_bars: int = 6000,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    horizon: int = 4,
    jump: float = 0.02,
    mu: float = 0.002,
    reversal: float = 0.0015,
    sigma: float = 0.005,
    event_rate: float = 0.02,
    volume_spike: float = 6.0,
) -> Path:
    rng = np.random.default_rng(seed)
    truth = ["symbol,open_time,side"]
    t = T0 + np.arange(n_bars, dtype=np.int64) * H_MS
    for s in symbols:
        r = sigma * rng.standard_normal(n_bars + 2 * horizon + 1)
        ev = np.flatnonzero(rng.random(n_bars) < event_rate)
        z = rng.choice([-1.0, 1.0], len(ev))
        for e, zz in zip(ev, z, strict=True):
            r[e] += zz * jump
            r[e + 1 : e + 1 + horizon] += zz * mu
            r[e + 1 + horizon : e + 1 + 2 * horizon] -= zz * reversal
        r = r[:n_bars]
        truth += [f"{s},{t[e]},{int(zz)}" for e, zz in zip(ev, z, strict=True)]
        p0 = PRICE0[s]
        c = p0 * np.exp(np.cumsum(r))
        o = np.concatenate(([p0], c[:-1]))
        h = np.maximum(o, c) * (1 + 0.3 * sigma * np.abs(rng.standard_normal(n_bars)))
        lo = np.minimum(o, c) * (1 - 0.3 * sigma * np.abs(rng.standard_normal(n_bars)))
        v = rng.lognormal(5, 0.3, n_bars)
        v[ev[ev < n_bars]] *= volume_spike  # the event is loud: volume features see it too
        d = root / "futures" / "um" / "klines" / s / "1h"
        d.mkdir(parents=True, exist_ok=True)
        lines = ["open_time,open,high,low,close,volume,close_time"]
        lines += [
            f"{t[i]},{o[i]:.6f},{h[i]:.6f},{lo[i]:.6f},{c[i]:.6f},{v[i]:.3f},{t[i] + H_MS - 1}"
            for i in range(n_bars)
        ]
        (d / f"{s}-1h.csv.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
        f = root / "futures" / "um" / "fundingRate" / s
        f.mkdir(parents=True, exist_ok=True)
        st = t[(t % (8 * H_MS)) == 0]
        rates = 1e-4 + 5e-5 * rng.standard_normal(len(st))
        fl = ["calc_time,funding_interval_hours,last_funding_rate"]
        fl += [f"{a + 3},8,{b:.8f}" for a, b in zip(st, rates, strict=True)]
        (f / f"{s}-fundingRate.csv.gz").write_bytes(gzip.compress("\n".join(fl).encode()))
    (root / "truth").mkdir(parents=True, exist_ok=True)
    (root / "truth" / "events.csv").write_text("\n".join(truth) + "\n")
    return root
