"""The walk-forward rule in one place: at simulated time T, nothing after T is visible.

`DataView` is the only door a replay (`kaizen backtest`, `kaizen exit eval`, the loop on the replay
clock) has to historical data. The driver moves its clock forward; every read names how far it
reads and is refused with `LookaheadError` when that is after the clock:

- `bar_at(symbol, close_ms)`, `bars(symbol, until_ms)`: closed bars (close time <= T);
- `funding_events(until_ms)`: settlements with calc_time <= T;
- `dataset(until_ms, since_ms)`: a `Dataset` of the bars closed by T (what a trainer may fit on;
  features and labels built from it cannot reach past T);
- `open_at(symbol, t_ms)`: the first trade price of the bar opening at t (known at its first
  instant: the fill model of the backtest venue, never handed to a strategy).
"""

from __future__ import annotations

import bisect

import numpy as np

from kaizen.errors import KaizenError
from kaizen.market.data import Dataset, Klines, SymbolData


class LookaheadError(KaizenError):
    """A read of data after the simulated clock."""


class DataView:
    def __init__(self, ds: Dataset, now_ms: int = -(2**62)) -> None:
        self._ds = ds
        self._now = int(now_ms)
        self.interval_ms = next(iter(ds.symbols.values())).klines.interval_ms
        self.symbols = list(ds.symbols)
        # Python-side indexes: a replay reads one bar per symbol per step, so O(1) dict lookups and
        # plain floats beat numpy scalar access by an order of magnitude.
        self._row_by_close: dict[str, dict[int, int]] = {}
        self._row_by_open: dict[str, dict[int, int]] = {}
        self._rows: dict[str, list[tuple[float, float, float, float, float, float]]] = {}
        for s, d in ds.symbols.items():
            k = d.klines
            ot = k.open_time.tolist()
            self._row_by_open[s] = {t: i for i, t in enumerate(ot)}
            self._row_by_close[s] = {t + k.interval_ms: i for i, t in enumerate(ot)}
            self._rows[s] = list(
                zip(
                    k.open.tolist(),
                    k.high.tolist(),
                    k.low.tolist(),
                    k.close.tolist(),
                    k.volume.tolist(),
                    d.mark_close.tolist(),
                    strict=True,
                )
            )
        ev = sorted(
            (int(t), s, float(r))
            for s, d in ds.symbols.items()
            for t, r in zip(d.funding_time.tolist(), d.funding_rate.tolist(), strict=True)
        )
        self._fund = ev
        self._fund_t = [e[0] for e in ev]

    # --- the clock ---------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        return self._now

    def advance(self, t_ms: int) -> None:
        if t_ms < self._now:
            raise ValueError(f"the replay clock cannot go back ({t_ms} < {self._now})")
        self._now = int(t_ms)

    def _check(self, until_ms: int, what: str) -> None:
        if until_ms > self._now:
            raise LookaheadError(f"{what} up to {until_ms} read at simulated time {self._now}: data after T")

    # --- reads ---------------------------------------------------------------------------------------
    def bar_index(self, symbol: str, close_ms: int) -> int:
        """Row of `symbol`'s bar closing exactly at close_ms, or -1."""
        if close_ms > self._now:
            self._check(close_ms, f"{symbol} bar")
        return self._row_by_close[symbol].get(close_ms, -1)

    def bar_at(self, symbol: str, close_ms: int) -> tuple[float, float, float, float, float, float] | None:
        """(open, high, low, close, volume, mark_close) of the bar closing at close_ms, or None."""
        if close_ms > self._now:
            self._check(close_ms, f"{symbol} bar")
        i = self._row_by_close[symbol].get(close_ms, -1)
        return self._rows[symbol][i] if i >= 0 else None

    def open_at(self, symbol: str, t_ms: int) -> float | None:
        """Open price of the bar that opens at t_ms (known at t), or None (no bar opens then)."""
        if t_ms > self._now:
            self._check(t_ms, f"{symbol} open")
        i = self._row_by_open[symbol].get(t_ms, -1)
        return self._rows[symbol][i][0] if i >= 0 else None

    def bars(self, symbol: str, until_ms: int | None = None) -> Klines:
        until = self._now if until_ms is None else until_ms
        self._check(until, f"{symbol} bars")
        k = self._ds.symbols[symbol].klines
        return k.slice_time(None, until - k.interval_ms + 1)

    def funding_events(self, until_ms: int | None = None, since_ms: int | None = None) -> list[tuple[int, str, float]]:
        """(calc_time, symbol, rate) with since < calc_time <= until, in time order."""
        until = self._now if until_ms is None else until_ms
        self._check(until, "funding")
        lo = 0 if since_ms is None else bisect.bisect_right(self._fund_t, since_ms)
        hi = bisect.bisect_right(self._fund_t, until)
        return self._fund[lo:hi]

    def dataset(self, until_ms: int | None = None, since_ms: int | None = None) -> Dataset:
        """The bars closed by `until` (default: now), opened at or after `since`, with the funding
        settled and marks known by each bar's close."""
        until = self._now if until_ms is None else until_ms
        self._check(until, "dataset")
        out: dict[str, SymbolData] = {}
        for s, d in self._ds.symbols.items():
            k = d.klines
            lo = 0 if since_ms is None else int(np.searchsorted(k.open_time, since_ms, "left"))
            hi = int(np.searchsorted(k.open_time + k.interval_ms, until, "right"))
            if hi <= lo:
                continue
            keep = d.funding_time <= until
            out[s] = SymbolData(
                k.slice_time(int(k.open_time[lo]), int(k.open_time[hi - 1]) + 1),
                d.funding[lo:hi],
                d.mark_close[lo:hi],
                d.funding_time[keep],
                d.funding_rate[keep],
            )
        return Dataset(self._ds.interval, out, list(self._ds.report))


def view_dataset(view: DataView) -> Dataset:
    """The whole dataset behind a view, for building another view with its own clock (a trainer
    that runs at --start before the replay's clock gets there). Never hand it to a consumer."""
    return view._ds
