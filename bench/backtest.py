"""Backtest throughput: bar-decisions per second through the full engine on a replay clock.

For each strategy that does not retrain, the same bars (real 1h Binance klines, marks and funding)
go through two paths timed by the same clock in this run:

  full engine   kaizen.backtest.driver.run_job: DataView -> funding, marks, liquidation checks ->
                Engine.on_bar (features, strategy, sizing, 4 lineage records per bar) -> router ->
                in-process venue (the simulator's Exchange) -> equity curve. One process.
  decision core the irreducible part: FeatureEngine.update_sid + strategy.decide on a BarContext,
                nothing else (no lineage, no orders, no accounting) - the floor of any design.

Target: >= 20,000 bar-decisions per second through the full engine (all non-retraining strategies
together). Usage: python bench/backtest.py [--data DIR] [--start 2022-01-01] [--end 2025-01-01]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 20_000


def ms(day: str) -> int:
    return int(dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp() * 1000)


def core_only(ds, cfg, strategy, start_ms: int) -> tuple[int, float]:
    """Features + strategy.decide per bar, in the engine's order (leader first at each close)."""
    import numpy as np

    from kaizen.engine.strategy import BarContext, Costs
    from kaizen.ext.features import FeatureEngine
    from kaizen.models.features import FEATURE_NAMES

    iv = next(iter(ds.symbols.values())).klines.interval_ms
    syms = sorted(ds.symbols, key=lambda s: 0 if s == cfg.models.leader else 1)
    fe = FeatureEngine(syms, leader=cfg.models.leader, interval_ms=iv)
    ctxs = {}
    for s in syms:
        sid = fe.symbol_index(s)
        c = BarContext(s, sid, FEATURE_NAMES, Costs(), 24.0)
        c.features = fe.out_view(sid)
        c.budget = 2500.0
        ctxs[s] = c
    rows = []
    for s in syms:
        d = ds.symbols[s]
        k = d.klines
        for i in range(len(k)):
            rows.append((int(k.open_time[i]), syms.index(s), s, float(k.open[i]), float(k.high[i]), float(k.low[i]),
                         float(k.close[i]), float(k.volume[i]), float(d.funding[i]), float(d.mark_close[i])))  # fmt: skip
    rows.sort(key=lambda r: (r[0], r[1]))
    n = 0
    t0 = time.perf_counter()
    for t, _, s, o, h, lo, c, v, f, m in rows:
        ctx = ctxs[s]
        fe.update_sid(ctx.sid, t, o, h, lo, c, v, f, m)
        if t + iv <= start_ms:
            continue
        ctx.close = c
        ctx.ts_ns = (t + iv) * 1_000_000
        ctx.vol = float(ctx.features[6])
        strategy.decide(ctx)
        n += 1
    _ = np
    return n, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--start", default="2022-01-01")
    ap.add_argument("--end", default="2025-01-01")
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT")
    args = ap.parse_args()

    from kaizen.backtest.cli import default_config
    from kaizen.backtest.driver import Job, costs_of, run_job
    from kaizen.backtest.training import train_signal_model
    from kaizen.engine.strategies import BaselineMomentum, BuyAndHold, Flat
    from kaizen.engine.strategies.ensemble import EnsembleStrategy, load_signal_model
    from kaizen.market.data import load_dataset
    from kaizen.market.view import DataView

    cfg = default_config()
    syms = args.symbols.split(",")
    start, end = ms(args.start), ms(args.end)
    ds = load_dataset(args.data, syms, "1h", end_ms=end)
    out = Path(tempfile.mkdtemp(prefix="kaizen-bench-bt-"))
    view = DataView(ds, now_ms=start)
    mdir, _ = train_signal_model(
        view.dataset(until_ms=start, since_ms=start - 730 * 86_400_000), cfg, costs_of(cfg), out / "models"
    )
    model = load_signal_model(mdir)
    kinds = {
        "flat": (lambda: Flat(), "flat"),
        "buy_and_hold": (lambda: BuyAndHold(), "buy_and_hold"),
        "baseline_momentum": (lambda: BaselineMomentum(cfg.strategy), "baseline_momentum"),
        "snapshot (ensemble)": (lambda: EnsembleStrategy(model, cfg.models.horizon_bars, name="snapshot"), "ensemble"),
    }
    print(f"backtest throughput: {', '.join(syms)} 1h, {args.start} .. {args.end}; one process, this run")
    print(f"{'strategy':<22} {'full engine dec/s':>18} {'decisions':>10} {'fills':>7} {'core-only dec/s':>16} {'engine/core':>12}")
    total_n = total_t = 0.0
    for name, (make, kind) in kinds.items():
        job = Job(name=name.split()[0], kind=kind, cfg=cfg, data_dir=args.data, symbols=syms, start_ms=start,
                  end_ms=end, out_dir=str(out), model_dir=str(mdir))  # fmt: skip
        t0 = time.perf_counter()
        res = run_job(job, ds=ds, strategy_factory=lambda v, make=make: make())
        el = time.perf_counter() - t0
        n_core, t_core = core_only(ds, cfg, make(), start)
        rate, core = res.bar_decisions / el, n_core / t_core
        total_n += res.bar_decisions
        total_t += el
        print(f"{name:<22} {rate:>18,.0f} {res.bar_decisions:>10,} {int(res.summary['trades']):>7,} {core:>16,.0f} "
              f"{rate / core:>11.2f}x")  # fmt: skip
    agg = total_n / total_t
    print(f"all of them           {agg:>18,.0f} bar-decisions/s (includes start-up, lineage flush, final report)")
    print(f"target >= {TARGET:,} bar-decisions/s through the full engine: {'PASS' if agg >= TARGET else 'FAIL'} ({agg:,.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
