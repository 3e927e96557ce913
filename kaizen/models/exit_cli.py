"""`kaizen exit eval`: the exit-rule table (learned exit vs baselines vs the hindsight oracle),
run through the backtest engine (kaizen.models.exit_engine): walk-forward periods, the same entries
for every rule, one backtest per rule with the rule as the engine's exit layer, trades and net PnL
from the in-process venue's accounting.

Writes OUT/exits.json (the fixed shape), OUT/exits_detail.json (periods, chosen margins, oracle
shares, same-entries and accounting checks) and OUT/exit_model/ (the last period's learned exit,
for `[exit] model_dir`). The offline evaluator (kaizen.models.exit_eval) stays as a research tool.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kaizen.errors import ConfigError, DataError, KaizenError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exit", help="exit rules: evaluate the learned exit against the baselines")
    esub = p.add_subparsers(dest="exit_command", metavar="ACTION")
    e = esub.add_parser(
        "eval",
        help="walk-forward table of every exit rule, each a backtest through the engine on the same entries",
        description="Per walk-forward period, train the signal ensemble and the exit model on the data "
        "before it; run one backtest per exit rule (learned, baselines) through the engine on the same "
        "entries, net of fees, spread, slippage and funding from the venue's accounting; report the "
        "hindsight oracle on those entries; print the table and write OUT/exits.json.",
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
    from kaizen.backtest.driver import costs_of
    from kaizen.market.data import interval_ms, load_dataset, parse_date_ms
    from kaizen.models import exit as exit_model
    from kaizen.models.exit_engine import dump, evaluate
    from kaizen.models.exit_eval import format_table, verdict
    from kaizen.models.exit_rules import baseline_names
    from kaizen.progress import Progress
    from kaizen.venue.sim.spec import SPECS

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
    unknown = [s for s in symbols if s not in SPECS]
    if unknown:
        raise ConfigError(f"{src}: symbols {unknown} have no venue spec")
    t0 = time.monotonic()
    # every bar before --end; each period's models see only what a DataView at its start lets through
    ds = load_dataset(data, symbols, mc.interval, None, end)
    for line in ds.report:
        print(f"data: {line}", file=sys.stderr)
    symbols = [s for s in symbols if s in ds.symbols]
    first = int(min(d.klines.open_time[0] for d in ds.symbols.values()))
    last = int(max(d.klines.open_time[-1] for d in ds.symbols.values())) + iv
    end_ms = end if end is not None else last
    if start is None:  # after one training window of history
        start = first + int(cfg.backtest.train_window_days * 86_400_000)
        start += -start % 86_400_000
    if start >= end_ms:
        raise DataError(f"{data}: no data after --start (the last bar closes {last})")
    costs = costs_of(cfg)
    params = exit_model.ExitParams(
        horizon_bars=mc.horizon_bars, max_hold_bars=xc.max_hold_bars, folds=xc.folds,
        embargo_bars=xc.embargo_bars, interval_ms=iv, trees=xc.trees, max_depth=xc.max_depth,
        learning_rate=xc.learning_rate, threads=mc.threads, hard_stop_vol=xc.hard_stop_vol,
    )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = 2 * xc.folds + len(baseline_names(mc.horizon_bars)) + 1
    bar = Progress(steps, label="exit eval")
    try:
        res = evaluate(
            ds, cfg, costs, params, symbols, start, end_ms, out, backend=args.backend,
            progress=lambda note: bar.advance(1, note), data_dir=str(data),
        )  # fmt: skip
    finally:
        bar.close()
    p = res.periods[-1]
    man = exit_model.manifest_for(params, p.selection, costs, {"period": p.k, "trained_until": p.exit_until})
    version = exit_model.save(p.booster, out / "exit_model", man)
    res.detail["deployed_model"] = {"dir": str(out / "exit_model"), "version": version[:16],
                                    "kind": p.selection.kind, "margin": p.selection.margin}  # fmt: skip
    res.detail["seconds"] = time.monotonic() - t0
    dump(out / "exits.json", res.table)
    dump(out / "exits_detail.json", res.detail)
    print(format_table(res.table))
    print(verdict(res.table))
    d = res.detail
    per = d["net_per_trade_bps_by_period"]
    print(
        "trades per period: "
        + ", ".join(f"{q['start']} {n}" for q, n in zip(d["periods"], per["trades"], strict=True))
        + f"; learned vs {res.table['best_baseline']} by period (bp/trade): "
        + ", ".join(
            f"{a:.1f}/{b:.1f}" if n else "-"
            for a, b, n in zip(per["learned"], per[res.table["best_baseline"]], per["trades"], strict=True)
        )
    )
    print(
        f"engine path: {d['trades']} trades (the same entries for every rule: {d['same_entry_fills']}) "
        f"{d['start']}..{d['end']} in {len(res.periods)} walk-forward periods, {d['trials']} trials; "
        f"{out / 'exits.json'}; {time.monotonic() - t0:.1f}s"
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
