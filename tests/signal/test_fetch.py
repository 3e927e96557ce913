"""`kaizen data fetch` through the real ccxt client against a local Binance-REST mirror on
127.0.0.1 (aiohttp, serving rows of ../shared/data), and the unreachable-network error."""

from __future__ import annotations

import asyncio
import socket
import threading

import numpy as np
import pytest
from aiohttp import web

from kaizen.market.data import load_dataset, read_funding, read_klines
from tests.conftest import run_kaizen

SYM = "ETHUSDT"


def _exchange_info():
    return {
        "timezone": "UTC", "serverTime": 1704067200000, "rateLimits": [], "exchangeFilters": [], "assets": [],
        "symbols": [{
            "symbol": SYM, "pair": SYM, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "USDT",
            "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0,
            "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "filters": [], "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC"],
        }],
    }  # fmt: skip


class Mirror:
    def __init__(self, data):
        self.k = read_klines(data / f"futures/um/klines/{SYM}/1h/{SYM}-1h.csv.gz", SYM, "1h")
        self.m = read_klines(
            data / f"futures/um/markPriceKlines/{SYM}/1h/{SYM}-1h.csv.gz", SYM, "1h", mark=True
        )
        self.ft, self.fr = read_funding(data / f"futures/um/fundingRate/{SYM}/{SYM}-fundingRate.csv.gz")
        self.paths: list[str] = []

    def _klines(self, k, q):
        lo = int(q.get("startTime", 0))
        hi = int(q.get("endTime", 2**62))
        lim = min(int(q.get("limit", 500)), 1500)
        i = np.searchsorted(k.open_time, lo)
        j = min(np.searchsorted(k.open_time, hi, "right"), i + lim)
        return [
            [
                int(k.open_time[x]),
                str(float(k.open[x])),
                str(float(k.high[x])),
                str(float(k.low[x])),
                str(float(k.close[x])),
                str(float(k.volume[x])),
                int(k.open_time[x]) + 3_599_999,
                "0",
                0,
                "0",
                "0",
                "0",
            ]
            for x in range(i, j)
        ]

    async def handle(self, req: web.Request):
        self.paths.append(req.path)
        q = req.query
        if req.path == "/fapi/v1/exchangeInfo":
            return web.json_response(_exchange_info())
        if req.path == "/fapi/v1/klines":
            return web.json_response(self._klines(self.k, q))
        if req.path == "/fapi/v1/markPriceKlines":
            return web.json_response(self._klines(self.m, q))
        if req.path == "/fapi/v1/fundingRate":
            lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
            lim = int(q.get("limit", 100))
            sel = [(t, r) for t, r in zip(self.ft, self.fr, strict=True) if lo <= t <= hi][:lim]
            return web.json_response(
                [
                    {"symbol": SYM, "fundingTime": int(t), "fundingRate": str(float(r)), "markPrice": "0"}
                    for t, r in sel
                ]
            )
        return web.json_response({"code": -1121, "msg": "unknown path"}, status=404)


@pytest.fixture
def mirror(shared_data):
    m = Mirror(shared_data)
    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", m.handle)
    runner = web.AppRunner(app)
    started = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        started.set()
        loop.run_forever()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    assert started.wait(10)
    yield m, f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    th.join(10)


def test_fetch_writes_archive_layout(tmp_path, mirror, shared_data):
    m, url = mirror
    out = tmp_path / "data"
    r = run_kaizen(
        "data",
        "fetch",
        "--out",
        str(out),
        "--symbols",
        SYM,
        "--start",
        "2024-03-01",
        "--end",
        "2024-05-01",
        "--rest-url",
        url,
    )
    assert r.returncode == 0, r.stderr
    assert {
        "/fapi/v1/exchangeInfo",
        "/fapi/v1/klines",
        "/fapi/v1/markPriceKlines",
        "/fapi/v1/fundingRate",
    } <= set(m.paths)
    assert m.paths.count("/fapi/v1/klines") >= 2  # 1464 bars: paged
    got = load_dataset(out, [SYM], "1h").symbols[SYM]
    ref = load_dataset(shared_data, [SYM], "1h", 1709251200000, 1714521600000).symbols[SYM]
    assert len(got.klines) == 61 * 24
    for f in ("open_time", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got.klines, f), getattr(ref.klines, f), err_msg=f)
    np.testing.assert_array_equal(got.mark_close, ref.mark_close)
    np.testing.assert_array_equal(
        got.funding[24:], ref.funding[24:]
    )  # first day: no earlier settlement fetched


def test_fetch_unreachable_is_one_line(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    r = run_kaizen(
        "data",
        "fetch",
        "--out",
        str(tmp_path),
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-02",
        "--rest-url",
        f"http://127.0.0.1:{port}",
    )
    assert r.returncode == 2
    assert r.stderr.startswith(f"kaizen: error: cannot reach http://127.0.0.1:{port}")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_fetch_unknown_symbol(tmp_path, mirror):
    _, url = mirror
    r = run_kaizen(
        "data",
        "fetch",
        "--out",
        str(tmp_path),
        "--symbols",
        "DOGEUSDT",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-02",
        "--rest-url",
        url,
    )
    assert r.returncode == 2 and "DOGEUSDT is not a USD-M market" in r.stderr
