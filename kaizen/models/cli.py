"""`kaizen train` (signal ensemble on historical data) and `kaizen data fetch` (ccxt download).

`[models] pooled = true` (default) trains one ensemble on every symbol's rows into OUT/models/.
`pooled = false` trains one ensemble per symbol (same folds logic, that symbol's rows only) into
OUT/models/SYMBOL/; metrics.json keeps its shape with MODEL keys "SYMBOL/surface" and
"SYMBOL/meta", and "meta" names the first configured symbol's meta model (e.g. "BTCUSDT/meta").
A fold entry is keyed by its (start, end) span and holds the models of every symbol whose fold
has that span (all of them when the symbols cover the same dates).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kaizen.errors import DataError, KaizenError


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


def compare_table(folds: list[dict], overall: dict) -> str:
    """Out of sample, per fold and overall: the meta model(s) against the best base model (the base
    with the lowest overall log-loss), log-loss and IC, and the meta's difference to it."""
    bases = [k for k in overall if not k.startswith("meta")]
    metas = [k for k in overall if k.startswith("meta")]
    best = min(bases, key=lambda k: overall[k]["logloss"])
    hdr = f"{'fold':<23} {'model':<22} {'logloss':>8} {'ic':>8} {'d logloss':>10} {'d ic':>8}"
    lines = [
        f"meta vs the best base ({best}); d = meta - {best} (d logloss < 0 and d ic > 0: meta better)",
        hdr,
    ]
    lines.append("-" * len(hdr))
    rows = [(f"{f['start']}..{f['end']}", f["models"]) for f in folds] + [("overall", overall)]
    for span, ms in rows:
        b = ms[best]
        lines.append(f"{span:<23} {best + ' (best base)':<22} {b['logloss']:8.5f} {b['ic']:8.4f}")
        for m in metas:
            x = ms[m]
            lines.append(
                f"{'':<23} {m:<22} {x['logloss']:8.5f} {x['ic']:8.4f} {x['logloss'] - b['logloss']:+10.5f} "
                f"{x['ic'] - b['ic']:+8.4f}"
            )
    return "\n".join(lines)


def verdict(overall: dict, meta: str = "meta") -> str:
    bases = {k: v for k, v in overall.items() if not k.startswith("meta")}
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
    import numpy as np

    from kaizen import config as kconfig
    from kaizen.ext.marketmodel import REGIMES
    from kaizen.market.data import interval_ms, load_dataset, parse_date_ms
    from kaizen.models import ensemble
    from kaizen.models.training import build
    from kaizen.progress import Progress

    cfg = kconfig.load(args.config) if args.config else kconfig.Config()
    mc = cfg.models
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
        threads=mc.threads, meta_kind=mc.meta, regime_stacking=mc.regime_stacking,
    )  # fmt: skip
    print(
        f"train: {len(ts.y)} labelled rows, {', '.join(ds.symbols)}, base rate {ts.y.mean():.4f}, "
        f"horizon {mc.horizon_bars} x {mc.interval}, cost {2 * cfg.fees.taker:.4%} + funding",
        file=sys.stderr,
    )
    from kaizen.models.features import surfaces_of

    # pooled: one ensemble on every symbol's rows; per-symbol: one ensemble per symbol (same folds
    # logic on that symbol's rows only), saved under OUT/models/SYMBOL/.
    if mc.pooled:
        groups = [("", np.ones(len(ts.y), bool))]
    else:
        groups = [(s, ts.sid == i) for i, s in enumerate(ts.symbols)]
    surf = surfaces_of(list(ensemble.FEATURE_NAMES))

    def n_bases(rows: np.ndarray) -> int:
        return sum(1 for idx in surf.values() if not np.isnan(ts.X[np.ix_(rows, idx)]).all())

    steps = sum(ensemble.n_steps(params, n_bases(np.flatnonzero(m))) for _, m in groups)
    if mc.regime_stacking:
        steps += params.folds + 3
    bar = Progress(steps, label="train")
    results = []
    regime_oof = regime_final = None
    try:
        if mc.regime_stacking:
            regime_oof, regime_final = _regime_inputs(
                ds, ts, data, params, iv, mc.regime_trees, lambda note: bar.advance(1, note)
            )
        for sym, mask in groups:
            rows = np.flatnonzero(mask)
            tag = f"{sym} " if sym else ""
            try:
                res = ensemble.train(
                    ts.X[rows], ts.y[rows], ts.ret[rows], ts.t[rows], params,
                    progress=lambda note, tag=tag: bar.advance(1, tag + note),
                    regime_oof=None if regime_oof is None else regime_oof[rows],
                    regime_classes=None if regime_oof is None else list(REGIMES),
                )  # fmt: skip
            except DataError as exc:
                if not sym:
                    raise
                raise DataError(f"{sym}: {exc}") from None
            results.append((sym, rows, res))
    finally:
        bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overall: dict = {}
    folds: dict[tuple[str, str], dict] = {}  # (start, end) -> fold entry, models of every symbol
    versions = []
    for sym, rows, res in results:
        pre = f"{sym}/" if sym else ""
        t_rows = ts.t[rows]
        info = {
            "data": {"dir": str(data), "symbols": [sym] if sym else list(ds.symbols), "interval": mc.interval,
                     "start": ensemble._date(int(t_rows.min())), "end": ensemble._date(int(t_rows.max())),
                     "report": ds.report},
            "label": {"kind": "net_forward_return", "horizon_bars": mc.horizon_bars,
                      "fee_per_side": cfg.fees.taker, "funding": "latest settled rate * hold / 8h"},
            "params": {"base": params.base_params(), "base_rounds": params.trees, "meta": params.meta_params(),
                       "meta_rounds": params.meta_trees, "folds": params.folds,
                       "embargo_bars": params.embargo_bars, "pooled": mc.pooled, "leader": mc.leader,
                       "meta_kind": params.meta_kind, "regime_stacking": params.regime_stacking},
        }  # fmt: skip
        mdir = out / "models" / sym if sym else out / "models"
        if regime_final is not None:
            # the detector whose probabilities the meta takes live: saved beside the ensemble
            info["regime_detector"] = {"dir": "regime", "content_hash": regime_final.save(mdir / "regime")}
        versions.append(f"{pre}{ensemble.save(res, mdir, info)[:16]}")
        overall.update({pre + k: v for k, v in res.overall.items()})
        for f in res.folds:
            e = folds.setdefault((f["start"], f["end"]), {"start": f["start"], "end": f["end"], "models": {}})
            e["models"].update({pre + k: v for k, v in f["models"].items()})
        if sym:
            print(f"== {sym} ({len(rows)} rows) ==")
        print(_table(res.folds, res.overall, res.prior))
        print(verdict(res.overall))
        if ensemble.META_PLAIN in res.overall:
            print(
                verdict(res.overall, ensemble.META_PLAIN).replace(
                    "meta vs", "meta without regime inputs vs", 1
                )
            )
        print("meta kind per fold: " + ", ".join(f"{k} {v}" for k, v in res.meta_choice.items()))
        print(compare_table(res.folds, res.overall))
        if res.skipped:
            print("skipped surfaces: " + "; ".join(f"{k}: {v}" for k, v in res.skipped.items()))
    first = results[0][0]
    meta = f"{first}/{ensemble.META}" if first else ensemble.META
    metrics = {"meta": meta, "overall": overall, "folds": sorted(folds.values(), key=lambda e: e["start"])}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(
        f"models: {out / 'models'} (version {', '.join(versions)}); metrics: {out / 'metrics.json'}; "
        f"{time.monotonic() - t0:.1f}s"
    )
    return 0


def _regime_inputs(ds, ts, data: Path, params, iv: int, trees: int, tick):
    """The regime detector's out-of-sample probabilities for every training row (walk-forward on
    the ensemble's folds over all rows), and the detector refitted on everything (saved beside the
    ensemble). Labels: DIR/truth/regimes.csv where it exists, else realized statistics."""
    import numpy as np

    from kaizen.market.synth import read_truth
    from kaizen.models import ensemble, regime

    truth = read_truth(data)
    bf = ts.bf
    X = regime.detector_matrix(bf, iv)
    tick("regime features")
    y = np.full(len(bf.sid), -1, np.int8)
    for i, s in enumerate(bf.symbols):
        rows = np.flatnonzero(bf.sid == i)
        if truth is not None and s in truth:
            tt, tr = truth[s]
            pos = np.minimum(np.searchsorted(tt, bf.open_time[rows]), len(tt) - 1)
            hit = tt[pos] == bf.open_time[rows]
            y[rows[hit]] = tr[pos[hit]]
        else:
            y[rows] = regime.realized_labels(bf.close[rows], iv)
    Xr, yr = X[ts.rows], y[ts.rows]
    folds = ensemble.folds_for(ts.t, params)
    dp = regime.DetectorParams(trees=trees, threads=params.threads)
    P = regime.walk_forward_probs(Xr, yr, ts.t, folds, iv, dp, progress=tick)
    keep = (yr >= 0) & (ts.t >= ts.t.min() + 14 * regime.DAY_MS)
    booster = regime.fit(Xr[keep], yr[keep], dp)
    info = {"labels": "truth" if truth is not None else "realized",
            "train": {"start_ms": int(ts.t.min()), "end_ms": int(ts.t.max()) + iv, "rows": int(keep.sum()),
                      "symbols": list(bf.symbols)}}  # fmt: skip
    final = regime.RegimeModel.from_booster(booster, iv, dp, info)
    tick("regime final")
    return P, final


def cmd_fetch(args: argparse.Namespace) -> int:
    from kaizen.models.fetch import fetch

    fetch(args)
    return 0
