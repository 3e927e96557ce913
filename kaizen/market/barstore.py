"""The loop's history in live and paper: stored bars (the archive, or a generated market) plus every
bar the engine closes from then on, growing. `view(now_ms)` hands the loop a `DataView` whose clock
is now, so training live follows the same walk-forward rule as in a backtest.
"""

from __future__ import annotations

import math

import numpy as np

from kaizen.market.data import Dataset, Klines, SymbolData
from kaizen.market.view import DataView


class BarStore:
    def __init__(
        self, symbols: list[str], interval_ms: int, history: Dataset | None = None, max_bars: int = 200_000
    ) -> None:
        self.symbols = list(symbols)
        self.interval_ms = int(interval_ms)
        self.max_bars = max_bars
        self._rows: dict[str, list[tuple[float, ...]]] = {s: [] for s in self.symbols}
        self._funding: dict[str, list[tuple[int, float]]] = {s: [] for s in self.symbols}
        if history is not None:
            for s, d in history.symbols.items():
                if s not in self._rows:
                    continue
                k = d.klines
                self._rows[s] = list(
                    zip(k.open_time.tolist(), k.open.tolist(), k.high.tolist(), k.low.tolist(), k.close.tolist(),
                        k.volume.tolist(), d.funding.tolist(), d.mark_close.tolist(), strict=True)
                )  # fmt: skip
                self._funding[s] = list(zip(d.funding_time.tolist(), d.funding_rate.tolist(), strict=True))
        self._cache: tuple[int, Dataset] | None = None
        self._version = 0

    def add_bar(
        self, symbol: str, open_time_ms: int, o: float, h: float, lo: float, c: float, v: float,
        funding_rate: float = math.nan, mark: float = math.nan,
    ) -> None:  # fmt: skip
        rows = self._rows.get(symbol)
        if rows is None or (rows and open_time_ms <= rows[-1][0]):
            return  # unknown symbol, or not after the last bar (a replayed or duplicate bar)
        rows.append((open_time_ms, o, h, lo, c, v, funding_rate, mark))
        if len(rows) > self.max_bars:
            del rows[: len(rows) - self.max_bars]
        self._version += 1

    def add_funding(self, symbol: str, t_ms: int, rate: float) -> None:
        f = self._funding.get(symbol)
        if f is not None and (not f or t_ms > f[-1][0]) and math.isfinite(rate):
            f.append((int(t_ms), float(rate)))
            self._version += 1

    def drop_from(self, t_ms: int) -> int:
        """Forget stored bars opening at or after `t_ms` and settlements from it (history that runs
        past the live clock, e.g. an archive replayed against the simulator's earlier epoch: live
        bars would otherwise be refused as not after the last one). Returns the bars dropped."""
        n = 0
        for s, rows in self._rows.items():
            keep = [r for r in rows if r[0] < t_ms]
            n += len(rows) - len(keep)
            self._rows[s] = keep
            self._funding[s] = [f for f in self._funding[s] if f[0] < t_ms]
        if n:
            self._version += 1
        return n

    def dataset(self) -> Dataset:
        if self._cache is not None and self._cache[0] == self._version:
            return self._cache[1]
        out = {}
        for s, rows in self._rows.items():
            if not rows:
                continue
            a = np.asarray(rows, np.float64)
            k = Klines(
                s,
                self.interval_ms,
                a[:, 0].astype(np.int64),
                *(np.ascontiguousarray(a[:, j]) for j in range(1, 6)),
            )
            f = self._funding[s]
            ft = np.asarray([x[0] for x in f], np.int64)
            fr = np.asarray([x[1] for x in f], np.float64)
            out[s] = SymbolData(k, a[:, 6].copy(), a[:, 7].copy(), ft, fr)
        ds = Dataset(f"{self.interval_ms}ms", out)
        self._cache = (self._version, ds)
        return ds

    def view(self, now_ms: int) -> DataView:
        return DataView(self.dataset(), now_ms=now_ms)
