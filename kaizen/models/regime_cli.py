"""`kaizen regime eval` (train on the first part of a data directory, score on the rest) and
`kaizen regime train` (fit on all of it and save the detector). Fixed interface:
`kaizen regime eval --data DIR [--train-days N] [--json]`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regime", help="regime detector: evaluate out of sample, or train and save")
    rsub = p.add_subparsers(dest="regime_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    e = rsub.add_parser(
        "eval",
        help="train the detector on the first part of DIR and score it on the rest",
        description="Train the XGBoost regime detector on the first --train-days of DIR and score it (after "
        "hysteresis) on the rest: against DIR/truth/regimes.csv where it exists (synthetic markets), else "
        "against labels from realized statistics. Prints accuracy, per-class recall, the confusion matrix and "
        "switches per day.",
    )
    _common(e)
    e.add_argument("--train-days", type=float, default=None, help="training span in days (default: 65 %%)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    e.add_argument("--out", default=None, help="also save the detector trained on the first part here")
    e.set_defaults(func=cmd_eval)
    t = rsub.add_parser(
        "train", help="train the detector on all of DIR and save it (detector.json + manifest)"
    )
    _common(t)
    t.add_argument("--out", required=True, help="directory to write the detector to")
    t.set_defaults(func=cmd_train)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data directory in the Binance archive layout")
    p.add_argument("--interval", default="1h", help="bar interval (default 1h)")
    p.add_argument("--symbols", default=None, help="comma-separated (default: every supported symbol in DIR)")
    p.add_argument("--leader", default="BTCUSDT", help="cross-asset leader (default BTCUSDT)")


def _load(args: argparse.Namespace):
    from pathlib import Path

    from kaizen import config as kconfig
    from kaizen.errors import DataError
    from kaizen.market.data import load_dataset
    from kaizen.market.synth import read_truth

    data = Path(args.data)
    if not data.is_dir():
        raise DataError(f"{data}: data directory not found")
    if args.symbols:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    else:
        symbols = [
            s for s in kconfig.SUPPORTED_SYMBOLS if (data / "futures/um/klines" / s / args.interval).is_dir()
        ]
    if not symbols:
        raise DataError(f"{data}: no futures/um/klines/SYMBOL/{args.interval}/ folders")
    ds = load_dataset(data, symbols, args.interval)
    truth = read_truth(data)
    leader = args.leader if args.leader in ds.symbols else next(iter(ds.symbols))
    return ds, truth, leader


def cmd_eval(args: argparse.Namespace) -> int:
    import json
    import sys

    from kaizen.errors import KaizenError
    from kaizen.market.data import interval_ms
    from kaizen.models.regime import evaluate, format_report
    from kaizen.progress import Progress

    ds, truth, leader = _load(args)
    for line in ds.report:
        print(f"data: {line}", file=sys.stderr)
    span = (ds.end_ms + interval_ms(ds.interval) - ds.start_ms) / 86_400_000
    if args.train_days is not None and not 0 < args.train_days < span:
        raise KaizenError(
            f"--train-days must be inside (0, {span:.0f}) for this data, got {args.train_days:g}"
        )
    with Progress(5, label="regime") as bar:
        res = evaluate(ds, truth, args.train_days, leader=leader, progress=lambda note: bar.advance(1, note))
    if args.out:
        res.model.save(args.out)
        res.report["saved"] = str(args.out)
    if args.json:
        print(json.dumps(res.report, sort_keys=True))
    else:
        print(format_report(res.report))
        if args.out:
            print(f"detector: {args.out} (version {res.model.version})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kaizen.models.regime import train_on
    from kaizen.progress import Progress

    ds, truth, leader = _load(args)
    with Progress(4, label="regime") as bar:
        model, rows = train_on(ds, truth, leader=leader, progress=lambda note: bar.advance(1, note))
        model.save(args.out)
    print(
        f"detector: {args.out} (version {model.version}), {rows} labelled bars "
        f"({'truth' if truth is not None else 'realized'} labels), {', '.join(ds.symbols)}"
    )
    return 0
