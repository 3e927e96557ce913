"""Typed configuration, decoded from TOML with msgspec. Unknown keys and wrong types are errors.

Secrets are never in a config file: the venue section names the *environment variables* that hold
the API key and secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from kaizen.errors import ConfigError

SUPPORTED_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class VenueConfig(_Section):
    name: Literal["binanceusdm", "bybit"] = "binanceusdm"
    # Empty URLs in paper mode mean: start the embedded simulator and use its URLs.
    rest_url: str = ""
    # The websocket *base* (e.g. wss://fstream.binance.com); the routes /public (book), /market
    # (trades, mark price) and /private (user data) are derived from it. "legacy": a base still on
    # Binance's old unrouted layout (/ws, /stream for everything), e.g. a testnet not yet migrated.
    ws_url: str = ""
    ws_layout: Literal["routed", "legacy"] = "routed"
    api_key_env: str = "KAIZEN_API_KEY"
    api_secret_env: str = "KAIZEN_API_SECRET"
    recv_window_ms: int = 5000
    timeout_ms: int = 10000


class FeeConfig(_Section):
    """Fractions of notional (0.0002 = 0.02 %). Binance USD-M regular tier by default."""

    maker: float = 0.0002
    taker: float = 0.0005


class RiskConfig(_Section):
    max_notional_per_symbol: float = 2_000.0
    max_gross_leverage: float = 3.0
    max_net_leverage: float = 2.0
    max_open_orders: int = 8
    max_orders_per_minute: int = 120
    price_band_pct: float = 0.05
    daily_loss_limit: float = 1_000.0
    max_drawdown: float = 0.25
    stale_after_ms: int = 5_000
    vol_target_annual: float = 0.5
    # sizing capital (USDT); 0: the account's equity at start. Sizing never compounds within a run,
    # so a decision depends on market data only.
    capital: float = 0.0


class StrategyConfig(_Section):
    # baseline_momentum: the named yardstick (momentum gated by a volatility filter, on the features);
    # ensemble: a trained model directory (`kaizen train` OUT/models) through the compiled predictors,
    # trading only a positive net edge; flat; buy_and_hold.
    name: Literal["baseline_momentum", "ensemble", "flat", "buy_and_hold"] = "baseline_momentum"
    bar_seconds: int = 60
    # baseline: enter when the 4-bar log return exceeds entry_z of its own standard deviation (vol
    # over 24 bars x 2) and the 24-bar return agrees; stand aside when the 24-bar vol is more than
    # max_vol_ratio x the 72-bar vol (a volatility spike). Scale-free: the same on 1 m and 1 h bars.
    entry_z: float = 1.0
    max_vol_ratio: float = 1.5
    model_dir: str = ""  # ensemble: the trained models directory
    min_edge_tstat: float = 2.0  # `kaizen` strategy: out-of-fold evidence needed to trade at all
    # a same-side resize smaller than this fraction of the position is not traded (fees)
    rebalance_band: float = 0.25


class ModelConfig(_Section):
    dir: str = "runs/models"
    horizon_bars: int = 4
    interval: str = "1h"
    pooled: bool = True
    # signal training (kaizen train): walk-forward folds, embargo, XGBoost sizes
    leader: str = "BTCUSDT"
    folds: int = 6
    embargo_bars: int = 24
    trees: int = 200
    max_depth: int = 4
    learning_rate: float = 0.05
    meta_trees: int = 100
    threads: int = 2


class BacktestConfig(_Section):
    """`kaizen backtest`: the fill model, the capital and the strategies run side by side."""

    capital: float = 10_000.0
    spread_bps: float = 1.0  # full quoted spread; a taker fill pays half of it
    slippage_bps: float = 1.0  # per taker fill, on top of half the spread
    strategies: list[str] = msgspec.field(
        default_factory=lambda: ["buy_and_hold", "baseline_momentum", "snapshot", "periodic_retrain", "kaizen"]
    )
    retrain_every_days: float = 30.0  # periodic_retrain
    train_window_days: float = 730.0  # rolling training window of the retraining strategies
    warmup_bars: int = 200  # bars before --start that only warm the features up
    report_symbol: str = "BTCUSDT"  # the symbol of the report's position-over-price chart
    # Training inside a backtest (snapshot, periodic_retrain, kaizen): the [models] settings with
    # these overrides, sized so that monthly retraining of a multi-year run stays in minutes.
    # One XGBoost thread per fit: the strategies already run in parallel worker processes, and
    # OpenMP threads on an oversubscribed box spin instead of working (measured 10-30x slower).
    train_folds: int = 3
    train_trees: int = 100
    train_learning_rate: float = 0.1
    train_meta_trees: int = 50
    workers: int = 2  # strategies run in parallel processes
    flatten_at_end: bool = True  # close every position at the last bar (costs included)


class LoopConfig(_Section):
    retrain_every_hours: float = 24.0
    shadow_hours: float = 24.0
    drift_threshold: float = 3.0


class LineageConfig(_Section):
    dir: str = "runs/lineage"
    flush_interval_ms: int = 50
    fsync: Literal["never", "interval", "always"] = "interval"
    zstd_level: int = 3  # used when zstd_fast is false
    zstd_fast: bool = True  # zstd preset tuned on lineage records (see kaizen/lineage/writer.py)
    segment_max_bytes: int = 64 * 1024 * 1024
    segment_max_seconds: int = 3600
    zstd_dict: str = ""  # optional trained zstd dictionary (a copy is kept in the log directory)
    compress_threads: int = 0  # 0: compress on the writer thread; N > 0: N zstd workers per batch
    split_numbers: bool = True  # pre-filter frames (skeleton + delta-coded numbers) before zstd


class SimConfig(_Section):
    """The embedded venue simulator, used in paper mode when the venue URLs are empty."""

    seed: int = 7
    speed: float = 60.0
    starting_balance: float = 10_000.0
    host: str = "127.0.0.1"
    port: int = 0


class EngineConfig(_Section):
    cpu_pin: int = -1  # -1: no pinning
    duration_s: float = 0.0  # 0: until stopped
    reconcile_every_s: float = 30.0
    poll_fills_every_s: float = 1.0
    flatten_on_stop: bool = True


class Config(_Section):
    mode: Literal["live", "paper"] = "paper"
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    venue: VenueConfig = msgspec.field(default_factory=VenueConfig)
    fees: FeeConfig = msgspec.field(default_factory=FeeConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    models: ModelConfig = msgspec.field(default_factory=ModelConfig)
    backtest: BacktestConfig = msgspec.field(default_factory=BacktestConfig)
    loop: LoopConfig = msgspec.field(default_factory=LoopConfig)
    lineage: LineageConfig = msgspec.field(default_factory=LineageConfig)
    sim: SimConfig = msgspec.field(default_factory=SimConfig)
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)

    def api_credentials(self) -> tuple[str, str]:
        """Read the key and secret from the environment variables the config names."""
        return os.environ.get(self.venue.api_key_env, ""), os.environ.get(self.venue.api_secret_env, "")


def _validate(cfg: Config, source: str) -> Config:
    if not cfg.symbols:
        raise ConfigError(f"{source}: key 'symbols' must list at least one symbol")
    for sym in cfg.symbols:
        if sym not in SUPPORTED_SYMBOLS:
            raise ConfigError(
                f"{source}: unknown symbol {sym!r} in 'symbols' (supported: {', '.join(SUPPORTED_SYMBOLS)})"
            )
    if len(set(cfg.symbols)) != len(cfg.symbols):
        raise ConfigError(f"{source}: 'symbols' lists a symbol twice")
    positive = {
        "strategy.bar_seconds": cfg.strategy.bar_seconds,
        "sim.speed": cfg.sim.speed,
        "risk.max_notional_per_symbol": cfg.risk.max_notional_per_symbol,
        "lineage.flush_interval_ms": cfg.lineage.flush_interval_ms,
        "lineage.segment_max_bytes": cfg.lineage.segment_max_bytes,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{source}: key '{key}' must be > 0, got {value!r}")
    for key, value in {"fees.maker": cfg.fees.maker, "fees.taker": cfg.fees.taker}.items():
        if not -0.01 < value < 0.01:
            raise ConfigError(f"{source}: key '{key}' is a fraction of notional, got {value!r}")
    if cfg.venue.ws_url:
        from kaizen.market.routes import check_ws_base

        try:
            check_ws_base(cfg.venue.ws_url)
        except ValueError as exc:
            raise ConfigError(f"{source}: key 'venue.ws_url': {exc}") from None
    if cfg.mode == "live" and (not cfg.venue.rest_url or not cfg.venue.ws_url):
        raise ConfigError(f"{source}: live mode needs 'venue.rest_url' and 'venue.ws_url'")
    return cfg


def loads(text: str | bytes, source: str = "<config>") -> Config:
    try:
        cfg = msgspec.toml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return _validate(cfg, source)


def load(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    return loads(data, str(p))


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Object contains unknown field `foo` - at `$.risk`"; name the key TOML-style.
    msg = str(exc)
    if " - at `$" in msg:
        text, _, where = msg.partition(" - at `$")
        where = where.rstrip("`").lstrip(".")
        return f"{text} (at '{where}')" if where else text
    return msg
