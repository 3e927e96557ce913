"""`kaizen run CONFIG.toml` and `kaizen demo`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the engine from a TOML config (paper or live)")
    p.add_argument("config", help="path to a Kaizen TOML config")
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: config)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    d = sub.add_parser("demo", help="simulator + engine + report, bounded in time (paper trading)")
    d.add_argument("--duration", type=float, default=90.0, help="wall-clock seconds of trading (default 90)")
    d.add_argument(
        "--speed", type=float, default=600.0, help="simulated seconds per wall second (default 600)"
    )
    d.add_argument("--seed", type=int, default=7, help="seed of the synthetic market (default 7)")
    d.add_argument("--out", default=None, help="run directory (default runs/demo-<time>)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=_demo)


def _run(args: argparse.Namespace) -> int:
    from kaizen import config
    from kaizen.engine.runner import run

    cfg = config.load(args.config)
    result = run(cfg, duration_s=args.duration, show_progress=not args.no_progress)
    _print_result(result)
    return 3 if result.halted else 0


def _demo(args: argparse.Namespace) -> int:
    import msgspec

    from kaizen import config
    from kaizen.engine.runner import run
    from kaizen.errors import KaizenError

    if args.duration <= 0 or args.speed <= 0:
        raise KaizenError("--duration and --speed must be > 0")
    out = Path(args.out) if args.out else Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    cfg = config.Config(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"])
    cfg = msgspec.structs.replace(
        cfg,
        sim=msgspec.structs.replace(cfg.sim, seed=args.seed, speed=args.speed),
        lineage=msgspec.structs.replace(cfg.lineage, dir=str(out / "lineage")),
        engine=msgspec.structs.replace(cfg.engine, duration_s=args.duration),
    )
    print(
        f"kaizen demo: paper trading {', '.join(cfg.symbols)} on the embedded simulator "
        f"(seed {args.seed}, {args.speed:g}x) for {args.duration:g} s"
    )
    result = run(cfg, show_progress=not args.no_progress)
    _print_result(result)
    return 3 if result.halted else 0


def _print_result(result) -> None:
    from kaizen.engine.report import format_summary

    print(format_summary(result.summary))
    if result.errors:
        print(f"engine errors (logged to lineage): {len(result.errors)}; first: {result.errors[0]}")
    print(f"lineage log: {result.lineage_dir}")
    if result.halted:
        print(result.halted)
