"""`kaizen backtest` and `kaizen report`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest",
        help="run strategies side by side through the engine over historical data (replay clock)",
        description="Replay historical klines, marks and funding through the one engine, every strategy in "
        "[backtest] strategies side by side with the same fills and costs; decisions are evaluated from "
        "--start (everything before is history to train on). Writes OUT/summary.json, OUT/report.html and "
        "a lineage log per strategy under OUT/lineage/.",
    )
    p.add_argument("--data", required=True, help="data directory laid out like Binance's archive")
    p.add_argument("--config", help="TOML config (symbols, [backtest], [models], [fees], [risk])")
    p.add_argument("--start", help="first decision day YYYY-MM-DD (UTC); default: the last quarter of the data")
    p.add_argument("--end", help="end day YYYY-MM-DD (UTC), exclusive; default: the end of the data")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_backtest)

    r = sub.add_parser(
        "report",
        help="rebuild OUT/report.html from a backtest's lineage logs alone",
        description="Rebuild the backtest report from OUT/lineage/* only (bars, fills, funding, decisions): "
        "the report is the proof that the lineage holds everything.",
    )
    r.add_argument("out", help="a `kaizen backtest` output directory")
    r.add_argument("--symbol", default=None, help="symbol of the position-over-price chart (default BTCUSDT)")
    r.set_defaults(func=_report)


def default_config():
    """A backtest config when none is given: the default one, with risk limits sized to the
    backtest capital so that buy-and-hold can hold (no kill switch on a bear market)."""
    import msgspec

    from kaizen.config import Config

    cfg = Config()
    cap = cfg.backtest.capital
    risk = msgspec.structs.replace(cfg.risk, max_notional_per_symbol=cap, daily_loss_limit=cap, max_drawdown=1.0)
    return msgspec.structs.replace(cfg, risk=risk)


def _backtest(args: argparse.Namespace) -> int:
    from kaizen import config
    from kaizen.backtest.runner import run_backtest

    cfg = config.load(args.config) if args.config else default_config()
    run_backtest(
        cfg, Path(args.data), args.start, args.end, Path(args.out), bool(args.config), not args.no_progress
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from kaizen.backtest.report import build_report
    from kaizen.errors import KaizenError

    out = Path(args.out)
    if not (out / "lineage").is_dir():
        raise KaizenError(f"{out}: no lineage/ directory (not a `kaizen backtest` output)")
    path = build_report(out, args.symbol or "BTCUSDT")
    print(f"report: {path}")
    return 0
