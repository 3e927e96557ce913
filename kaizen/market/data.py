"""Load Binance public-archive market data (klines, mark-price klines, funding) from a directory
laid out like Binance's archive (see ../shared/data/README.md), checked and aligned by time.

Accepted kline files: CSV with or without a header row, 7 or 12 columns, plain / .gz / .zip.
Checks (each problem names the file and the 1-based line):
  - wrong column count, unparsable number, NaN/inf, non-positive price, negative volume,
    high below open/close or low above them, open_time not on the interval grid → DataError;
  - the same open_time twice with different values → DataError;
Documented repairs (applied and listed in `Dataset.report`, never silent):
  - an exact duplicate row is dropped;
  - out-of-order rows are sorted by open_time;
  - gaps (missing bars) are kept as gaps and reported; the feature engine restarts that symbol's
    windows after a gap (features are nan until warm) instead of mixing returns across it;
  - zero-volume bars are kept and counted (volume features divide by a mean volume and are nan
    when it is 0).
"""

from __future__ import annotations

import gzip
import io
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kaizen.errors import DataError

INTERVAL_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000,
}  # fmt: skip

KLINE_HEADER = "open_time,open,high,low,close,volume,close_time"
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"


def interval_ms(interval: str) -> int:
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise DataError(f"unknown interval {interval!r} (known: {', '.join(INTERVAL_MS)})") from None


@dataclass
class Klines:
    symbol: str
    interval_ms: int
    open_time: np.ndarray  # int64 ms
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    path: str = ""

    def __len__(self) -> int:
        return len(self.open_time)

    def slice_time(self, start_ms: int | None, end_ms: int | None) -> Klines:
        lo = 0 if start_ms is None else int(np.searchsorted(self.open_time, start_ms, "left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.open_time, end_ms, "left"))
        s = slice(lo, hi)
        return Klines(
            self.symbol,
            self.interval_ms,
            self.open_time[s],
            self.open[s],
            self.high[s],
            self.low[s],
            self.close[s],
            self.volume[s],
            self.path,
        )


@dataclass
class SymbolData:
    """One symbol's bars with funding and mark price aligned to each bar's close."""

    klines: Klines
    funding: np.ndarray  # latest settled funding rate at the bar close (nan before the first)
    mark_close: np.ndarray  # mark-price close at the same close time (nan where none)
    # the funding settlements themselves (calc_time ms, rate), for settling funding in a replay
    funding_time: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    funding_rate: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))


@dataclass
class Dataset:
    interval: str
    symbols: dict[str, SymbolData]
    report: list[str] = field(default_factory=list)

    @property
    def start_ms(self) -> int:
        return min(int(d.klines.open_time[0]) for d in self.symbols.values() if len(d.klines))

    @property
    def end_ms(self) -> int:
        return max(int(d.klines.open_time[-1]) for d in self.symbols.values() if len(d.klines))


# ------------------------------------------------------------------------------------------- reading


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        elif raw[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise DataError(f"{path}: zip must hold exactly one CSV, found {len(names)} files")
                raw = zf.read(names[0])
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: corrupt compressed file: {exc}") from None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a CSV text file (byte {exc.start} is not ASCII)") from None


def _rows(path: Path, ncols: tuple[int, ...], what: str) -> tuple[list[list[str]], list[int]]:
    """Split a CSV into rows of fields, skipping an optional header; return rows and line numbers."""
    text = _read_text(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(",")
        if lineno == 1 and not _is_number(parts[0]):
            continue  # header row
        if len(parts) not in ncols:
            raise DataError(
                f"{path}: line {lineno}: expected {' or '.join(map(str, ncols))} columns of {what}, "
                f"found {len(parts)}"
            )
        rows.append(parts)
        lines.append(lineno)
    return rows, lines


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _num(path: Path, lineno: int, col: str, text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise DataError(f"{path}: line {lineno}: column {col}: not a number: {text!r}") from None
    if not math.isfinite(x):
        raise DataError(f"{path}: line {lineno}: column {col}: {text!r} is not a finite number")
    return x


def read_klines(
    path: str | Path, symbol: str, interval: str, report: list[str] | None = None, mark: bool = False
) -> Klines:
    """Read and check one kline file (see the module doc for the checks and repairs)."""
    path = Path(path)
    iv = interval_ms(interval)
    report = report if report is not None else []
    rows, lines = _rows(path, (7, 12), "kline")
    if not rows:
        raise DataError(f"{path}: no kline rows")
    n = len(rows)
    t = np.empty(n, np.int64)
    ohlcv = np.empty((n, 5), np.float64)
    names = ("open", "high", "low", "close", "volume")
    for i, (parts, ln) in enumerate(zip(rows, lines, strict=True)):
        ot = _num(path, ln, "open_time", parts[0])
        if ot != int(ot) or ot < 0:
            raise DataError(f"{path}: line {ln}: open_time {parts[0]!r} is not a millisecond timestamp")
        t[i] = int(ot)
        if t[i] % iv:
            raise DataError(f"{path}: line {ln}: open_time {t[i]} is not on the {interval} grid")
        for j in range(5):
            ohlcv[i, j] = _num(path, ln, names[j], parts[j + 1])
        o, h, lo, c, v = ohlcv[i]
        if min(o, h, lo, c) <= 0:
            raise DataError(f"{path}: line {ln}: non-positive price")
        if v < 0:
            raise DataError(f"{path}: line {ln}: negative volume {v}")
        if h < max(o, c) or lo > min(o, c):
            raise DataError(
                f"{path}: line {ln}: high/low do not bracket open/close (o={o} h={h} l={lo} c={c})"
            )
    line_arr = np.asarray(lines)
    if np.any(np.diff(t) < 0):
        first = int(np.argmax(np.diff(t) < 0)) + 1
        report.append(f"{path}: rows out of order (first at line {lines[first]}); sorted by open_time")
        order = np.argsort(t, kind="stable")
        t, ohlcv, line_arr = t[order], ohlcv[order], line_arr[order]
    dup = np.flatnonzero(np.diff(t) == 0) + 1
    if len(dup):
        for d in dup:
            if not np.array_equal(ohlcv[d], ohlcv[d - 1]):
                raise DataError(
                    f"{path}: line {line_arr[d]}: open_time {t[d]} duplicated with different values "
                    f"(also line {line_arr[d - 1]})"
                )
        report.append(f"{path}: {len(dup)} exact duplicate row(s) dropped (first at line {line_arr[dup[0]]})")
        keep = np.ones(len(t), bool)
        keep[dup] = False
        t, ohlcv, line_arr = t[keep], ohlcv[keep], line_arr[keep]
    steps = np.diff(t)
    gaps = np.flatnonzero(steps != iv)
    if len(gaps):
        missing = int(((steps[gaps] // iv) - 1).sum())
        g = gaps[0]
        report.append(
            f"{path}: {len(gaps)} gap(s), {missing} missing bar(s) (first after line {line_arr[g]}, "
            f"{int(steps[g] // iv) - 1} bars); features restart after each gap"
        )
    zero = int((ohlcv[:, 4] == 0).sum())
    if zero and not mark:  # mark-price klines carry volume 0 by design
        report.append(f"{path}: {zero} zero-volume bar(s) kept (volume features nan where mean volume is 0)")
    return Klines(symbol, iv, t, *(np.ascontiguousarray(ohlcv[:, j]) for j in range(5)), path=str(path))


def read_funding(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Funding settlements: (calc_time ms int64, rate float64), sorted, exact duplicates dropped."""
    path = Path(path)
    rows, lines = _rows(path, (3,), "funding (calc_time,funding_interval_hours,last_funding_rate)")
    t = np.empty(len(rows), np.int64)
    r = np.empty(len(rows), np.float64)
    for i, (parts, ln) in enumerate(zip(rows, lines, strict=True)):
        t[i] = int(_num(path, ln, "calc_time", parts[0]))
        r[i] = _num(path, ln, "last_funding_rate", parts[2])
        if abs(r[i]) > 0.05:
            raise DataError(f"{path}: line {ln}: funding rate {r[i]} is implausible (|rate| > 5 %)")
    order = np.argsort(t, kind="stable")
    t, r = t[order], r[order]
    keep = np.ones(len(t), bool)
    keep[1:] = np.diff(t) != 0
    return t[keep], r[keep]


# ------------------------------------------------------------------------------------------ layout


def _find_one(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix in (".csv", ".gz", ".zip")))
    if len(files) > 1:
        raise DataError(
            f"{folder}: expected one data file, found {len(files)}: {', '.join(p.name for p in files)}"
        )
    return files[0] if files else None


def kline_path(root: Path, symbol: str, interval: str, kind: str = "klines") -> Path | None:
    return _find_one(Path(root) / "futures" / "um" / kind / symbol / interval)


def load_symbol(root: str | Path, symbol: str, interval: str, report: list[str]) -> SymbolData:
    root = Path(root)
    kp = kline_path(root, symbol, interval)
    if kp is None:
        raise DataError(
            f"{root}: no {interval} klines for {symbol} (expected futures/um/klines/{symbol}/{interval}/)"
        )
    k = read_klines(kp, symbol, interval, report)
    close_time = k.open_time + k.interval_ms
    funding = np.full(len(k), np.nan)
    fp = _find_one(root / "futures" / "um" / "fundingRate" / symbol)
    ft, fr = np.empty(0, np.int64), np.empty(0, np.float64)
    if fp is not None:
        ft, fr = read_funding(fp)
        # the latest settlement at or before each bar's close (known when the bar closes)
        idx = np.searchsorted(ft, close_time, "right") - 1
        ok = idx >= 0
        funding[ok] = fr[idx[ok]]
    else:
        report.append(f"{root}: no funding file for {symbol}; funding features are nan")
    mark = np.full(len(k), np.nan)
    mdir = root / "futures" / "um" / "markPriceKlines" / symbol
    if mdir.is_dir():
        # the finest mark interval available; matched where its bar closes at the same time
        ivs = sorted(
            (d.name for d in mdir.iterdir() if d.is_dir() and d.name in INTERVAL_MS), key=INTERVAL_MS.get
        )
        if ivs:
            mp = _find_one(mdir / ivs[0])
            if mp is not None:
                mk = read_klines(mp, symbol, ivs[0], report, mark=True)
                mclose_t = mk.open_time + mk.interval_ms
                pos = np.searchsorted(mclose_t, close_time)
                pos_c = np.minimum(pos, len(mclose_t) - 1)
                hit = mclose_t[pos_c] == close_time
                mark[hit] = mk.close[pos_c[hit]]
    return SymbolData(k, funding, mark, ft, fr)


def parse_date_ms(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    import datetime as dt

    try:
        d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise DataError(f"{what}: {text!r} is not a date YYYY-MM-DD") from None
    return int(d.timestamp() * 1000)


def load_dataset(
    root: str | Path,
    symbols: list[str],
    interval: str = "1h",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Dataset:
    """Load several symbols (bars in [start_ms, end_ms)) with funding and mark aligned."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    report: list[str] = []
    out: dict[str, SymbolData] = {}
    for sym in symbols:
        d = load_symbol(root, sym, interval, report)
        k = d.klines
        lo = 0 if start_ms is None else int(np.searchsorted(k.open_time, start_ms, "left"))
        hi = len(k) if end_ms is None else int(np.searchsorted(k.open_time, end_ms, "left"))
        if hi <= lo:
            report.append(f"{k.path}: no bars in the requested range; {sym} skipped")
            continue
        s = slice(lo, hi)
        out[sym] = SymbolData(
            k.slice_time(start_ms, end_ms), d.funding[s], d.mark_close[s], d.funding_time, d.funding_rate
        )
    if not out:
        raise DataError(f"{root}: no bars for {', '.join(symbols)} in the requested range")
    return Dataset(interval, out, report)
