"""Write a small synthetic market in Binance's archive layout (klines + funding), with momentum
planted in the returns so the signal ensemble finds an edge that clears the costs."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

H_MS = 3_600_000
T0 = 1_577_836_800_000  # 2020-01-01


def write_archive(
    root: Path, seed: int, n_bars: int = 7000, symbols=("BTCUSDT", "ETHUSDT"), phi: float = 0.3
):
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(n_bars, dtype=np.int64) * H_MS
    for s in symbols:
        eps = 0.008 * rng.standard_normal(n_bars)
        r = np.empty(n_bars)
        r[0] = eps[0]
        for i in range(1, n_bars):
            r[i] = phi * r[i - 1] + eps[i]
        c = 100.0 * np.exp(np.cumsum(r))
        o = np.concatenate(([100.0], c[:-1]))
        h = np.maximum(o, c) * (1 + 0.002 * np.abs(rng.standard_normal(n_bars)))
        lo = np.minimum(o, c) * (1 - 0.002 * np.abs(rng.standard_normal(n_bars)))
        v = rng.lognormal(5, 0.3, n_bars)
        d = root / "futures" / "um" / "klines" / s / "1h"
        d.mkdir(parents=True, exist_ok=True)
        lines = ["open_time,open,high,low,close,volume,close_time"]
        for i in range(n_bars):
            lines.append(f"{t[i]},{o[i]:.6f},{h[i]:.6f},{lo[i]:.6f},{c[i]:.6f},{v[i]:.3f},{t[i] + H_MS - 1}")
        (d / f"{s}-1h.csv.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
        f = root / "futures" / "um" / "fundingRate" / s
        f.mkdir(parents=True, exist_ok=True)
        st = t[(t % (8 * H_MS)) == 0]
        rates = 1e-4 + 5e-5 * rng.standard_normal(len(st))
        fl = ["calc_time,funding_interval_hours,last_funding_rate"]
        fl += [f"{a + 3},8,{b:.8f}" for a, b in zip(st, rates, strict=True)]  # a few ms late, as Binance's
        (f / f"{s}-fundingRate.csv.gz").write_bytes(gzip.compress("\n".join(fl).encode()))
    return root
