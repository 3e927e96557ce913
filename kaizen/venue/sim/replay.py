"""Replay of real Binance data as the simulator's market source: the index price follows recorded
perp candles (Binance public-archive CSVs, gzip, header row), and funding settles at the recorded
rates. Inside a candle the price path is open -> low -> high -> close for a rising candle and
open -> high -> low -> close for a falling one (the usual conservative backtest convention),
linear in time between those points."""

from __future__ import annotations

import bisect
import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path

from kaizen.errors import DataError

FUNDING_MS = 8 * 3_600_000


@dataclass
class ReplaySeries:
    symbol: str
    times: list[int] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    funding: dict[int, float] = field(default_factory=dict)  # funding time (8 h grid) -> rate

    @property
    def start_ms(self) -> int:
        return self.times[0]

    @property
    def end_ms(self) -> int:
        return self.times[-1]

    def price_at(self, ms: int) -> float:
        t = self.times
        if ms <= t[0]:
            return self.prices[0]
        if ms >= t[-1]:
            return self.prices[-1]
        i = bisect.bisect_right(t, ms)
        t0, t1 = t[i - 1], t[i]
        p0, p1 = self.prices[i - 1], self.prices[i]
        return p0 if t1 == t0 else p0 + (p1 - p0) * (ms - t0) / (t1 - t0)

    def funding_rate(self, funding_ms: int) -> float | None:
        return self.funding.get(funding_ms)


def _open(path: Path):  # noqa: ANN202
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def load_replay(data_dir: str | Path, symbol: str, interval: str = "1h") -> ReplaySeries:
    """Candles from futures/um/klines/SYMBOL/INTERVAL/*.csv[.gz] and funding from
    futures/um/fundingRate/SYMBOL/*.csv[.gz] under data_dir."""
    root = Path(data_dir)
    kdir = root / "futures" / "um" / "klines" / symbol / interval
    files = sorted(kdir.glob("*.csv*")) if kdir.is_dir() else []
    if not files:
        raise DataError(f"{kdir}: no kline CSV files for {symbol} {interval}")
    s = ReplaySeries(symbol)
    rows: list[tuple[int, float, float, float, float, int]] = []
    for f in files:
        with _open(f) as fh:
            for n, r in enumerate(csv.DictReader(fh), start=2):
                try:
                    rows.append(
                        (
                            int(r["open_time"]),
                            float(r["open"]),
                            float(r["high"]),
                            float(r["low"]),
                            float(r["close"]),
                            int(r["close_time"]),
                        )
                    )
                except (KeyError, TypeError, ValueError):
                    raise DataError(
                        f"{f}: row {n}: not a kline row (open_time,open,high,low,close,...)"
                    ) from None
    rows.sort()
    last = -1
    for ot, o, h, lo, c, ct in rows:
        if ot <= last:
            continue  # overlapping files: keep the first copy
        if not (lo <= min(o, c) and max(o, c) <= h and lo > 0):
            raise DataError(f"{symbol} {interval}: candle at {ot} has inconsistent high/low")
        span = ct + 1 - ot
        pts = (lo, h) if c >= o else (h, lo)
        for k, p in ((0, o), (1, pts[0]), (2, pts[1])):
            s.times.append(ot + span * k // 3)
            s.prices.append(p)
        s.times.append(ct)
        s.prices.append(c)
        last = ot
    fdir = root / "futures" / "um" / "fundingRate" / symbol
    for f in sorted(fdir.glob("*.csv*")) if fdir.is_dir() else []:
        with _open(f) as fh:
            for n, r in enumerate(csv.DictReader(fh), start=2):
                try:
                    t = round(int(r["calc_time"]) / FUNDING_MS) * FUNDING_MS
                    s.funding[t] = float(r["last_funding_rate"])
                except (KeyError, TypeError, ValueError):
                    raise DataError(
                        f"{f}: row {n}: not a funding row (calc_time,...,last_funding_rate)"
                    ) from None
    return s
