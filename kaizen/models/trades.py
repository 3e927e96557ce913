"""Simulated trades on historical bars: the one home of the offline fill and funding accounting
that the exit model's labels and the offline exit evaluation share.

Timing (a decision is taken at a bar close and filled at the next bar's open):
  - entry decided at the close of bar e, filled at open[e+1] * (1 + side * k);
  - bars_in_trade j = 1 .. H: the decision at the close of bar e+j; exiting there fills at
    open[e+j+1] * (1 - side * k); at j = H (max_hold) the trade is closed regardless;
  - k = half_spread + slippage (paid on each taker fill), the taker fee on each fill's notional;
  - funding: the position pays side * rate_T * price_T / entry_price (per unit of entry notional)
    for every settlement T with entry_fill_time < T <= exit_fill_time (fills happen just after a
    bar opens, so a settlement at the entry bar's open is not paid and one at the exit bar's open
    is), rate_T the rate actually settled at T (the fundingRate data), price_T the open of the bar
    starting at T (mark price where the data has it would differ by a fraction of a basis point).

`value_matrix` gives V[i, j-1], the net return of trade i (per unit of entry notional) when the
exit decision is taken at bars_in_trade j. Every exit rule picks one j per trade; the hindsight
oracle takes the best; the exit model's label at j is V[i, j] - V[i, j-1], exactly the net value
of holding one more interval (same fee, a different price, and any funding settled inside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kaizen.engine.strategy import Costs
from kaizen.models.features import FEATURE_NAMES

VOL_FEATURE = "vol_rv_24"  # the per-bar vol the engine puts in BarContext.vol


@dataclass
class Market:
    """One symbol's bars with everything a decision at a bar close may see, plus the funding
    settlements (for the accounting). Arrays are per bar, in time order."""

    symbol: str
    interval_ms: int
    open_time: np.ndarray  # int64 ms
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    X: np.ndarray  # (n, len(FEATURE_NAMES)) features at each bar close
    funding_rate: np.ndarray  # latest settled rate at the bar close (nan before the first)
    edge: np.ndarray  # signal's expected gross return over its horizon at the close (nan: none)
    settle_t: np.ndarray  # int64 ms, funding settlement times (sorted)
    settle_rate: np.ndarray  # the rate settled at each time

    def __post_init__(self) -> None:
        self.open_time = np.asarray(self.open_time, np.int64)
        # settlement stamps carry a few ms of jitter (08:00:00.004): on the second grid
        st = np.asarray(self.settle_t, np.int64)
        self.settle_t = (st + 500) // 1000 * 1000
        self.settle_rate = np.asarray(self.settle_rate, np.float64)
        self.vol = np.asarray(self.X[:, FEATURE_NAMES.index(VOL_FEATURE)], np.float64)

    def __len__(self) -> int:
        return len(self.open_time)

    @property
    def close_time(self) -> np.ndarray:
        return self.open_time + self.interval_ms

    def next_funding_ms(self) -> np.ndarray:
        """Per bar: the first settlement strictly after the bar's close (0 when none is known)."""
        ct = self.close_time
        i = np.searchsorted(self.settle_t, ct, "right")
        out = np.zeros(len(ct), np.int64)
        ok = i < len(self.settle_t)
        out[ok] = self.settle_t[i[ok]]
        return out

    def funding_due(self) -> np.ndarray:
        """Per bar: 1.0 when a settlement falls inside the next interval (close, close + interval],
        i.e. holding one more interval instead of exiting at the next open pays it."""
        nf = self.next_funding_ms()
        ct = self.close_time
        return ((nf > ct) & (nf <= ct + self.interval_ms)).astype(np.float64)


@dataclass
class Trades:
    """Simulated trades: entries (decision bar, side), all on bars with H + 1 contiguous bars after."""

    sym: np.ndarray  # index into the markets list
    entry_bar: np.ndarray  # e: the decision bar (fill at open[e+1])
    side: np.ndarray  # +1 / -1
    entry_price: np.ndarray  # the entry fill price (spread and slippage included)
    entry_vol: np.ndarray  # per-bar vol at the entry decision
    t_entry: np.ndarray  # decision time (close of bar e), ms
    max_hold: int
    dropped_gap: int = 0

    def __len__(self) -> int:
        return len(self.sym)

    def subset(self, mask: np.ndarray) -> Trades:
        return Trades(
            self.sym[mask],
            self.entry_bar[mask],
            self.side[mask],
            self.entry_price[mask],
            self.entry_vol[mask],
            self.t_entry[mask],
            self.max_hold,
            self.dropped_gap,
        )


def signal_onsets(side: np.ndarray, open_time: np.ndarray, interval_ms: int) -> np.ndarray:
    """Bars where the signal starts supporting a side (it did not at the previous bar, or the
    previous bar is missing): one entry per run of the signal."""
    s = np.asarray(side)
    prev = np.zeros(len(s), s.dtype)
    prev[1:] = s[:-1]
    contiguous = np.ones(len(s), bool)
    contiguous[1:] = np.diff(open_time) == interval_ms
    prev[~contiguous] = 0
    return np.flatnonzero((s != 0) & (s != prev))


def make_trades(
    markets: list[Market],
    sides: list[np.ndarray],
    costs: Costs,
    max_hold: int,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Trades:
    """One trade per signal onset whose decision time (bar close) is in [start_ms, end_ms) and
    which has max_hold + 1 contiguous bars after its decision bar (others counted as dropped)."""
    k = costs.half_spread + costs.slippage
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("sym", "e", "side", "px", "vol", "t")}
    dropped = 0
    for i, (m, s) in enumerate(zip(markets, sides, strict=True)):
        e = signal_onsets(s, m.open_time, m.interval_ms)
        ct = m.close_time[e]
        keep = np.ones(len(e), bool)
        if start_ms is not None:
            keep &= ct >= start_ms
        if end_ms is not None:
            keep &= ct < end_ms
        e = e[keep]
        last = e + max_hold + 1
        inside = last < len(m)
        ok = np.zeros(len(e), bool)
        ok[inside] = (m.open_time[last[inside]] - m.open_time[e[inside]]) == (max_hold + 1) * m.interval_ms
        dropped += int((~ok).sum())
        e = e[ok]
        sd = np.asarray(s[e], np.int64)
        cols["sym"].append(np.full(len(e), i, np.int32))
        cols["e"].append(e.astype(np.int64))
        cols["side"].append(sd)
        cols["px"].append(m.open[e + 1] * (1.0 + sd * k))
        cols["vol"].append(m.vol[e])
        cols["t"].append(m.close_time[e])
    cat = {c: np.concatenate(v) if v else np.zeros(0) for c, v in cols.items()}
    order = np.lexsort((cat["sym"], cat["t"]))
    return Trades(
        cat["sym"][order].astype(np.int32),
        cat["e"][order].astype(np.int64),
        cat["side"][order].astype(np.int64),
        cat["px"][order].astype(np.float64),
        cat["vol"][order].astype(np.float64),
        cat["t"][order].astype(np.int64),
        max_hold,
        dropped,
    )


def bar_index(trades: Trades) -> np.ndarray:
    """(n, H) market bar index of the decision at bars_in_trade j = 1..H."""
    return trades.entry_bar[:, None] + np.arange(1, trades.max_hold + 1)[None, :]


def value_matrix(markets: list[Market], trades: Trades, costs: Costs) -> tuple[np.ndarray, np.ndarray]:
    """(V, paid): V[i, j-1] the net return per unit of entry notional of trade i exited at
    bars_in_trade j; paid[i, j-1] the funding part of it (paid by the trade, + = a cost)."""
    n, H = len(trades), trades.max_hold
    V = np.empty((n, H))
    P = np.empty((n, H))
    k = costs.half_spread + costs.slippage
    fee = costs.taker_fee
    for si, m in enumerate(markets):
        rows = np.flatnonzero(trades.sym == si)
        if len(rows) == 0:
            continue
        e = trades.entry_bar[rows]
        s = trades.side[rows].astype(np.float64)[:, None]
        pe = trades.entry_price[rows][:, None]
        fill_bar = e[:, None] + np.arange(2, H + 2)[None, :]  # exit fill at open[e+j+1]
        px = m.open[fill_bar] * (1.0 - s * k)
        gross = s * (px - pe) / pe
        fees = fee * (1.0 + px / pe)
        pay = _funding_paid(m, e, fill_bar, s[:, 0], pe[:, 0])
        V[rows] = gross - fees - pay
        P[rows] = pay
    return V, P


def _funding_paid(
    m: Market, e: np.ndarray, fill_bar: np.ndarray, side: np.ndarray, pe: np.ndarray
) -> np.ndarray:
    """Funding paid (per unit entry notional) between the entry fill (open[e+1]) and each exit fill."""
    st, sr = m.settle_t, m.settle_rate
    if len(st) == 0:
        return np.zeros(fill_bar.shape)
    # price at each settlement: the open of the bar starting at T (nan if T is not a bar open)
    pos = np.searchsorted(m.open_time, st)
    pos_c = np.minimum(pos, len(m) - 1)
    price_T = np.where(m.open_time[pos_c] == st, m.open[pos_c], np.nan)
    t_in = m.open_time[e + 1]
    first = np.searchsorted(st, t_in, "right")  # settlements after the entry fill
    last = np.searchsorted(st, m.open_time[fill_bar], "right")  # up to and including the exit fill
    # amount per settlement for a long of unit notional at price 1: rate * price_T
    amt = np.nan_to_num(sr * price_T, nan=0.0)
    cum = np.concatenate(([0.0], np.cumsum(amt)))
    paid = cum[last] - cum[first][:, None]
    return side[:, None] * paid / pe[:, None]
