"""Time bars built from the venue's event clock (not the wall clock), so live, paper and replay
close bars at the same event boundaries."""

from __future__ import annotations

import math

import msgspec


class Bar(msgspec.Struct, frozen=True):
    symbol: str
    open_time_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    buy_volume: float
    trades: int


class BarBuilder:
    """One symbol's bars. `on_trade` folds a trade in; `on_clock` closes bars whose end has passed.

    A bar with no trades carries the previous close forward (flat, zero volume) so the bar series
    has no holes.
    """

    __slots__ = ("symbol", "interval_ns", "_start", "_o", "_h", "_l", "_c", "_v", "_bv", "_n", "_last_close")

    def __init__(self, symbol: str, interval_s: float) -> None:
        self.symbol = symbol
        self.interval_ns = int(interval_s * 1e9)
        self._start = -1
        self._last_close = math.nan
        self._reset()

    def _reset(self) -> None:
        self._o = self._h = self._l = self._c = math.nan
        self._v = self._bv = 0.0
        self._n = 0

    def on_trade(self, ts_ns: int, price: float, qty: float, buyer_is_maker: bool) -> list[Bar]:
        closed = self.on_clock(ts_ns)
        if self._start < 0:
            self._start = ts_ns - ts_ns % self.interval_ns
        if self._n == 0:
            self._o = self._h = self._l = price
        else:
            if price > self._h:
                self._h = price
            if price < self._l:
                self._l = price
        self._c = price
        self._v += qty
        if not buyer_is_maker:  # the taker bought
            self._bv += qty
        self._n += 1
        return closed

    def on_clock(self, ts_ns: int) -> list[Bar]:
        if self._start < 0:
            return []
        closed: list[Bar] = []
        while ts_ns >= self._start + self.interval_ns:
            if self._n:
                bar = Bar(
                    self.symbol, self._start, self._o, self._h, self._l, self._c, self._v, self._bv, self._n
                )
            elif not math.isnan(self._last_close):
                c = self._last_close
                bar = Bar(self.symbol, self._start, c, c, c, c, 0.0, 0.0, 0)
            else:
                bar = None
            if bar is not None:
                closed.append(bar)
                self._last_close = bar.close
            self._start += self.interval_ns
            self._reset()
        return closed
