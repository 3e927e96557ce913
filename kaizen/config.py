"""Typed configuration, decoded from TOML with msgspec. Unknown keys and wrong types are errors.

Secrets are never in a config file: the venue section names the *environment variables* that hold
the API key and secret.
"""

from __future__ import annotations

import math
import os
import re
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
    # The websocket *base* (e.g. wss://fstream.binance.com); the routes /public (book), /market
    # (trades, mark price) and /private (user data) are derived from it. "legacy": a base still on
    # Binance's old unrouted layout (/ws, /stream for everything), e.g. a testnet not yet migrated.
    ws_url: str = ""
    ws_layout: Literal["routed", "legacy"] = "routed"
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
    # sizing capital; 0: the account's equity at start. Sizing never compounds within a run, so a
    # decision depends on market data only.
    capital: Annotated[float, Meta(ge=0, description="USDT")] = 0.0
    # where the kill switch's halt state and the run's identity (run.json) live; "": the run
    # directory (the lineage directory's parent). A new run naming the same state_dir finds a halt
    # even with another lineage directory.
    state_dir: str = ""


class StrategyConfig(_Section):
    # baseline_momentum: the named yardstick (momentum gated by a volatility filter, on the features);
    # ensemble: a trained model directory (`kaizen train` OUT/models) through the compiled predictors,
    # trading only a positive net edge; flat; buy_and_hold.
    # kaizen: the improvement loop (kaizen run only; history from loop.history_dir).
    name: Literal["baseline_momentum", "ensemble", "flat", "buy_and_hold", "kaizen"] = "baseline_momentum"
    bar_seconds: Annotated[int, Meta(ge=1, le=86_400, description="seconds")] = 60
    # baseline: enter when the 4-bar log return exceeds entry_z of its own standard deviation (vol
    # over 24 bars x 2) and the 24-bar return agrees; stand aside when the 24-bar vol is more than
    # max_vol_ratio x the 72-bar vol (a volatility spike). Scale-free: the same on 1 m and 1 h bars.
    entry_z: Annotated[float, Meta(gt=0, le=100, description="standard deviations")] = 1.0
    max_vol_ratio: Annotated[float, Meta(gt=0, le=100, description="ratio")] = 1.5
    model_dir: str = ""  # ensemble: the trained models directory
    # `kaizen` strategy: the out-of-fold evidence (daily t-statistic) a model needs to trade at all
    min_edge_tstat: Annotated[float, Meta(ge=0, le=100, description="t-statistic")] = 2.0
    # a same-side resize smaller than this fraction of the position is not traded (fees)
    rebalance_band: Annotated[float, Meta(ge=0, le=1, description="fraction")] = 0.25


class RouterConfig(_Section):
    """How the order router sends orders. Reductions, exits, flips, the flatten and the kill
    switch are always market orders (risk first); `entry` applies only to orders that increase an
    exposure (from flat, or adding on the same side)."""

    # "post_only": a position-increasing order rests as a post-only limit at the touch (best bid
    # for a buy, best ask for a sell; without a book, the decision's price rounded to the passive
    # side) and pays the maker fee if it fills; "market": a taker order, as before
    entry: Literal["market", "post_only"] = "market"
    # a post-only entry the venue refuses because it would take liquidity (-5022) is re-quoted once
    # one tick more passive; refused again: "skip" (no order this decision) or "market" (a taker
    # order for the same quantity, sent once)
    post_only_fallback: Literal["skip", "market"] = "skip"
    # a resting entry not filled after this long is cancelled by the router's poll (live, paper);
    # 0: until the next bar's target replaces or cancels it (a backtest always uses one bar)
    entry_ttl_s: NonNegSeconds = 0.0
    # after the TTL, quote the same decision again at the new touch (its data time still applies:
    # once older than `risk.stale_after_ms` it adds no exposure)
    entry_replan: bool = False


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
    # meta model: "select" picks xgb or logistic per fold by the walk-forward protocol
    meta: Literal["xgb", "logistic", "select"] = "select"
    regime_stacking: bool = False  # the meta also takes the regime detector's probabilities
    regime_trees: Count = 150  # boosting rounds of the regime detector trained for the stacking
    # the signal models also see the regime context (kaizen.models.features.CONTEXT_NAMES): a
    # "regime" base model on momentum + mean-reversion features beside the regime features
    regime_context: bool = False


class BacktestConfig(_Section):
    """`kaizen backtest`: the fill model, the capital and the strategies run side by side."""

    capital: Usdt = 10_000.0
    spread_bps: Annotated[float, Meta(ge=0, le=1000, description="basis points")] = 1.0  # a taker pays half
    slippage_bps: Annotated[float, Meta(ge=0, le=1000, description="basis points")] = 1.0  # per taker fill
    strategies: list[str] = msgspec.field(
        default_factory=lambda: [
            "buy_and_hold",
            "baseline_momentum",
            "snapshot",
            "periodic_retrain",
            "kaizen",
        ]
    )
    retrain_every_days: Annotated[float, Meta(gt=0, le=3650, description="days")] = 30.0  # periodic_retrain
    # rolling training window of the strategies that train
    train_window_days: Annotated[float, Meta(gt=0, le=36500, description="days")] = 730.0
    warmup_bars: NonNegCount = 200  # bars before --start that only warm the features up
    report_symbol: str = "BTCUSDT"  # the symbol of the report's position-over-price chart
    # Training inside a backtest (snapshot, periodic_retrain, kaizen): the [models] settings with
    # these overrides, sized so that monthly retraining of a multi-year run stays in minutes.
    # One XGBoost thread per fit: the strategies already run in parallel worker processes, and
    # OpenMP threads on an oversubscribed box spin instead of working (measured 10-30x slower).
    train_folds: Annotated[int, Meta(ge=2, le=50, description="count")] = 3
    train_trees: Count = 100
    train_learning_rate: Fraction = 0.1
    train_meta_trees: Count = 50
    # fits of one training run at once in threads (one XGBoost thread each): the same model for any
    # value; 2 lets the longest strategy (the loop) use both cores once the others are done
    train_fit_workers: Annotated[int, Meta(ge=1, le=64, description="threads")] = 2
    workers: Annotated[int, Meta(ge=1, le=256, description="processes")] = 2  # strategies in parallel
    flatten_at_end: bool = True  # close every position at the last bar (costs included)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_DURATION_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXECUTOR = re.compile(r"^(local|dask://[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


def duration_seconds(text: str) -> float:
    """'90m', '12h', '1d', '3600s' -> seconds; ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like '30m', '12h' or '1d'")
    return float(m.group(1)) * _DURATION_UNIT[m.group(2)]


class ExitConfig(_Section):
    """Exit rules (kaizen.models.exit_rules / kaizen.models.exit). `rule` names a live rule:
    strategy (no exit layer), learned, signal, signal_zero, time_N, tpsl_TP_SL, trail_A_D, triple_TP_SL_N (barriers in
    units of entry vol * sqrt(horizon)); the hindsight oracle is not selectable."""

    # "strategy": no exit layer, the strategy's own targets open and close positions (default)
    rule: str = "strategy"
    model_dir: str = ""  # the learned exit model (kaizen exit eval writes OUT/exit_model)
    max_hold_bars: Count = 16  # every rule closes a trade after this many bars (4x the signal horizon)
    # learned exit's hard stop, in entry vol * sqrt(horizon) units; 0 = off
    hard_stop_vol: Annotated[float, Meta(ge=0, le=100, description="entry vol x sqrt(horizon)")] = 3.0
    # training and evaluation (kaizen exit eval)
    folds: Count = 6  # walk-forward test windows over [--start, --end)
    embargo_bars: NonNegCount = 24
    trees: Count = 200
    max_depth: Annotated[int, Meta(ge=1, le=20, description="levels")] = 3
    learning_rate: Fraction = 0.05
    edge_refit_days: Annotated[int, Meta(ge=1, le=3650, description="days")] = 30  # walk-forward refits


class LoopConfig(_Section):
    """The improvement loop (issue 15): retrain schedule, shadow period, validation gate, drift
    monitor and the training executor."""

    # Schedule. `retrain_every` is a duration ("1d", "12h", "90m"); `shadow_days` the shadow period
    # before the gate decides. The *_hours keys are the older spelling of the same two settings:
    # give one of each pair, not both (unset, the defaults are one day and seven days: a week of
    # shadow is ~670 paired decisions on four symbols' hourly bars, where the gate's power to see a
    # real edge starts (bench/gate_power.py); three days gave it a coin's chance).
    retrain_every: str | None = None
    retrain_every_hours: Hours | None = None
    shadow_days: Annotated[float, Meta(gt=0, description="days")] | None = None
    shadow_hours: Hours | None = None
    # Group-sequential looks at one candidate, one per shadow period (kaizen.loop.gate): a candidate
    # ahead of the champion but not yet significant stays in shadow for up to this many periods
    # (each look at Pocock's level, so the false-promotion rate stays at gate_alpha); one behind
    # the champion at a look is retired. 1: decide once, at the end of the first period.
    shadow_looks: Annotated[int, Meta(ge=1, le=20, description="looks")] = 4
    # After a drift alarm's rollback, train from the alarm's change point on (the CUSUM's estimate of
    # when the model stopped working) instead of across it, once change_min_days of data exist,
    # until the rolling window has moved past it; the candidate then in shadow is retired (it was
    # trained across the change).
    retrain_from_change: bool = True
    change_min_days: Annotated[float, Meta(ge=1, description="days")] = 21.0
    # `kaizen run` with strategy.name = "kaizen": the stored history the loop trains on at start
    # (klines, mark price and funding in the Binance archive layout, at the engine's bar interval);
    # every bar the engine closes is added to it.
    history_dir: str = ""
    # Training executor: "local" (a process pool of executor_workers processes) or
    # "dask://HOST:PORT" (an existing Dask scheduler; needs the `dask` extra).
    executor: str = "local"
    executor_workers: Annotated[int, msgspec.Meta(ge=1, le=256, description="processes")] = 1
    # Validation gate (kaizen.loop.gate): one-sided paired test at gate_alpha on per-decision net
    # differences, deflated Sharpe >= gate_min_dsr counting every trial of the role.
    gate_alpha: Annotated[float, msgspec.Meta(gt=0, lt=0.5, description="test level")] = 0.05
    gate_min_dsr: Annotated[float, msgspec.Meta(ge=0, lt=1, description="probability")] = 0.95
    gate_min_decisions: Annotated[int, msgspec.Meta(ge=10, description="decisions")] = 200
    gate_test: Literal["dm", "bootstrap", "both"] = "both"
    gate_horizon: Annotated[int, msgspec.Meta(ge=1, description="bars")] = 1
    gate_bootstrap_reps: Annotated[int, msgspec.Meta(ge=99, description="resamples")] = 999
    gate_max_pbo: Annotated[float, msgspec.Meta(gt=0, le=1, description="probability")] | None = None
    # Drift monitor (kaizen.loop.drift): CUSUM on standardized residuals whose threshold
    # is calibrated to a mean of drift_arl0 decisions between false alarms (per role);
    # drift_threshold, when set, fixes the threshold (in warm-up sds) instead.
    drift_arl0: Annotated[float, msgspec.Meta(ge=10, description="decisions")] = 20_000.0
    drift_k: Annotated[float, msgspec.Meta(ge=0, le=3, description="standard deviations")] = 0.5
    drift_warmup: Annotated[int, msgspec.Meta(ge=10, description="decisions")] = 200
    drift_clip: Annotated[float, msgspec.Meta(gt=0, description="standard deviations")] = 4.0
    drift_threshold: Annotated[float, Meta(gt=0, description="standard deviations")] | None = None
    # The channels watched (kaizen.loop.loop): "calibration" (did the side the model leans to come
    # with the probability it gave it: kaizen.loop.loop.lean_pair) and "pnl" (on the decisions the rule trades, the gross return realized in the
    # trade's direction, with k sized to what the out-of-fold trades realized: the alarm is tuned to
    # the loss of the edge the model was promoted for). Both are referenced to the model's own
    # out-of-fold rows; drift_warmup applies only to a model without 200 of them.
    # Default: PnL alone. The calibration channel's bootstrap threshold is too low for the hit
    # rate's dependence (days-long runs of misses across four co-moving symbols): on an unseen seed
    # without a break (404, strength 0.24) it rolled a good model back twice, "realized below
    # expected", while the model's live hit rate (0.71, 0.79) was above its out-of-fold one (0.64).
    drift_channels: list[Literal["calibration", "pnl"]] = msgspec.field(default_factory=lambda: ["pnl"])
    # Both channels' residuals are oriented (positive: the model did better than it said). "lower"
    # alarms only when it does worse, the change a rollback undoes; "both" also when it does better
    # (a two-sided CUSUM: any miscalibration rolls back).
    drift_sides: Literal["lower", "both"] = "lower"

    @property
    def retrain_every_s(self) -> float:
        if self.retrain_every is not None:
            return duration_seconds(self.retrain_every)
        return (self.retrain_every_hours or 24.0) * 3600.0

    @property
    def shadow_s(self) -> float:
        if self.shadow_days is not None:
            return self.shadow_days * 86400.0
        return self.shadow_hours * 3600.0 if self.shadow_hours is not None else 7 * 86400.0


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
    """`kaizen run`: the process. SIGHUP reloads the keys kaizen.ops.reload lists as safe (risk
    limits, strategy thresholds, log level, flatten_on_stop); the others need a restart."""

    # the core of the event loop thread (the hot path); the process's other threads go elsewhere
    cpu_pin: Annotated[int, Meta(ge=-1, description="CPU index, -1: no pinning")] = -1
    duration_s: Annotated[float, Meta(ge=0, description="seconds, 0: until stopped")] = 0.0
    reconcile_every_s: Seconds = 30.0
    poll_fills_every_s: Seconds = 1.0
    # on SIGTERM/SIGINT (and at the end of duration_s): cancel open orders, then close positions
    flatten_on_stop: bool = True
    # the status/metrics HTTP endpoint on 127.0.0.1 (/status JSON, /metrics Prometheus);
    # 0: any free port (printed at start), -1: off
    status_port: Annotated[int, Meta(ge=-1, le=65_535, description="TCP port, 0: any free, -1: off")] = 0
    # Garbage collection after start-up: objects frozen (gc.freeze), automatic collection off, and a
    # young-generation collection every gc_every_s from a task between messages (a full one every
    # gc_full_every_s), so no collection ever starts inside a message. 0: automatic gc as usual.
    gc_every_s: Annotated[float, Meta(ge=0, le=3600, description="seconds, 0: automatic gc")] = 1.0
    gc_full_every_s: Annotated[float, Meta(gt=0, le=86_400, description="seconds")] = 60.0
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    # per-stage latency histograms (/metrics): ~0.3 µs per message for the Python timing wrappers
    stage_timing: bool = True


# --- policy: roles, variants and the Thompson-sampling portfolio (kaizen/policy) ------------------
Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=64)]
PriorParam = Annotated[float, Meta(gt=0.0, le=1e12, description="prior parameter")]


class PriorConfig(_Section):
    """Prior of a variant's reward per decision (bps, net of fees and funding).

    kind "normal_gamma": tau ~ Gamma(alpha, rate = alpha * scale_bps^2), mu | tau ~ N(mean,
    1 / (kappa tau)); `beta` is unused. kind "beta": Beta(alpha, beta) over the win rate; `mean`,
    `kappa` and `scale_bps` are unused. Why these defaults: ext/thompson.pyx."""

    mean: Annotated[float, Meta(ge=-10_000.0, le=10_000.0, description="basis points")] = 0.0
    kappa: PriorParam = 1.0
    alpha: PriorParam = 1.0
    scale_bps: PriorParam = 100.0
    beta: PriorParam = 1.0


class VariantConfig(_Section):
    """A trained model configuration competing for a role's decisions."""

    id: Name
    features: list[str] = []  # feature names the model reads (empty: the full surface)
    horizon_bars: Annotated[int, Meta(ge=1, le=10_000, description="bars")] = 4
    train_days: Annotated[int, Meta(ge=1, le=100_000, description="days")] = 365  # training window
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
    discount: Annotated[float, Meta(gt=0.0, le=1.0, description="per decision")] = 0.99  # per decision; memory 1/(1 - discount)
    prior: PriorConfig = msgspec.field(default_factory=PriorConfig)
    shadow_weight: Annotated[float, Meta(ge=0.0, le=1.0, description="weight")] = 0.25  # counterfactual rewards' weight
    # Retire a variant whose probability of being best stays below retire_threshold for
    # retire_window decisions, once it has min_sample weighted rewards.
    retire_threshold: Annotated[float, Meta(ge=0.0, lt=1.0, description="probability")] = 0.02
    retire_window: Annotated[int, Meta(ge=1, le=10_000_000, description="decisions")] = 500
    min_sample: Annotated[float, Meta(ge=0.0, le=1e9, description="weighted decisions")] = 100.0
    check_every: Annotated[int, Meta(ge=1, le=1_000_000, description="decisions")] = 10  # decisions between retirement checks
    prob_best_samples: Annotated[int, Meta(ge=100, le=1_000_000, description="samples")] = 1000
    # A new candidate enters with this prior and at most this share of the role's risk until it has
    # min_sample weighted rewards.
    candidate_prior: PriorConfig = msgspec.field(default_factory=PriorConfig)
    candidate_risk_share: Annotated[float, Meta(gt=0.0, le=1.0, description="fraction")] = 0.25
    beta_flat_value: Annotated[float, Meta(ge=0.0, le=1.0, description="win rate")] = 0.5  # kind "beta": flat's win rate
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1, description="seed")] = 0  # roles derive their bandit seeds from it
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
    router: RouterConfig = msgspec.field(default_factory=RouterConfig)
    models: ModelConfig = msgspec.field(default_factory=ModelConfig)
    backtest: BacktestConfig = msgspec.field(default_factory=BacktestConfig)
    exit: ExitConfig = msgspec.field(default_factory=ExitConfig)
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
    if cfg.venue.ws_url:
        from kaizen.market.routes import check_ws_base

        try:
            check_ws_base(cfg.venue.ws_url)
        except ValueError as exc:
            raise ConfigError(f"{source}: key 'venue.ws_url': {exc}") from None
    loop = cfg.loop
    if loop.retrain_every is not None and loop.retrain_every_hours is not None:
        raise ConfigError(f"{source}: give 'loop.retrain_every' or 'loop.retrain_every_hours', not both")
    if not loop.drift_channels or len(set(loop.drift_channels)) != len(loop.drift_channels):
        raise ConfigError(f"{source}: 'loop.drift_channels' must name each channel once, at least one")
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
    for key, value in _numeric_values(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
    ex = cfg.exit
    from kaizen.models.exit_rules import check_name

    try:
        check_name(ex.rule)
    except ConfigError as exc:
        raise ConfigError(f"{source}: key 'exit.rule': {exc}") from None
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
