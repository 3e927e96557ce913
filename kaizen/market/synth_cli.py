"""`kaizen data synth`: write a synthetic market with planted truth in the Binance archive layout.

Joins the `kaizen data` group (created here when the models domain has not made it yet)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    existing = sub.choices.get("data")
    if existing is None:
        d = sub.add_parser("data", help="market data utilities")
        dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
        d.set_defaults(func=lambda a: (d.print_help(), 2)[1])
    else:
        acts = [a for a in existing._actions if isinstance(a, argparse._SubParsersAction)]
        if not acts or "synth" in acts[0].choices:
            return
        dsub = acts[0]
    p = dsub.add_parser(
        "synth",
        help="write a synthetic market with planted regimes, signal and break (truth beside it)",
        description="Generate klines, mark-price klines and funding for the symbols in the Binance archive "
        "layout (futures/um/...), plus DIR/truth/regimes.csv and DIR/truth/signal.json. The market is the "
        "simulator's planted model (kaizen sim --market synth) run in batch; the same seed gives the same bytes.",
    )
    p.add_argument("--seed", type=int, required=True, help="seed of the market (same seed, same files)")
    p.add_argument("--days", type=int, required=True, help="length in days")
    p.add_argument("--interval", default="1h", help="bar interval (default 1h; e.g. 1m, 15m)")
    p.add_argument(
        "--break-day", type=float, default=None, help="day at which the regime-to-signal mapping changes"
    )
    p.add_argument(
        "--signal-strength",
        type=float,
        default=None,
        help="planted signal's phi, in hourly sigmas per unit of the clipped signal (default: the synth "
        "market's 0.06, exploitable after costs only in high-volatility regimes)",
    )
    p.add_argument("--out", required=True, help="directory to write (created; existing files replaced)")
    p.add_argument(
        "--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT", help="comma-separated (default: all four)"
    )
    p.add_argument(
        "--start", default="2024-01-01", help="first bar's day YYYY-MM-DD (UTC, default 2024-01-01)"
    )
    p.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    import time

    from kaizen.errors import KaizenError
    from kaizen.market.data import parse_date_ms
    from kaizen.market.synth import SynthParams, check, generate, write_archive
    from kaizen.progress import Progress

    if args.seed < 0:
        raise KaizenError(f"--seed must be >= 0, got {args.seed}")
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    model = None
    if args.signal_strength is not None:
        import msgspec

        from kaizen.venue.sim.model import MarketModel

        if not 0 <= args.signal_strength <= 1:
            raise KaizenError(f"--signal-strength must be in [0, 1], got {args.signal_strength}")
        base = MarketModel.synth(args.break_day)
        model = msgspec.structs.replace(
            base, signal=msgspec.structs.replace(base.signal, strength=float(args.signal_strength))
        )
    params = SynthParams(
        model=model,
        seed=args.seed,
        days=float(args.days),
        interval=args.interval,
        break_day=args.break_day,
        symbols=tuple(symbols),
        start_ms=parse_date_ms(args.start, "--start"),
    )
    check(params)  # bad arguments: one line, before any work
    t0 = time.monotonic()
    with Progress(2, label="synth") as bar:
        ds, truth = generate(params)
        bar.advance(1, "generated")
        try:
            root = write_archive(ds, truth, args.out)
        except OSError as exc:
            raise KaizenError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
        bar.advance(1, "written")
    info = truth.info
    sig = info["signal"]
    brk = f"break at day {sig['break_day']:g}" if sig["break_day"] is not None else "no break"
    print(
        f"synth: {len(ds.symbols)} symbols x {info['bars']} {args.interval} bars from {args.start}, seed "
        f"{args.seed}, {brk}; mean regime dwell {info['model']['derived']['mean_dwell_h'] / 24:.1f} days; "
        f"wrote {root} (truth in {root / 'truth'}) in {time.monotonic() - t0:.1f}s"
    )
    return 0
