"""Small data directories in Binance's archive layout, written by the tests themselves (real files,
read by the same loader as the real data): a seeded random walk, or a copy of real data cut at a date."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

H = 3_600_000
T0 = 1_672_531_200_000  # 2023-01-01


def write_klines(
    root: Path, symbol: str, t: np.ndarray, close: np.ndarray, kind: str = "klines", iv: str = "1h"
) -> None:
    d = root / "futures" / "um" / kind / symbol / iv
    d.mkdir(parents=True, exist_ok=True)
    step = {"1h": H, "8h": 8 * H, "1m": 60_000}[iv]
    lines = ["open_time,open,high,low,close,volume,close_time"]
    prev = close[0]
    for ti, c in zip(t, close, strict=True):
        o = prev
        lines.append(
            f"{ti},{o:.2f},{max(o, c) * 1.001:.2f},{min(o, c) * 0.999:.2f},{c:.2f},{0 if kind != 'klines' else 100},{ti + step - 1}"
        )
        prev = c
    with gzip.open(d / f"{symbol}-{iv}.csv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")


def write_funding(root: Path, symbol: str, t: np.ndarray, rate: np.ndarray) -> None:
    d = root / "futures" / "um" / "fundingRate" / symbol
    d.mkdir(parents=True, exist_ok=True)
    lines = ["calc_time,funding_interval_hours,last_funding_rate"]
    lines += [f"{ti},8,{r:.8f}" for ti, r in zip(t, rate, strict=True)]
    with gzip.open(d / f"{symbol}-fundingRate.csv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")


def random_walk_archive(root: Path, symbols: list[str], bars: int = 24 * 60, seed: int = 3, funding: bool = True,
                        drop: tuple[int, int] | None = None) -> Path:  # fmt: skip
    """Hourly bars from 2023-01-01; `drop` = (first, last) bar index removed from every symbol (a gap)."""
    rng = np.random.default_rng(seed)
    t = T0 + H * np.arange(bars, dtype=np.int64)
    for i, s in enumerate(symbols):
        close = (100.0 * (i + 1)) * np.exp(np.cumsum(rng.normal(0, 0.006, bars)))
        tt, cc = t, close
        if drop is not None:
            keep = np.ones(bars, bool)
            keep[drop[0] : drop[1]] = False
            tt, cc = t[keep], close[keep]
        write_klines(root, s, tt, cc)
        if funding:
            ft = np.arange(T0, T0 + bars * H, 8 * H, dtype=np.int64)
            write_funding(root, s, ft, rng.normal(0.0001, 0.0001, len(ft)))
    return root


def cut_archive(src: Path, dst: Path, symbols: list[str], cut_ms: int, iv: str = "1h") -> Path:
    """A copy of real data with every row at or after `cut_ms` removed (klines by open time, mark
    klines likewise, funding by calc time): the world as it looked before the cut."""
    for s in symbols:
        for kind in ("klines", "markPriceKlines"):
            base = src / "futures" / "um" / kind / s
            if not base.is_dir():
                continue
            for ivdir in base.iterdir():
                if kind == "klines" and ivdir.name != iv:
                    continue
                for f in ivdir.iterdir():
                    _cut_csv(f, dst / f.relative_to(src), cut_ms)
        fdir = src / "futures" / "um" / "fundingRate" / s
        for f in fdir.iterdir():
            _cut_csv(f, dst / f.relative_to(src), cut_ms)
    return dst


def _cut_csv(src: Path, dst: Path, cut_ms: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(src, "rt") as f:
        lines = f.read().splitlines()
    keep = [ln for ln in lines if not ln[:1].isdigit() or int(ln.split(",")[0]) < cut_ms]
    with gzip.open(dst, "wt") as f:
        f.write("\n".join(keep) + "\n")
