"""`kaizen train` (signal ensemble on historical data) and `kaizen data fetch` (ccxt download)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kaizen.errors import ConfigError, DataError, KaizenError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the signal ensemble (base model per surface + meta) with walk-forward folds",
        description="Train XGBoost base models per feature surface and a meta model on purged, embargoed "
        "walk-forward folds; print out-of-sample metrics and write OUT/metrics.json and the models.",
    )
    p.add_argument("--data", required=True, help="data directory laid out like Binance's archive")
    p.add_argument("--config", help="TOML config (symbols, [models], [fees])")
    p.add_argument("--start", help="first day YYYY-MM-DD (UTC), inclusive")
    p.add_argument("--end", help="last day YYYY-MM-DD (UTC), exclusive")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_train)

    # `kaizen data fetch` lives here; the market domain may already own `kaizen data` (registered
    # first), in which case fetch joins its sub-commands.
    existing = sub.choices.get("data")
    if existing is None:
        d = sub.add_parser("data", help="market data utilities")
        dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
        _register_fetch(dsub)
        d.set_defaults(func=lambda a: (d.print_help(), 2)[1])
    else:
        acts = [a for a in existing._actions if isinstance(a, argparse._SubParsersAction)]
        if acts and "fetch" not in acts[0].choices:
            _register_fetch(acts[0])


def _register_fetch(dsub: argparse._SubParsersAction) -> None:
    f = dsub.add_parser(
        "fetch",
        help="download klines, mark-price klines and funding via ccxt into the archive layout",
    )
    f.add_argument("--out", required=True, help="data directory to write")
    f.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    f.add_argument("--interval", default="1h")
    f.add_argument("--start", required=True, help="YYYY-MM-DD (UTC)")
    f.add_argument("--end", required=True, help="YYYY-MM-DD (UTC), exclusive")
    f.add_argument("--rest-url", default="", help="override the venue REST base URL (e.g. a local mirror)")
    f.set_defaults(func=cmd_fetch)


def _table(folds: list[dict], overall: dict, prior: dict) -> str:
    models = list(overall)
    lines = []
    hdr = f"{'fold':<23} {'model':<15} {'logloss':>8} {'auc':>7} {'ic':>8}"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for f in folds:
        span = f"{f['start']}..{f['end']}"
        for m in models:
            x = f["models"][m]
            lines.append(f"{span:<23} {m:<15} {x['logloss']:8.5f} {x['auc']:7.4f} {x['ic']:8.4f}")
            span = ""
    lines.append("-" * len(hdr))
    for m in models:
        x = overall[m]
        lines.append(f"{'overall':<23} {m:<15} {x['logloss']:8.5f} {x['auc']:7.4f} {x['ic']:8.4f}")
    lines.append(f"{'overall':<23} {'(prior)':<15} {prior['logloss']:8.5f} {'0.5':>7} {'-':>8}")
    return "\n".join(lines)


def verdict(overall: dict, meta: str = "meta") -> str:
    bases = {k: v for k, v in overall.items() if k != meta}
    best_ll = min(bases, key=lambda k: bases[k]["logloss"])
    best_ic = max(bases, key=lambda k: bases[k]["ic"])
    m = overall[meta]
    dll = bases[best_ll]["logloss"] - m["logloss"]
    dic = m["ic"] - bases[best_ic]["ic"]
    return (
        f"meta vs best base: log-loss {m['logloss']:.5f} vs {bases[best_ll]['logloss']:.5f} ({best_ll}) -> "
        f"{'better' if dll > 0 else 'worse'} by {abs(dll):.5f}; IC {m['ic']:.4f} vs {bases[best_ic]['ic']:.4f} "
        f"({best_ic}) -> {'better' if dic > 0 else 'worse'} by {abs(dic):.4f}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from kaizen import config as kconfig
    from kaizen.market.data import interval_ms, load_dataset, parse_date_ms
    from kaizen.models import ensemble
    from kaizen.models.training import build
    from kaizen.progress import Progress

    cfg = kconfig.load(args.config) if args.config else kconfig.Config()
    mc = cfg.models
    src = args.config or "<defaults>"
    for key in ("horizon_bars", "folds", "trees", "max_depth", "meta_trees", "threads"):
        if getattr(mc, key) < 1:
            raise ConfigError(f"{src}: key 'models.{key}' must be >= 1, got {getattr(mc, key)!r}")
    if mc.embargo_bars < 0 or not 0 < mc.learning_rate <= 1:
        raise ConfigError(f"{src}: 'models.embargo_bars' must be >= 0 and 'models.learning_rate' in (0, 1]")
    if not mc.pooled:
        raise ConfigError(f"{src}: 'models.pooled = false' (per-symbol models) is not supported yet")
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
    else:  # every supported symbol present in the data directory
        symbols = [
            s for s in kconfig.SUPPORTED_SYMBOLS if (data / "futures/um/klines" / s / mc.interval).is_dir()
        ]
        if not symbols:
            raise DataError(f"{data}: no futures/um/klines/SYMBOL/{mc.interval}/ folders")
    t0 = time.monotonic()
    ds = load_dataset(data, symbols, mc.interval, start, end)
    for line in ds.report:
        print(f"data: {line}", file=sys.stderr)
    ts = build(ds, mc.horizon_bars, cfg.fees.taker, leader=mc.leader)
    params = ensemble.TrainParams(
        folds=mc.folds, embargo_bars=mc.embargo_bars, horizon_bars=mc.horizon_bars, interval_ms=iv,
        trees=mc.trees, max_depth=mc.max_depth, learning_rate=mc.learning_rate, meta_trees=mc.meta_trees,
        threads=mc.threads,
    )  # fmt: skip
    print(
        f"train: {len(ts.y)} labelled rows, {', '.join(ds.symbols)}, base rate {ts.y.mean():.4f}, "
        f"horizon {mc.horizon_bars} x {mc.interval}, cost {2 * cfg.fees.taker:.4%} + funding",
        file=sys.stderr,
    )
    from kaizen.models.features import surfaces_of

    nb = sum(
        1
        for s, idx in surfaces_of(list(ensemble.FEATURE_NAMES)).items()
        if not (ts.X[:, idx] != ts.X[:, idx]).all()
    )
    bar = Progress(ensemble.n_steps(params, nb), label="train")
    try:
        res = ensemble.train(ts.X, ts.y, ts.ret, ts.t, params, progress=lambda note: bar.advance(1, note))
    finally:
        bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "data": {"dir": str(data), "symbols": list(ds.symbols), "interval": mc.interval,
                 "start": ensemble._date(int(ts.t.min())), "end": ensemble._date(int(ts.t.max())),
                 "report": ds.report},
        "label": {"kind": "net_forward_return", "horizon_bars": mc.horizon_bars, "fee_per_side": cfg.fees.taker,
                  "funding": "latest settled rate * hold / 8h"},
        "params": {"base": params.base_params(), "base_rounds": params.trees, "meta": params.meta_params(),
                   "meta_rounds": params.meta_trees, "folds": params.folds, "embargo_bars": params.embargo_bars,
                   "pooled": True, "leader": mc.leader},
    }  # fmt: skip
    h = ensemble.save(res, out / "models", info)
    metrics = {"meta": ensemble.META, "overall": res.overall, "folds": res.folds}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(_table(res.folds, res.overall, res.prior))
    print(verdict(res.overall))
    if res.skipped:
        print("skipped surfaces: " + "; ".join(f"{k}: {v}" for k, v in res.skipped.items()))
    print(
        f"models: {out / 'models'} (version {h[:16]}); metrics: {out / 'metrics.json'}; "
        f"{time.monotonic() - t0:.1f}s"
    )
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from kaizen.models.fetch import fetch

    fetch(args)
    return 0
