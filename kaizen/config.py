"""Typed configuration, decoded from TOML with msgspec. Unknown keys and wrong types are errors.

Secrets are never in a config file: the venue section names the *environment variables* that hold
the API key and secret.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from kaizen.errors import ConfigError

SUPPORTED_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")

# Every numeric key carries its valid range on its type (msgspec checks it while decoding, and
# `_describe` turns a violation into one line naming the key, the range and the value). The
# description is the unit that line quotes. New keys: pick one of these or write `Annotated[...]`.
Fraction = Annotated[float, Meta(gt=0, le=1, description="fraction")]  # 0.25 = 25 %
Count = Annotated[int, Meta(ge=1, description="count")]
NonNegCount = Annotated[int, Meta(ge=0, description="count")]
Millis = Annotated[int, Meta(gt=0, description="milliseconds")]
Seconds = Annotated[float, Meta(gt=0, description="seconds")]
NonNegSeconds = Annotated[float, Meta(ge=0, description="seconds")]
Hours = Annotated[float, Meta(gt=0, description="hours")]
Usdt = Annotated[float, Meta(gt=0, description="USDT")]
Leverage = Annotated[float, Meta(gt=0, le=125, description="multiple of equity")]  # Binance's cap
FeeRate = Annotated[float, Meta(gt=-0.01, lt=0.01, description="fraction of notional")]  # < 0: rebate


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class VenueConfig(_Section):
    name: Literal["binanceusdm", "bybit"] = "binanceusdm"
    # Empty URLs in paper mode mean: start the embedded simulator and use its URLs.
    rest_url: str = ""
    ws_url: str = ""
    api_key_env: str = "KAIZEN_API_KEY"
    api_secret_env: str = "KAIZEN_API_SECRET"
    recv_window_ms: Annotated[int, Meta(ge=1, le=60_000, description="milliseconds")] = 5000  # venue cap
    timeout_ms: Millis = 10000


class FeeConfig(_Section):
    """Fractions of notional (0.0002 = 0.02 %). Binance USD-M regular tier by default."""

    maker: FeeRate = 0.0002
    taker: FeeRate = 0.0005


class RiskConfig(_Section):
    max_notional_per_symbol: Usdt = 2_000.0
    max_gross_leverage: Leverage = 3.0
    max_net_leverage: Leverage = 2.0
    max_open_orders: Count = 8
    max_orders_per_minute: Count = 120
    price_band_pct: Fraction = 0.05  # a fraction of the mark despite the name
    daily_loss_limit: Usdt = 1_000.0
    max_drawdown: Fraction = 0.25  # of peak equity
    stale_after_ms: Millis = 5_000
    vol_target_annual: Annotated[float, Meta(gt=0, le=10, description="annualised volatility, fraction")] = (
        0.5
    )


class StrategyConfig(_Section):
    # "baseline_momentum" is the named baseline: momentum gated by a volatility filter.
    name: Literal["baseline_momentum"] = "baseline_momentum"
    bar_seconds: Annotated[int, Meta(ge=1, le=86_400, description="seconds")] = 60
    fast_bars: Count = 5
    slow_bars: Annotated[int, Meta(ge=2, description="count")] = 20  # > fast_bars >= 1
    vol_bars: Annotated[int, Meta(ge=2, description="count")] = 20  # a std needs two
    max_vol_per_bar: Fraction = 0.01
    entry_threshold: Annotated[float, Meta(ge=0, le=1, description="fraction")] = 0.0005


class ModelConfig(_Section):
    dir: str = "runs/models"
    horizon_bars: Count = 4
    interval: str = "1h"
    pooled: bool = True
    # signal training (kaizen train): walk-forward folds, embargo, XGBoost sizes
    leader: str = "BTCUSDT"
    folds: Count = 6
    embargo_bars: NonNegCount = 24
    trees: Count = 200
    max_depth: Annotated[int, Meta(ge=1, le=20, description="levels")] = 4
    learning_rate: Fraction = 0.05
    meta_trees: Count = 100
    threads: Count = 2


class LoopConfig(_Section):
    retrain_every_hours: Hours = 24.0
    shadow_hours: Hours = 24.0
    drift_threshold: Annotated[float, Meta(gt=0, description="standard deviations")] = 3.0


class LineageConfig(_Section):
    dir: str = "runs/lineage"
    flush_interval_ms: Millis = 50
    fsync: Literal["never", "interval", "always"] = "interval"
    zstd_level: Annotated[int, Meta(ge=-7, le=22, description="zstd level")] = 3  # when zstd_fast is false
    zstd_fast: bool = True  # zstd preset tuned on lineage records (see kaizen/lineage/writer.py)
    segment_max_bytes: Annotated[int, Meta(ge=4096, description="bytes")] = 64 * 1024 * 1024
    segment_max_seconds: Annotated[int, Meta(ge=1, description="seconds")] = 3600
    zstd_dict: str = ""  # optional trained zstd dictionary (a copy is kept in the log directory)
    compress_threads: Annotated[int, Meta(ge=0, le=64, description="threads")] = 0  # 0: on the writer thread
    split_numbers: bool = True  # pre-filter frames (skeleton + delta-coded numbers) before zstd


class SimConfig(_Section):
    """The embedded venue simulator, used in paper mode when the venue URLs are empty."""

    seed: Annotated[int, Meta(ge=0, lt=2**32, description="seed")] = 7
    speed: Annotated[float, Meta(gt=0, le=1_000_000, description="simulated seconds per wall second")] = 60.0
    starting_balance: Usdt = 10_000.0
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65_535, description="TCP port, 0: any free")] = 0


class EngineConfig(_Section):
    cpu_pin: Annotated[int, Meta(ge=-1, description="CPU index, -1: no pinning")] = -1
    duration_s: Annotated[float, Meta(ge=0, description="seconds, 0: until stopped")] = 0.0
    reconcile_every_s: Seconds = 30.0
    poll_fills_every_s: Seconds = 1.0
    flatten_on_stop: bool = True


class Config(_Section):
    mode: Literal["live", "paper"] = "paper"
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    venue: VenueConfig = msgspec.field(default_factory=VenueConfig)
    fees: FeeConfig = msgspec.field(default_factory=FeeConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    models: ModelConfig = msgspec.field(default_factory=ModelConfig)
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
    for key, value in _numeric_values(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
    if cfg.strategy.fast_bars >= cfg.strategy.slow_bars:
        raise ConfigError(
            f"{source}: strategy.fast_bars ({cfg.strategy.fast_bars}) must be < strategy.slow_bars "
            f"({cfg.strategy.slow_bars})"
        )
    if cfg.mode == "live" and (not cfg.venue.rest_url or not cfg.venue.ws_url):
        raise ConfigError(f"{source}: live mode needs 'venue.rest_url' and 'venue.ws_url'")
    return cfg


def loads(text: str | bytes, source: str = "<config>") -> Config:
    try:
        cfg = msgspec.toml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc, text)}") from None
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


def _describe(exc: msgspec.ValidationError, text: str | bytes | None = None) -> str:
    """One line naming the key TOML-style. msgspec says e.g. "Expected `float` <= 1.0 - at
    `$.risk.max_drawdown`"; for a range violation this becomes
    "risk.max_drawdown must be > 0 and <= 1 (fraction), got 25"."""
    msg = str(exc)
    if " - at `$" not in msg:
        return msg
    what, _, where = msg.partition(" - at `$")
    where = where.rstrip("`").lstrip(".")
    if not where:
        return what
    rng = _range_of(where)
    if rng is not None and what.startswith("Expected `") and any(op in what for op in ("<", ">")):
        bounds, unit = rng
        got = _value_at(text, where)
        return (
            f"{where} must be {bounds}"
            + (f" ({unit})" if unit else "")
            + (f", got {got!r}" if got is not _MISSING else "")
        )
    return f"{what} (at '{where}')"


_MISSING = object()


def _field_info(path: str):
    """The msgspec type info of the config key at a dotted path (None if not a plain key)."""
    info = msgspec.inspect.type_info(Config)
    for part in path.split("."):
        while isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        if not isinstance(info, msgspec.inspect.StructType):
            return None
        fields = {f.encode_name: f.type for f in info.fields}
        if part not in fields:
            return None
        info = fields[part]
    return info


def _range_of(path: str) -> tuple[str, str] | None:
    """("> 0 and <= 1", "fraction") for a key with a numeric range, else None."""
    info = _field_info(path)
    unit = ""
    if isinstance(info, msgspec.inspect.Metadata):
        unit = (info.extra_json_schema or {}).get("description", "")
        info = info.type
    if not isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return None
    ops = ((">", info.gt), (">=", info.ge), ("<", info.lt), ("<=", info.le))
    parts = [f"{op} {_num(v)}" for op, v in ops if v is not None]
    return (" and ".join(parts), unit) if parts else None


def _num(v: float) -> str:
    return f"{v:_}" if isinstance(v, int) else f"{v:g}"


def _value_at(text: str | bytes | None, path: str):
    if text is None:
        return _MISSING
    try:
        node = msgspec.toml.decode(text)
    except msgspec.DecodeError:
        return _MISSING
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _numeric_values(cfg: Config):
    for key in numeric_ranges():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        yield key, node


def numeric_ranges() -> dict[str, tuple[str, str] | None]:
    """Every numeric config key (dotted) -> its range and unit, or None when it has none."""
    out: dict[str, tuple[str, str] | None] = {}

    def walk(info, prefix: str) -> None:
        base = info.type if isinstance(info, msgspec.inspect.Metadata) else info
        if isinstance(base, msgspec.inspect.StructType):
            for f in base.fields:
                walk(f.type, f"{prefix}{f.encode_name}.")
        elif isinstance(base, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            out[prefix[:-1]] = _range_of(prefix[:-1])

    walk(msgspec.inspect.type_info(Config), "")
    return out
