"""Helpers for simulator tests: a real Simulator on 127.0.0.1 and a real ccxt binanceusdm client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import uvloop

KEY = "test-key-0123456789"
SECRET = "test-secret-abcdef"
BTC = "BTC/USDT:USDT"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return uvloop.run(coro)


@contextlib.asynccontextmanager
async def sim_and_client(**kw: Any) -> AsyncIterator[tuple[Any, Any]]:
    import ccxt.async_support as ccxt

    from kaizen.venue.ccxt_urls import point_binanceusdm_at
    from kaizen.venue.sim import Simulator

    kw.setdefault("api_key", KEY)
    kw.setdefault("api_secret", SECRET)
    sim = Simulator(**kw)
    await sim.start()
    ex = ccxt.binanceusdm({"apiKey": kw["api_key"], "secret": kw["api_secret"], "timeout": 3000})
    point_binanceusdm_at(ex, sim.rest_url)
    try:
        await ex.load_markets()
        yield sim, ex
    finally:
        await ex.close()
        await sim.stop()


async def admin(sim: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the simulator's unsigned /_sim/ admin API over real HTTP."""
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.request(method, sim.rest_url + path, data=json.dumps(body or {})) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def wait_for(pred: Any, timeout: float = 5.0, every: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)
