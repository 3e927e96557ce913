"""`kaizen data fetch`: download USD-M klines, mark-price klines and funding history through ccxt
into the archive layout that kaizen.market.data reads (gzip CSV with a header row)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
from pathlib import Path

from kaizen.errors import DataError, KaizenError
from kaizen.market.data import FUNDING_HEADER, KLINE_HEADER, interval_ms, parse_date_ms

PAGE = 1000


def _client(rest_url: str):
    import ccxt.async_support as ccxt

    ex = ccxt.binanceusdm({"enableRateLimit": False, "timeout": 10_000})
    if rest_url:  # a mirror or a local venue: every futures REST URL goes there
        base = rest_url.rstrip("/")
        api = ex.urls["api"]
        for key, url in list(api.items()):
            if isinstance(url, str) and url.startswith("https://fapi.binance.com"):
                api[key] = base + url[len("https://fapi.binance.com") :]
    return ex


async def _klines(ex, market: str, iv: str, start: int, end: int, price: str | None) -> list[list]:
    step = interval_ms(iv)
    rows: list[list] = []
    since = start
    params = {"endTime": end - 1}
    if price:
        params["price"] = price
    while since < end:
        batch = await ex.fetch_ohlcv(market, iv, since=since, limit=PAGE, params=dict(params))
        batch = [b for b in batch if start <= b[0] < end]
        if not batch:
            break
        rows.extend(batch)
        since = int(batch[-1][0]) + step
    out: dict[int, list] = {int(r[0]): r for r in rows}
    return [out[t] for t in sorted(out)]


async def _funding(ex, market: str, start: int, end: int) -> list[tuple[int, float]]:
    rows: dict[int, float] = {}
    since = start
    while since <= end:
        # up to and including `end`: the settlement at the last bar's close is known at that close
        batch = await ex.fetch_funding_rate_history(market, since=since, limit=PAGE, params={"endTime": end})
        batch = [b for b in batch if start <= b["timestamp"] <= end]
        if not batch:
            break
        for b in batch:
            rows[int(b["timestamp"])] = float(b["fundingRate"])
        since = int(batch[-1]["timestamp"]) + 1
    return sorted(rows.items())


def _write(path: Path, header: str, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(gzip.compress((header + "\n" + "".join(x + "\n" for x in lines)).encode()))
    tmp.replace(path)


def _fmt(x: float) -> str:
    return repr(float(x)).removesuffix(".0") if float(x).is_integer() else repr(float(x))


async def _run(args: argparse.Namespace) -> list[Path]:
    import ccxt.async_support as ccxt

    start = parse_date_ms(args.start, "--start")
    end = parse_date_ms(args.end, "--end")
    if end <= start:
        raise KaizenError(f"--end {args.end} is not after --start {args.start}")
    iv = args.interval
    step = interval_ms(iv)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    out = Path(args.out)
    ex = _client(args.rest_url)
    where = args.rest_url or "https://fapi.binance.com"
    written: list[Path] = []
    try:
        await ex.load_markets()
        for sym in symbols:
            ms = ex.markets_by_id.get(sym)
            if not ms:
                raise DataError(f"--symbols: {sym} is not a USD-M market at {where}")
            market = ms[0]["symbol"]
            for kind, price in (("klines", None), ("markPriceKlines", "mark")):
                rows = await _klines(ex, market, iv, start, end, price)
                lines = []
                for r in rows:
                    if any(x is None for x in r[1:5]):
                        raise DataError(f"{where}: {kind} {sym} bar {r[0]} has a missing price")
                    vol = 0.0 if r[5] is None else r[5]  # mark-price klines carry no volume
                    lines.append(
                        ",".join(
                            [str(int(r[0])), *(_fmt(x) for x in r[1:5]), _fmt(vol), str(int(r[0]) + step - 1)]
                        )
                    )
                p = out / "futures" / "um" / kind / sym / iv / f"{sym}-{iv}.csv.gz"
                _write(p, KLINE_HEADER, lines)
                written.append(p)
            fr = await _funding(ex, market, start, end)
            lines = []
            for i, (t, r) in enumerate(fr):
                hours = round((t - fr[i - 1][0]) / 3_600_000) if i else 8
                lines.append(f"{t},{hours},{_fmt(r)}")
            p = out / "futures" / "um" / "fundingRate" / sym / f"{sym}-fundingRate.csv.gz"
            _write(p, FUNDING_HEADER, lines)
            written.append(p)
    except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as exc:
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"cannot reach {where} ({type(exc).__name__}: {msg})") from None
    except ccxt.BaseError as exc:
        raise DataError(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    finally:
        await ex.close()
    return written


def fetch(args: argparse.Namespace) -> list[Path]:
    written = asyncio.run(_run(args))
    for p in written:
        print(p)
    return written
