"""Typed configuration, decoded from TOML with msgspec. Unknown keys and wrong types are errors.

Secrets are never in a config file: the venue section names the *environment variables* that hold
the API key and secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

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
        default_factory=lambda: [
            "buy_and_hold",
            "baseline_momentum",
            "snapshot",
            "periodic_retrain",
            "kaizen",
        ]
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


Positive = Annotated[float, msgspec.Meta(gt=0)]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_DURATION_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXECUTOR = re.compile(r"^(local|dask://[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


def duration_seconds(text: str) -> float:
    """'90m', '12h', '1d', '3600s' -> seconds; ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like '30m', '12h' or '1d'")
    return float(m.group(1)) * _DURATION_UNIT[m.group(2)]


class LoopConfig(_Section):
    """The improvement loop (issue 15): retrain schedule, shadow period, validation gate, drift
    monitor and the training executor."""

    # Schedule. `retrain_every` is a duration ("1d", "12h", "90m"); `shadow_days` the shadow period
    # before the gate decides. The *_hours keys are the older spelling of the same two settings:
    # give one of each pair, not both (unset, the defaults are one day and three days).
    retrain_every: str | None = None
    retrain_every_hours: Positive | None = None
    shadow_days: Positive | None = None
    shadow_hours: Positive | None = None
    # Training executor: "local" (a process pool of executor_workers processes) or
    # "dask://HOST:PORT" (an existing Dask scheduler; needs the `dask` extra).
    executor: str = "local"
    executor_workers: Annotated[int, msgspec.Meta(ge=1, le=256)] = 1
    # Validation gate (kaizen.loop.gate): one-sided paired test at gate_alpha on per-decision net
    # differences, deflated Sharpe >= gate_min_dsr counting every trial of the role.
    gate_alpha: Annotated[float, msgspec.Meta(gt=0, lt=0.5)] = 0.05
    gate_min_dsr: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.95
    gate_min_decisions: Annotated[int, msgspec.Meta(ge=10)] = 200
    gate_test: Literal["dm", "bootstrap", "both"] = "both"
    gate_horizon: Annotated[int, msgspec.Meta(ge=1)] = 1
    gate_bootstrap_reps: Annotated[int, msgspec.Meta(ge=99)] = 999
    gate_max_pbo: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    # Drift monitor (kaizen.loop.drift): two-sided CUSUM on standardized residuals whose threshold
    # is calibrated to a mean of drift_arl0 decisions between false alarms (per role);
    # drift_threshold, when set, fixes the threshold (in warm-up sds) instead.
    drift_arl0: Annotated[float, msgspec.Meta(ge=10)] = 20_000.0
    drift_k: Annotated[float, msgspec.Meta(ge=0, le=3)] = 0.5
    drift_warmup: Annotated[int, msgspec.Meta(ge=10)] = 200
    drift_clip: Annotated[float, msgspec.Meta(gt=0)] = 4.0
    drift_threshold: Positive | None = None

    @property
    def retrain_every_s(self) -> float:
        if self.retrain_every is not None:
            return duration_seconds(self.retrain_every)
        return (self.retrain_every_hours or 24.0) * 3600.0

    @property
    def shadow_s(self) -> float:
        if self.shadow_days is not None:
            return self.shadow_days * 86400.0
        return self.shadow_hours * 3600.0 if self.shadow_hours is not None else 3 * 86400.0


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


# --- policy: roles, variants and the Thompson-sampling portfolio (kaizen/policy) ------------------
Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=64)]
Positive = Annotated[float, Meta(gt=0.0, le=1e12)]


class PriorConfig(_Section):
    """Prior of a variant's reward per decision (bps, net of fees and funding).

    kind "normal_gamma": tau ~ Gamma(alpha, rate = alpha * scale_bps^2), mu | tau ~ N(mean,
    1 / (kappa tau)); `beta` is unused. kind "beta": Beta(alpha, beta) over the win rate; `mean`,
    `kappa` and `scale_bps` are unused. Why these defaults: ext/thompson.pyx."""

    mean: Annotated[float, Meta(ge=-10_000.0, le=10_000.0)] = 0.0
    kappa: Positive = 1.0
    alpha: Positive = 1.0
    scale_bps: Positive = 100.0
    beta: Positive = 1.0


class VariantConfig(_Section):
    """A trained model configuration competing for a role's decisions."""

    id: Name
    features: list[str] = []  # feature names the model reads (empty: the full surface)
    horizon_bars: Annotated[int, Meta(ge=1, le=10_000)] = 4
    train_days: Annotated[int, Meta(ge=1, le=100_000)] = 365  # training window
    params: dict[str, float | int | str | bool] = {}  # hyper-parameters


class StyleConfig(_Section):
    name: Name
    variants: list[VariantConfig] = []


class RoleConfig(_Section):
    """Restrict one role (symbol, regime, style) to some of its style's variants."""

    symbol: str
    regime: Name
    style: Name
    variants: list[Name]


class PolicyConfig(_Section):
    kind: Literal["normal_gamma", "beta"] = "normal_gamma"
    discount: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.99  # per decision; memory 1/(1 - discount)
    prior: PriorConfig = msgspec.field(default_factory=PriorConfig)
    shadow_weight: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.25  # counterfactual rewards' weight
    # Retire a variant whose probability of being best stays below retire_threshold for
    # retire_window decisions, once it has min_sample weighted rewards.
    retire_threshold: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.02
    retire_window: Annotated[int, Meta(ge=1, le=10_000_000)] = 500
    min_sample: Annotated[float, Meta(ge=0.0, le=1e9)] = 100.0
    check_every: Annotated[int, Meta(ge=1, le=1_000_000)] = 10  # decisions between retirement checks
    prob_best_samples: Annotated[int, Meta(ge=100, le=1_000_000)] = 1000
    # A new candidate enters with this prior and at most this share of the role's risk until it has
    # min_sample weighted rewards.
    candidate_prior: PriorConfig = msgspec.field(default_factory=PriorConfig)
    candidate_risk_share: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.25
    beta_flat_value: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.5  # kind "beta": flat's win rate
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 0  # roles derive their bandit seeds from it
    regimes: list[Name] = msgspec.field(
        default_factory=lambda: ["trend_low", "trend_high", "range_low", "range_high"]
    )
    styles: list[StyleConfig] = []
    roles: list[RoleConfig] = []


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
    policy: PolicyConfig = msgspec.field(default_factory=PolicyConfig)

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
    loop = cfg.loop
    if loop.retrain_every is not None and loop.retrain_every_hours is not None:
        raise ConfigError(f"{source}: give 'loop.retrain_every' or 'loop.retrain_every_hours', not both")
    if loop.shadow_days is not None and loop.shadow_hours is not None:
        raise ConfigError(f"{source}: give 'loop.shadow_days' or 'loop.shadow_hours', not both")
    if loop.retrain_every is not None:
        try:
            if not duration_seconds(loop.retrain_every) > 0:
                raise ValueError(f"{loop.retrain_every!r} is not > 0")
        except ValueError as exc:
            raise ConfigError(f"{source}: key 'loop.retrain_every': {exc}") from None
    if not _EXECUTOR.match(loop.executor):
        raise ConfigError(
            f"{source}: key 'loop.executor' must be 'local' or 'dask://HOST:PORT', got {loop.executor!r}"
        )
    if cfg.mode == "live" and (not cfg.venue.rest_url or not cfg.venue.ws_url):
        raise ConfigError(f"{source}: live mode needs 'venue.rest_url' and 'venue.ws_url'")
    _validate_policy(cfg, source)
    return cfg


def _validate_policy(cfg: Config, source: str) -> None:
    """Cross-references msgspec cannot check: unique names, `flat` reserved, role overrides that
    name a known symbol, regime, style and variants."""
    pol = cfg.policy

    def dup(names: list[str]) -> str | None:
        seen: set[str] = set()
        return next((n for n in names if n in seen or seen.add(n)), None)

    if (d := dup(pol.regimes)) is not None:
        raise ConfigError(f"{source}: 'policy.regimes' lists {d!r} twice")
    if (d := dup([s.name for s in pol.styles])) is not None:
        raise ConfigError(f"{source}: 'policy.styles' declares style {d!r} twice")
    styles = {}
    for st in pol.styles:
        ids = [v.id for v in st.variants]
        if "flat" in ids:
            raise ConfigError(
                f"{source}: style {st.name!r}: variant id 'flat' is reserved (flat is always variant 0)"
            )
        if (d := dup(ids)) is not None:
            raise ConfigError(f"{source}: style {st.name!r} declares variant {d!r} twice")
        styles[st.name] = set(ids)
    seen_roles: set[tuple[str, str, str]] = set()
    for r in pol.roles:
        where = f"policy.roles ({r.symbol}, {r.regime}, {r.style})"
        if r.symbol not in cfg.symbols:
            raise ConfigError(f"{source}: {where}: symbol {r.symbol!r} is not in 'symbols'")
        if r.regime not in pol.regimes:
            raise ConfigError(f"{source}: {where}: regime {r.regime!r} is not in 'policy.regimes'")
        if r.style not in styles:
            raise ConfigError(f"{source}: {where}: style {r.style!r} is not declared in 'policy.styles'")
        unknown = [v for v in r.variants if v != "flat" and v not in styles[r.style]]
        if unknown:
            raise ConfigError(f"{source}: {where}: unknown variant {unknown[0]!r} of style {r.style!r}")
        key = (r.symbol, r.regime, r.style)
        if key in seen_roles:
            raise ConfigError(f"{source}: {where} is listed twice")
        seen_roles.add(key)


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
