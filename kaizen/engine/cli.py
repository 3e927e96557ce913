"""`kaizen run CONFIG.toml`, `kaizen status [URL]` and `kaizen demo`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the engine from a TOML config (paper or live)")
    p.add_argument("config", help="path to a Kaizen TOML config")
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: config)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    st = sub.add_parser("status", help="print a running engine's status (its /status endpoint) as tables")
    st.add_argument(
        "target",
        nargs="?",
        default=None,
        help="http://127.0.0.1:PORT, or a run directory (reads its status.url); "
        "default: $KAIZEN_STATUS_URL, else runs/paper",
    )
    st.add_argument("--json", action="store_true", help="print the raw JSON")
    st.set_defaults(func=_status)

    d = sub.add_parser(
        "demo",
        help="train a model on the simulator's market, paper-trade it with the improvement loop, "
        "report it against buy-and-hold (about 2.5 minutes)",
    )
    d.add_argument(
        "--duration", type=float, default=135.0, help="wall-clock seconds of trading (default 135)"
    )
    d.add_argument(
        "--speed", type=float, default=600.0, help="simulated seconds per wall second (default 600)"
    )
    d.add_argument("--seed", type=int, default=7, help="seed of the simulator's market (default 7)")
    d.add_argument(
        "--break-hour", type=float, default=10.0,
        help="sim hours after the start when the planted signal breaks (default 10; 0: no break)",
    )  # fmt: skip
    d.add_argument(
        "--history-days", type=float, default=10.0, help="days of generated training history (default 10)"
    )
    d.add_argument("--out", default=None, help="run directory (default runs/demo-<time>)")
    d.add_argument("--no-progress", action="store_true", help="no periodic status lines")
    d.set_defaults(func=_demo)


def _run(args: argparse.Namespace) -> int:
    from kaizen import config
    from kaizen.engine.runner import run

    cfg = config.load(args.config)
    result = run(cfg, duration_s=args.duration, show_progress=not args.no_progress, config_path=args.config)
    _print_result(result)
    return 3 if result.halted else 0


def _status(args: argparse.Namespace) -> int:
    import json
    import os

    from kaizen.errors import KaizenError
    from kaizen.ops.status import fetch_status, format_status

    target = args.target or os.environ.get("KAIZEN_STATUS_URL") or "runs/paper"
    if not target.startswith(("http://", "https://")):
        f = Path(target) / "status.url"
        if not f.is_file():
            raise KaizenError(f"{target}: no status.url (is an engine running with this run directory?)")
        target = f.read_text().strip()
    st = fetch_status(target)
    print(json.dumps(st, indent=2) if args.json else format_status(st))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from kaizen.engine.demo import DemoParams, run_demo
    from kaizen.errors import KaizenError

    if args.duration <= 0 or args.speed <= 0 or args.history_days <= 0 or args.break_hour < 0:
        raise KaizenError("--duration, --speed and --history-days must be > 0, --break-hour >= 0")
    p = DemoParams(duration_s=args.duration, speed=args.speed, seed=args.seed, history_days=args.history_days,
                   break_hour=args.break_hour, progress=not args.no_progress)  # fmt: skip
    if args.out:
        p.out = Path(args.out)
    return run_demo(p)


def _print_result(result) -> None:
    from kaizen.engine.report import format_summary

    print(format_summary(result.summary))
    if result.errors:
        print(f"engine errors (logged to lineage): {len(result.errors)}; first: {result.errors[0]}")
    print(f"lineage log: {result.lineage_dir}")
    if result.halted:
        print(result.halted)
