"""`kaizen sim`: run the exchange simulator alone. Its first stdout line gives the base URLs:
`kaizen-sim rest=http://HOST:PORT ws=ws://HOST:PORT2` (fixed interface; other tools parse it)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the local Binance USD-M exchange simulator (REST + websocket)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="REST port (default 0: a free port)")
    p.add_argument("--ws-port", type=int, default=0, help="websocket port (default 0: a free port)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic market (default 7)")
    p.add_argument(
        "--market",
        default=None,
        choices=("demo", "synth", "showcase"),
        help="synthetic market model: 'demo' (the default; regimes every ~4 h of sim time, no planted signal) or "
        "'synth' (the planted market of `kaizen data synth`: multi-day regimes, regime-dependent signal; "
        "the default with --break-day), or 'showcase' (`kaizen demo`'s market: regimes every few sim hours, "
        "a strong momentum signal that turns to reversion at --break-day)",
    )
    p.add_argument(
        "--break-day",
        type=float,
        default=None,
        metavar="DAYS",
        help="the planted signal's regime mapping changes this many sim days after the start (implies --market synth)",
    )
    p.add_argument("--speed", type=float, default=60.0, help="sim seconds per wall second (default 60)")
    p.add_argument(
        "--api-key", default="", help="API key clients must send (default: $KAIZEN_SIM_API_KEY, else any key)"
    )
    p.add_argument(
        "--api-secret",
        default="",
        help="HMAC secret for signed requests (default: $KAIZEN_SIM_API_SECRET, else unchecked)",
    )
    p.add_argument("--balance", type=float, default=10_000.0, help="starting USDT balance (default 10000)")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT", help="comma-separated symbols")
    p.add_argument(
        "--replay",
        metavar="DATA_DIR",
        default=None,
        help="replay real candles + funding from Binance-format CSVs under DATA_DIR "
        "(futures/um/klines/SYM/IV, futures/um/fundingRate/SYM) instead of the synthetic market",
    )
    p.add_argument("--replay-interval", default="1h", help="candle interval to replay (default 1h)")
    p.add_argument(
        "--replay-start",
        default=None,
        metavar="YYYY-MM-DD",
        help="sim clock start (default: the first time every symbol has data)",
    )
    p.add_argument(
        "--faults",
        default=None,
        metavar="JSON",
        help="fault injection at start, as POST /_sim/faults takes it, e.g. "
        '\'{"rest_5xx": 2, "latency_ms": 50}\' (or @FILE)',
    )
    p.add_argument(
        "--fee-tier",
        type=int,
        default=None,
        choices=range(10),
        metavar="0..9",
        help="Binance USD-M VIP fee tier (default: regular, 0.02 %% maker / 0.05 %% taker)",
    )
    p.add_argument(
        "--ws-layout",
        default="routed",
        choices=("routed", "legacy-public-only", "legacy"),
        help="websocket entry points: 'routed' (default; Binance since 2026-04-23: /public, /market, "
        "/private, and the unrouted /ws, /stream carry public streams only), 'legacy-public-only' "
        "(only the unrouted paths, public streams only), 'legacy' (only the unrouted paths, every stream)",
    )
    p.set_defaults(func=_sim)


def _sim(args: argparse.Namespace) -> int:
    from kaizen.errors import KaizenError

    if not args.speed > 0:
        raise KaizenError(f"--speed must be > 0, got {args.speed}")
    if not 0 <= args.port < 65536 or not 0 <= args.ws_port < 65536:
        raise KaizenError(f"--port must be 0..65535, got {args.port}")
    import os

    args.api_key = args.api_key or os.environ.get("KAIZEN_SIM_API_KEY", "")
    args.api_secret = args.api_secret or os.environ.get("KAIZEN_SIM_API_SECRET", "")
    if bool(args.api_key) != bool(args.api_secret):
        raise KaizenError("--api-key and --api-secret go together")
    from kaizen.venue.sim.spec import SPECS

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    bad = [s for s in symbols if s not in SPECS]
    if bad or not symbols:
        raise KaizenError(
            f"--symbols: unknown symbol {bad[0] if bad else '(none)'!r} (known: {', '.join(SPECS)})"
        )
    faults = None
    if args.faults:
        import json

        text = args.faults
        if text.startswith("@"):
            try:
                text = open(text[1:]).read()
            except OSError as exc:
                raise KaizenError(f"--faults: cannot read {text[1:]}: {exc.strerror}") from None
        try:
            faults = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KaizenError(f"--faults: not JSON ({exc.msg} at char {exc.pos})") from None
        if not isinstance(faults, dict):
            raise KaizenError("--faults: expected a JSON object")
        from kaizen.venue.sim.simulator import Faults

        known = set(Faults.__dataclass_fields__)
        bad = [k for k in faults if k not in known]
        if bad:
            raise KaizenError(f"--faults: unknown fault {bad[0]!r} (known: {', '.join(sorted(known))})")
    from kaizen.venue.sim.model import MarketModel

    if args.break_day is not None and not args.break_day > 0:
        raise KaizenError(f"--break-day must be > 0, got {args.break_day}")
    market = args.market or ("synth" if args.break_day is not None else "demo")
    model = MarketModel.preset(market, args.break_day)
    start_ms = None
    if args.replay_start:
        from datetime import UTC, datetime

        try:
            start_ms = int(
                datetime.strptime(args.replay_start, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000
            )
        except ValueError:
            raise KaizenError(f"--replay-start: expected YYYY-MM-DD, got {args.replay_start!r}") from None
    import asyncio
    import signal
    import sys

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run

    async def main() -> int:
        from kaizen.venue.sim import Simulator

        sim = Simulator(
            seed=args.seed,
            model=model,
            speed=args.speed,
            symbols=symbols,
            api_key=args.api_key,
            api_secret=args.api_secret,
            host=args.host,
            port=args.port,
            ws_port=args.ws_port,
            starting_balance=args.balance,
            replay_dir=args.replay,
            replay_interval=args.replay_interval,
            replay_start_ms=start_ms,
            faults=faults,
            fee_tier=args.fee_tier,
            ws_layout=args.ws_layout,
        )
        try:
            await sim.start()
        except OSError as exc:
            raise KaizenError(f"cannot bind {args.host}:{args.port}: {exc.strerror or exc}") from None
        sys.stdout.write(f"kaizen-sim rest={sim.rest_url} ws={sim.ws_url}\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sim.stop()
        return 0

    return runner(main())
