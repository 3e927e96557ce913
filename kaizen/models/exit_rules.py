"""Baseline exit rules (the yardsticks the learned exit must beat) and the rule factory.

Every rule implements `kaizen.engine.strategy.ExitRule`: at each bar close of an open position,
`on_bar(ctx)` answers hold or exit from what is known at that close (the position state the
engine keeps with `PositionState.mark`, the bar's vol, the signal's current edge). Exits fill at
the next bar's open like every other decision: a barrier is checked on the close, never filled at
the barrier price inside the bar.

Barriers are in volatility units: u = entry_vol * sqrt(horizon_bars), the per-bar vol at entry
scaled to the signal's horizon. Every rule closes the trade at `max_hold_bars` (a risk control
shared by all rules, the learned one included).

Rule names are also their config values (`[exit] rule`), parameters in the name:
  signal               the strategy's own exit: the signal no longer clears the entry cost for
                       the held side (side * E - round trip - expected funding <= 0)
  signal_zero          the signal no longer points the held side's way (side * E <= 0)
  time_N               exit after N bars (N = the signal's horizon: the label's hold)
  tpsl_TP_SL           take profit at +TP u, stop at -SL u
  trail_A_D            trailing stop: once MFE >= A u, exit when the return falls D u below MFE
  triple_TP_SL_N       triple barrier: take profit, stop loss and time N together
  learned              the exit model (kaizen.models.exit.LearnedExit)
The hindsight oracle ("oracle") needs future prices: it exists only inside the evaluation
harness (it is built from a `FutureExits` the harness computes) and `make_rule` refuses it.
"""

from __future__ import annotations

import math
from typing import Any

from kaizen.engine.strategy import BarContext, ExitDecision, PositionState
from kaizen.errors import ConfigError
from kaizen.models.edge import net_edge

NAN = math.nan
ORACLE = "oracle"
LEARNED = "learned"


class BaseExit:
    """Shared parts: the vol unit and the max-hold cap."""

    live = True  # may be selected as a live rule
    name = "base"

    def __init__(self, horizon_bars: int, max_hold_bars: int) -> None:
        if horizon_bars < 1 or max_hold_bars < 1:
            raise ConfigError("exit rule: horizon_bars and max_hold_bars must be >= 1")
        self.horizon_bars = horizon_bars
        self.max_hold_bars = max_hold_bars
        self._sqrt_h = math.sqrt(horizon_bars)

    def unit(self, pos: PositionState) -> float:
        v = pos.entry_vol
        return v * self._sqrt_h if v > 0 else NAN

    def on_bar(self, ctx: BarContext) -> ExitDecision:
        pos = ctx.position
        if pos.bars_in_trade >= self.max_hold_bars:
            return ExitDecision(exit=True, reason="max_hold")
        return self.decide(ctx, pos)

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        raise NotImplementedError


_HOLD = "hold"


class TimeExit(BaseExit):
    def __init__(self, bars: int, horizon_bars: int, max_hold_bars: int) -> None:
        super().__init__(horizon_bars, max_hold_bars)
        if bars < 1:
            raise ConfigError(f"exit rule time_{bars}: bars must be >= 1")
        self.bars = bars
        self.name = f"time_{bars}"

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        if pos.bars_in_trade >= self.bars:
            return ExitDecision(exit=True, reason="time")
        return ExitDecision(exit=False, reason=_HOLD)


class TakeProfitStopLoss(BaseExit):
    def __init__(self, tp: float, sl: float, horizon_bars: int, max_hold_bars: int) -> None:
        super().__init__(horizon_bars, max_hold_bars)
        if not (tp > 0 and sl > 0):
            raise ConfigError(f"exit rule tpsl_{tp:g}_{sl:g}: barriers must be > 0")
        self.tp, self.sl = tp, sl
        self.name = f"tpsl_{tp:g}_{sl:g}"

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        u = self.unit(pos)
        r = pos.last_return
        if r >= self.tp * u:
            return ExitDecision(exit=True, reason="take_profit")
        if r <= -self.sl * u:
            return ExitDecision(exit=True, reason="stop_loss")
        return ExitDecision(exit=False, reason=_HOLD)


class TrailingStop(BaseExit):
    def __init__(self, activation: float, distance: float, horizon_bars: int, max_hold_bars: int) -> None:
        super().__init__(horizon_bars, max_hold_bars)
        if not (activation >= 0 and distance > 0):
            raise ConfigError(
                f"exit rule trail_{activation:g}_{distance:g}: need activation >= 0, distance > 0"
            )
        self.activation, self.distance = activation, distance
        self.name = f"trail_{activation:g}_{distance:g}"

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        u = self.unit(pos)
        if pos.mfe >= self.activation * u and pos.last_return <= pos.mfe - self.distance * u:
            return ExitDecision(exit=True, reason="trailing_stop")
        return ExitDecision(exit=False, reason=_HOLD)


class TripleBarrier(BaseExit):
    def __init__(self, tp: float, sl: float, bars: int, horizon_bars: int, max_hold_bars: int) -> None:
        super().__init__(horizon_bars, max_hold_bars)
        if not (tp > 0 and sl > 0 and bars >= 1):
            raise ConfigError(f"exit rule triple_{tp:g}_{sl:g}_{bars}: barriers > 0 and bars >= 1")
        self.tp, self.sl, self.bars = tp, sl, bars
        self.name = f"triple_{tp:g}_{sl:g}_{bars}"

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        u = self.unit(pos)
        r = pos.last_return
        if r >= self.tp * u:
            return ExitDecision(exit=True, reason="take_profit")
        if r <= -self.sl * u:
            return ExitDecision(exit=True, reason="stop_loss")
        if pos.bars_in_trade >= self.bars:
            return ExitDecision(exit=True, reason="time")
        return ExitDecision(exit=False, reason=_HOLD)


class SignalExit(BaseExit):
    """The strategy's own exit, from ctx.signal_edge (the edge the strategy computed at this bar).
    An unknown edge (nan) holds: the rule has nothing to act on."""

    def __init__(self, horizon_bars: int, max_hold_bars: int, interval_ms: int, zero: bool = False) -> None:
        super().__init__(horizon_bars, max_hold_bars)
        self.zero = zero
        self.hold_hours = horizon_bars * interval_ms / 3_600_000
        self.name = "signal_zero" if zero else "signal"

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        e = ctx.signal_edge
        if not e == e:
            return ExitDecision(exit=False, reason="no_signal")
        if self.zero:
            v = pos.side * e
        else:
            v = net_edge(pos.side, e, ctx.costs, ctx.funding_rate, self.hold_hours)
        if v <= 0:
            return ExitDecision(exit=True, hold_value=v, reason="signal")
        return ExitDecision(exit=False, hold_value=v, reason=_HOLD)


class FutureExits:
    """The hindsight answer: for each trade, keyed by (symbol, entry fill time ns), the bar count
    at which exiting was best. Computed by the evaluation harness from prices after the entry; no
    live component can provide one."""

    def __init__(self, best_bar: dict[tuple[str, int], int]) -> None:
        self._best = dict(best_bar)

    def best_bar(self, symbol: str, entry_ts_ns: int) -> int:
        try:
            return self._best[(symbol, entry_ts_ns)]
        except KeyError:
            raise KeyError(
                f"hindsight oracle: no future prices for {symbol} entry at {entry_ts_ns}"
            ) from None


class HindsightOracle(BaseExit):
    """Upper bound: exits at the bar that was best with hindsight (reported, never traded)."""

    live = False
    name = ORACLE

    def __init__(self, future: FutureExits, horizon_bars: int, max_hold_bars: int) -> None:
        super().__init__(horizon_bars, max_hold_bars)
        if not isinstance(future, FutureExits):
            raise TypeError("HindsightOracle needs the evaluation harness's FutureExits")
        self.future = future

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        if pos.bars_in_trade >= self.future.best_bar(ctx.symbol, pos.entry_ts_ns):
            return ExitDecision(exit=True, reason="hindsight")
        return ExitDecision(exit=False, reason=_HOLD)


def baseline_names(horizon_bars: int) -> list[str]:
    """The baseline grid (every one is a trial for the deflated Sharpe ratio). Chosen a priori: a
    few barrier pairs around one horizon's vol, not fitted to any data."""
    h = horizon_bars
    return [
        "signal",
        "signal_zero",
        f"time_{h}",
        f"time_{2 * h}",
        "tpsl_1_1",
        "tpsl_2_1",
        "tpsl_1_2",
        "tpsl_2_2",
        "trail_0.5_0.5",
        "trail_1_0.5",
        "trail_1_1",
        f"triple_1_1_{h}",
        f"triple_2_1_{h}",
        f"triple_2_2_{h}",
    ]


def _nums(name: str, parts: list[str], n: int) -> list[float]:
    if len(parts) != n:
        raise ConfigError(f"exit rule {name!r}: expected {n} parameter(s) after the kind")
    try:
        out = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"exit rule {name!r}: parameters must be numbers") from None
    if not all(math.isfinite(x) for x in out):
        raise ConfigError(f"exit rule {name!r}: parameters must be finite")
    return out


def make_rule(
    name: str,
    *,
    horizon_bars: int,
    max_hold_bars: int,
    interval_ms: int = 3_600_000,
    exit_model: Any = None,
    hard_stop_vol: float = 3.0,
    margin: float | None = None,
) -> BaseExit:
    """A live-selectable exit rule from its name (see the module doc); bad names are ConfigErrors.
    "learned" needs `exit_model` (kaizen.models.exit.ExitModel)."""
    kind, *parts = name.split("_") if name else [""]
    if name == ORACLE:
        raise ConfigError(
            "exit rule 'oracle' is the hindsight upper bound (it needs future prices): evaluation only, "
            "never a live rule"
        )
    if name == LEARNED:
        if exit_model is None:
            raise ConfigError("exit rule 'learned' needs a trained exit model ([exit] model_dir)")
        from kaizen.models.exit import LearnedExit

        return LearnedExit(
            exit_model, hard_stop_vol=hard_stop_vol, max_hold_bars=max_hold_bars, margin=margin
        )
    if name in ("signal", "signal_zero"):
        return SignalExit(horizon_bars, max_hold_bars, interval_ms, zero=name == "signal_zero")
    if kind == "time":
        (bars,) = _nums(name, parts, 1)
        if bars != int(bars):
            raise ConfigError(f"exit rule {name!r}: bars must be an integer")
        return TimeExit(int(bars), horizon_bars, max_hold_bars)
    if kind == "tpsl":
        tp, sl = _nums(name, parts, 2)
        return TakeProfitStopLoss(tp, sl, horizon_bars, max_hold_bars)
    if kind == "trail":
        a, d = _nums(name, parts, 2)
        return TrailingStop(a, d, horizon_bars, max_hold_bars)
    if kind == "triple":
        tp, sl, bars = _nums(name, parts, 3)
        if bars != int(bars):
            raise ConfigError(f"exit rule {name!r}: bars must be an integer")
        return TripleBarrier(tp, sl, int(bars), horizon_bars, max_hold_bars)
    raise ConfigError(
        f"exit rule {name!r} unknown (learned, signal, signal_zero, time_N, tpsl_TP_SL, trail_A_D, "
        "triple_TP_SL_N)"
    )


def check_name(name: str) -> None:
    """Raise ConfigError unless `name` is a live-selectable rule (config validation); "strategy"
    (no exit layer: the strategy's own targets govern) is the engine's default."""
    if name not in (LEARNED, "strategy"):
        make_rule(name, horizon_bars=1, max_hold_bars=1)
