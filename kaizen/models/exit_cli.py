"""`kaizen exit eval`: the exit-rule table (learned exit vs baselines vs the hindsight oracle).

OFFLINE PATH: until the backtest engine runs exit rules (`[exit] rule` as a config choice), this
command runs kaizen.models.exit_eval — the same rules through their `on_bar` on the same simulated
trades, honest fills (next open + half spread + slippage, taker fees, funding at the real
settlement times). The engine path must later agree with it on the same entries.

Writes OUT/exits.json (the fixed shape), OUT/exits_detail.json (folds, chosen margins, oracle
shares, checks) and OUT/exit_model/ (the learned exit refitted on every trade, for `[exit]
model_dir`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kaizen.errors import ConfigError, DataError, KaizenError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exit", help="exit rules: evaluate the learned exit against the baselines")
    esub = p.add_subparsers(dest="exit_command", metavar="ACTION")
    e = esub.add_parser(
        "eval",
        help="walk-forward table of every exit rule on the signal's trades (offline evaluator)",
        description="Train the signal ensemble and the exit model walk-forward, run every exit rule "
        "(learned, baselines, hindsight oracle) on the same out-of-sample trades with honest fills, "
        "print the table and write OUT/exits.json. Offline path: the backtest engine will run the "
        "same rules through [exit] rule.",
    )
    e.add_argument("--data", required=True, help="data directory laid out like Binance's archive")
    e.add_argument("--config", help="TOML config (symbols, [models], [fees], [exit])")
    e.add_argument("--start", help="first day of the out-of-sample span YYYY-MM-DD (UTC), inclusive")
    e.add_argument("--end", help="last day YYYY-MM-DD (UTC), exclusive; no data at or after it is read")
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument(
        "--backend", default="auto", choices=("auto", "compiled", "interp"),
        help="how the exit model is served (compiled C by default; interp without a compiler)",
    )  # fmt: skip
    e.set_defaults(func=cmd_eval)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def cmd_eval(args: argparse.Namespace) -> int:
    from kaizen import config as kconfig
    from kaizen.engine.strategy import Costs
    from kaizen.market.data import interval_ms, load_dataset, parse_date_ms
    from kaizen.models import ensemble
    from kaizen.models import exit as exit_model
    from kaizen.models.edge import entry_side
    from kaizen.models.exit_eval import evaluate, format_table, signal_history, verdict
    from kaizen.models.trades import make_trades
    from kaizen.progress import Progress

    cfg = kconfig.load(args.config) if args.config else kconfig.Config()
    mc, xc = cfg.models, cfg.exit
    src = args.config or "<defaults>"
    for key in ("horizon_bars", "folds", "trees", "max_depth", "meta_trees", "threads"):
        if getattr(mc, key) < 1:
            raise ConfigError(f"{src}: key 'models.{key}' must be >= 1, got {getattr(mc, key)!r}")
    iv = interval_ms(mc.interval)
    start = parse_date_ms(args.start, "--start")
    end = parse_date_ms(args.end, "--end")
    if start is not None and end is not None and end <= start:
        raise KaizenError(f"--end {args.end} is not after --start {args.start}")
    data = Path(args.data)
    if not data.is_dir():
        raise DataError(f"{data}: data directory not found")
    if args.config:
        symbols = list(cfg.symbols)
    else:
        symbols = [
            s for s in kconfig.SUPPORTED_SYMBOLS if (data / "futures/um/klines" / s / mc.interval).is_dir()
        ]
        if not symbols:
            raise DataError(f"{data}: no futures/um/klines/SYMBOL/{mc.interval}/ folders")
    t0 = time.monotonic()
    # every bar before --end: the signal and exit models train walk-forward on the history
    ds = load_dataset(data, symbols, mc.interval, None, end)
    for line in ds.report:
        print(f"data: {line}", file=sys.stderr)
    costs = Costs(taker_fee=cfg.fees.taker, maker_fee=cfg.fees.maker)
    tp = ensemble.TrainParams(
        folds=mc.folds, embargo_bars=mc.embargo_bars, horizon_bars=mc.horizon_bars, interval_ms=iv,
        trees=mc.trees, max_depth=mc.max_depth, learning_rate=mc.learning_rate, meta_trees=mc.meta_trees,
        threads=mc.threads,
    )  # fmt: skip
    groups = 1 if mc.pooled else len(ds.symbols)
    steps = groups * ensemble.n_steps(tp, 6) + 1 + xc.folds * 2 + 3
    bar = Progress(steps, label="exit eval")
    try:
        hist = signal_history(
            data, ds, mc.horizon_bars, costs, tp, leader=mc.leader, pooled=mc.pooled,
            edge_refit_days=xc.edge_refit_days, progress=lambda note: bar.advance(1, note),
        )  # fmt: skip
        markets = hist.markets
        hold_hours = mc.horizon_bars * iv / 3_600_000
        sides = [entry_side(m.edge, costs, m.funding_rate, hold_hours)[0] for m in markets]
        trades = make_trades(markets, sides, costs, xc.max_hold_bars, None, end)
        if len(trades) == 0:
            raise DataError("the signal opened no trades on this data (its edge never cleared the costs)")
        last = int(max(m.close_time[-1] for m in markets))
        end_ms = end if end is not None else last
        if start is None:  # the last two thirds of the span with trades
            t_first = int(trades.t_entry.min())
            start = t_first + (end_ms - t_first) // 3
            start -= start % 86_400_000
        params = exit_model.ExitParams(
            horizon_bars=mc.horizon_bars, max_hold_bars=xc.max_hold_bars, folds=xc.folds,
            embargo_bars=xc.embargo_bars, interval_ms=iv, trees=xc.trees, max_depth=xc.max_depth,
            learning_rate=xc.learning_rate, threads=mc.threads, hard_stop_vol=xc.hard_stop_vol,
        )  # fmt: skip
        n_test = int(((trades.t_entry >= start) & (trades.t_entry < end_ms)).sum())
        if n_test == 0:
            raise DataError("no trades in the out-of-sample span: the signal never cleared the costs there")
        res = evaluate(
            markets, trades, costs, params, start, end_ms, backend=args.backend,
            progress=lambda note: bar.advance(1, note),
        )  # fmt: skip
        # the model to deploy: refitted on every row known by the end, its margin chosen the same way
        sel, fit = exit_model.fit_selected(res.ex, trades, params, end_ms)
        if fit is None:
            raise DataError("too few exit training rows to fit the model to deploy")
        booster, rows = fit.booster, fit.rows
        info = {
            "data": {"dir": str(data), "symbols": list(ds.symbols), "interval": mc.interval,
                     "end": res.detail["end"], "trades": int(len(trades)), "rows": int(len(rows))},
            "signal": {"horizon_bars": mc.horizon_bars, "folds": mc.folds, "pooled": mc.pooled,
                       "edge_refit_days": xc.edge_refit_days, "oof_rows": hist.oof_rows},
        }  # fmt: skip
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        version = exit_model.save(
            booster, out / "exit_model", exit_model.manifest_for(params, sel, costs, info)
        )
        bar.advance(1, "final exit model")
    finally:
        bar.close()
    res.detail["deployed_model"] = {
        "dir": str(out / "exit_model"),
        "version": version[:16],
        "kind": sel.kind,
        "margin": sel.margin,
    }
    res.detail["trades_before_start"] = int((trades.t_entry < start).sum())
    res.detail["offline_path"] = True
    (out / "exits.json").write_text(json.dumps(_clean(res.table), indent=2, allow_nan=False))
    (out / "exits_detail.json").write_text(json.dumps(_clean(res.detail), indent=2, allow_nan=False))
    print(format_table(res.table))
    print(verdict(res.table))
    print(
        f"offline evaluator (kaizen.models.exit_eval): {res.detail['trades']} trades "
        f"{res.detail['start']}..{res.detail['end']}, {res.detail['trials']} trials; "
        f"exit model {out / 'exit_model'} ({version[:16]}); {out / 'exits.json'}; {time.monotonic() - t0:.1f}s"
    )
    return 0


def _clean(x):
    """JSON-ready: numpy scalars to Python, non-finite floats to null."""
    import math

    import numpy as np

    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
