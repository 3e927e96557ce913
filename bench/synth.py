"""`kaizen data synth` speed: the batch path of the market model against its live path, same run.

Both paths run the same kernel (kaizen.ext.marketmodel) with the same seed and step size:
  batch: MarketProcess.run_bars (nogil loop over bars and sub-steps, mark OHLC recorded in C)
  live:  MarketProcess.step called from Python once per sub-step, mark read per bar (what the
         simulator does per publish tick) - the baseline
plus the whole generator (`generate`: kernel + klines, volume, funding, truth) and `write_archive`
(gzip CSV). Target: 365 days x 4 symbols at 1 h (60 sub-steps of 1 minute per bar) generated and
written in a few seconds (<= 5 s).

Run: python bench/synth.py [--days 365] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kaizen.market.synth import SYMBOLS, SynthParams, generate, write_archive  # noqa: E402
from kaizen.venue.sim.model import MarketModel  # noqa: E402
from kaizen.venue.sim.spec import SPECS  # noqa: E402


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    model = MarketModel.synth()
    vols = [SPECS[s].annual_vol for s in SYMBOLS]
    prices = [SPECS[s].start_price for s in SYMBOLS]
    n, sub = args.days * 24, 60
    dt = 1.0 / sub

    def batch():
        p = model.process(vols, prices, 1)
        arr = [np.empty((4, n)) for _ in range(6)]
        p.run_bars(n, sub, dt, *arr, np.empty((4, n), np.int8), np.empty((4, n), np.int8))
        return arr[3]

    live_days = max(1, args.days // 20)  # the live path is slow: time a slice, scale per bar

    def live():
        p = model.process(vols, prices, 1)
        out = np.empty((4, live_days * 24))
        for b in range(live_days * 24):
            for _ in range(sub):
                p.step(dt)
            for i in range(4):
                out[i, b] = p.index(i) * (1 + p.premium(i))
        return out

    t_batch = _best(batch, args.repeat)
    t_live = _best(live, 1) * n / (live_days * 24)
    params = SynthParams(seed=1, days=args.days)
    t_gen = _best(lambda: generate(params), args.repeat)
    ds, truth = generate(params)
    with tempfile.TemporaryDirectory() as tmp:
        t_write = _best(lambda: write_archive(ds, truth, Path(tmp) / "out"), args.repeat)
    steps = n * sub * 4
    rows = [
        ("kernel, batch run_bars (C loop)", t_batch, steps / t_batch),
        ("kernel, live step per sub-step from Python (baseline)", t_live, steps / t_live),
        ("generate() whole (kernel + klines/volume/funding/truth)", t_gen, None),
        ("write_archive() (gzip CSV + truth)", t_write, None),
    ]
    print(
        f"{args.days} days x 4 symbols at 1h, {sub} sub-steps per bar ({steps:,} symbol-steps); best of {args.repeat}"
    )
    print(f"{'path':<58} {'seconds':>9} {'symbol-steps/s':>16}")
    for name, t, rate in rows:
        print(f"{name:<58} {t:9.3f} {(f'{rate:,.0f}' if rate else '-'):>16}")
    total = t_gen + t_write
    print(f"batch vs live: {t_live / t_batch:.0f}x faster")
    target = 5.0 * args.days / 365
    print(
        f"verdict: generate + write {total:.2f}s for {args.days} days -> {'PASS' if total <= target else 'FAIL'} (target <= {target:.1f}s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
