"""The strategy seam: what the engine hands a strategy at each bar close, and what it gets back.

The engine owns bars, features, positions, sizing, risk and orders; a strategy only maps a bar's
context to a target exposure. The same objects serve live, paper and backtest (one decision path).

- `BarContext` is built once per symbol and refilled at every bar close (no allocation per bar);
  `features` is a view of the feature engine's vector, valid only during the call.
- `PositionState` is the engine's view of the open position (fills-based), updated per bar; the
  exit layer (issue 14) reads it.
- A `Strategy` returns a `Target`: exposure in [-1, 1] as a fraction of the symbol's risk budget
  (the engine sizes it into a quantity), the model output behind it, the reason, and any extra
  lineage records it wants written (bandit updates, regime changes ...).
- An `ExitRule` is asked at every bar of every open position whether to hold one more interval.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import msgspec
import numpy as np

NAN = math.nan


class Costs(msgspec.Struct, frozen=True):
    """Execution costs as fractions of notional (0.0005 = 5 bp)."""

    taker_fee: float = 0.0005
    maker_fee: float = 0.0002
    half_spread: float = 0.0001  # paid on each taker fill
    slippage: float = 0.0001  # paid on each taker fill

    @property
    def taker_side(self) -> float:
        """Cost of one taker fill (fee + half spread + slippage)."""
        return self.taker_fee + self.half_spread + self.slippage

    @property
    def round_trip(self) -> float:
        """Cost of entering and leaving with taker orders."""
        return 2.0 * self.taker_side


class PositionState:
    """One symbol's open position as the engine sees it (from fills), with the excursions the
    exit layer needs. Returns are fractional and signed by the position (+ = in our favour)."""

    __slots__ = (
        "side",
        "qty",
        "entry_price",
        "entry_ts_ns",
        "bars_in_trade",
        "mfe",
        "mae",
        "entry_regime",
        "entry_vol",
        "last_return",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.side = 0  # +1 long, -1 short, 0 flat
        self.qty = 0.0  # signed base units
        self.entry_price = NAN
        self.entry_ts_ns = 0
        self.bars_in_trade = 0
        self.mfe = 0.0  # max favourable excursion since entry (>= 0)
        self.mae = 0.0  # max adverse excursion since entry (<= 0)
        self.entry_regime = -1
        self.entry_vol = NAN
        self.last_return = 0.0  # return since entry at the latest close

    def unrealized_return(self, price: float) -> float:
        if self.side == 0 or not self.entry_price > 0:
            return 0.0
        return self.side * (price / self.entry_price - 1.0)

    def open(
        self, side: int, qty: float, price: float, ts_ns: int, regime: int = -1, vol: float = NAN
    ) -> None:
        """A position was opened (filled) at `price`: excursions and the bar count start from here."""
        self.side = side
        self.qty = qty
        self.entry_price = price
        self.entry_ts_ns = ts_ns
        self.bars_in_trade = 0
        self.mfe = 0.0
        self.mae = 0.0
        self.entry_regime = regime
        self.entry_vol = vol
        self.last_return = 0.0

    def mark(self, close: float) -> None:
        """Fold in a bar close of the open position (the one home of the per-bar update the exit
        layer relies on): one more bar in the trade, the return since entry at this close, and the
        excursions measured on closes (not intrabar highs/lows, which a bar-close decision cannot
        act on)."""
        if self.side == 0:
            return
        self.bars_in_trade += 1
        r = self.unrealized_return(close)
        self.last_return = r
        if r > self.mfe:
            self.mfe = r
        if r < self.mae:
            self.mae = r


class BarContext:
    """Everything a strategy may look at when a bar closes. Reused per symbol; do not keep it."""

    __slots__ = (
        "symbol",
        "sid",
        "ts_ns",
        "open_time_ns",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "features",
        "inputs",
        "names",
        "mark",
        "funding_rate",
        "next_funding_ms",
        "vol",
        "position",
        "regime",
        "regime_probs",
        "costs",
        "bars_per_day",
        "status",
        "budget",
        "signal_edge",
    )

    def __init__(self, symbol: str, sid: int, names: list[str], costs: Costs, bars_per_day: float) -> None:
        self.symbol = symbol
        self.sid = sid
        self.names = names
        self.costs = costs
        self.bars_per_day = bars_per_day
        self.ts_ns = 0  # bar close time = decision time
        self.open_time_ns = 0
        self.open = self.high = self.low = self.close = NAN
        self.volume = 0.0
        self.features: np.ndarray = np.full(len(names), NAN)
        # the features followed by the regime context (kaizen.models.features.INPUT_NAMES): what a
        # model trained with `[models] regime_context` reads; the engine fills it at every bar
        self.inputs: np.ndarray = np.full(len(names), NAN)
        self.mark = NAN
        self.funding_rate = 0.0  # latest settled (or predicted next) rate, fraction per interval
        self.next_funding_ms = 0
        self.vol = NAN  # per-bar realized vol (vol_rv_24)
        self.position = PositionState()
        self.regime = -1  # detector's regime id (-1: none configured)
        self.regime_probs: np.ndarray | None = None
        self.status = "valid"  # market data status of the symbol
        self.budget = NAN  # notional (USDT) of exposure 1 before vol scaling: capital / symbols
        # The signal's expected gross return over its horizon, long-positive (fraction; see
        # kaizen.models.edge.EdgeCalibration.edge), for the exit layer; written at this bar by the
        # strategy (or by the engine from its Target) before the exit rule is asked; nan when the
        # strategy does not model it.
        self.signal_edge = NAN

    @property
    def interval_ms(self) -> int:
        return int(round(86_400_000 / self.bars_per_day))


class Target(msgspec.Struct, kw_only=True):
    """A strategy's answer at a bar close."""

    exposure: float  # desired position, fraction of the symbol's risk budget, in [-1, 1]
    reason: str
    value: float = NAN  # the model output behind it (probability, signal)
    edge: float = NAN  # expected net return over the horizon (fraction), nan when not modelled
    model: str = ""  # version that produced it
    role: str = ""
    # Absolute quantity instead of a sized exposure (buy-and-hold keeps the quantity it bought).
    qty: float | None = None
    records: list[Any] = []  # extra lineage records (msgspec Structs from kaizen.lineage.records)


class ExitDecision(msgspec.Struct, kw_only=True):
    exit: bool
    hold_value: float = NAN  # predicted net value of holding one more interval (fraction)
    reason: str = ""
    model: str = ""
    # What the rule compared the hold value against: the cost of staying one more interval
    # (fraction of entry notional; nan for rules without a hold value).
    cost: float = NAN
    # The inputs the rule used (names, values): a view valid until the rule's next on_bar call, so
    # the engine writes the record (`record()`) at the same bar; None for rules that use none.
    names: Any = None
    values: Any = None

    def record(
        self,
        id: int,
        ts: int,
        symbol: str,
        rule: str,
        position: PositionState,
        parents: list[int] | None = None,
    ) -> Any:
        """The lineage record of this decision (kaizen.lineage.records.ExitRecord), copying the
        inputs out of the rule's buffers."""
        from kaizen.lineage.records import ExitRecord

        p = position
        return ExitRecord(
            id=id,
            ts=ts,
            parents=list(parents or ()),
            model=self.model,
            symbol=symbol,
            rule=rule,
            exit=self.exit,
            hold_value=float(self.hold_value),
            cost=float(self.cost),
            reason=self.reason,
            side=int(p.side),
            bars_in_trade=int(p.bars_in_trade),
            entry_price=float(p.entry_price),
            unrealized=float(p.last_return),
            mfe=float(p.mfe),
            mae=float(p.mae),
            entry_regime=int(p.entry_regime),
            entry_vol=float(p.entry_vol),
            names=list(self.names) if self.names is not None else [],
            values=[float(v) for v in self.values] if self.values is not None else [],
        )


@runtime_checkable
class Strategy(Protocol):
    name: str
    version: str

    def decide(self, ctx: BarContext) -> Target: ...


@runtime_checkable
class ExitRule(Protocol):
    """Asked at every bar close of an open position (ctx.position.side != 0)."""

    name: str

    def on_bar(self, ctx: BarContext) -> ExitDecision: ...


class Clock(Protocol):
    """The mode's clock: the venue's event time live/paper, the data's time in a backtest."""

    def now_ns(self) -> int: ...
