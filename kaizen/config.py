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
    ws_url: str = ""
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


class StrategyConfig(_Section):
    # "baseline_momentum" is the named baseline: momentum gated by a volatility filter.
    name: Literal["baseline_momentum"] = "baseline_momentum"
    bar_seconds: int = 60
    fast_bars: int = 5
    slow_bars: int = 20
    vol_bars: int = 20
    max_vol_per_bar: float = 0.01
    entry_threshold: float = 0.0005


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


class ExitConfig(_Section):
    """Exit rules (kaizen.models.exit_rules / kaizen.models.exit). `rule` names a live rule:
    learned, signal, signal_zero, time_N, tpsl_TP_SL, trail_A_D, triple_TP_SL_N (barriers in
    units of entry vol * sqrt(horizon)); the hindsight oracle is not selectable."""

    rule: str = "signal"
    model_dir: str = ""  # the learned exit model (kaizen exit eval writes OUT/exit_model)
    max_hold_bars: int = 16  # every rule closes a trade after this many bars (4x the signal horizon)
    hard_stop_vol: float = 3.0  # learned exit's hard stop, entry vol * sqrt(horizon) units; 0 = off
    # training and evaluation (kaizen exit eval)
    folds: int = 6  # walk-forward test windows over [--start, --end)
    embargo_bars: int = 24
    trees: int = 200
    max_depth: int = 3
    learning_rate: float = 0.05
    edge_refit_days: int = 30  # the edge calibration is refitted on this cadence, walk-forward


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
    exit: ExitConfig = msgspec.field(default_factory=ExitConfig)
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
    ex = cfg.exit
    for key in ("max_hold_bars", "folds", "trees", "max_depth", "edge_refit_days"):
        if getattr(ex, key) < 1:
            raise ConfigError(f"{source}: key 'exit.{key}' must be >= 1, got {getattr(ex, key)!r}")
    if ex.embargo_bars < 0 or ex.hard_stop_vol < 0 or not 0 < ex.learning_rate <= 1:
        raise ConfigError(
            f"{source}: 'exit.embargo_bars' and 'exit.hard_stop_vol' must be >= 0, 'exit.learning_rate' in (0, 1]"
        )
    from kaizen.models.exit_rules import check_name

    try:
        check_name(ex.rule)
    except ConfigError as exc:
        raise ConfigError(f"{source}: key 'exit.rule': {exc}") from None
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
