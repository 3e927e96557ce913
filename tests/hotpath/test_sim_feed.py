"""The hot path against the simulator over real sockets: CoreListener on the routed depth and
aggTrade connections, a REST snapshot, the core syncs its book from the live diffs and decides."""

import asyncio

import aiohttp
from picows import ws_connect

from kaizen.engine.hotpath import build_core
from kaizen.ext.wsfeed import CoreListener
from tests.sim.helpers import run, wait_for


def test_core_syncs_and_decides_on_the_simulator_stream(models):
    from kaizen.venue.sim import Simulator

    m, c = models
    core = build_core(m, c, bar_every_msgs=5)

    async def go():
        sim = Simulator(seed=3, speed=60.0)
        await sim.start()
        try:
            tp, lp = await ws_connect(lambda: CoreListener(core), f"{sim.ws_url}/public/stream?streams=btcusdt@depth@0ms")
            tm, lm = await ws_connect(lambda: CoreListener(core), f"{sim.ws_url}/market/stream?streams=btcusdt@aggTrade")
            await asyncio.sleep(0.3)  # diffs flow (and are dropped) before the snapshot, as live
            # The core drops diffs until it has a snapshot and leaves resync to its caller: when the
            # bridging diff went by while the REST request was in flight, the caller takes another.
            tries = 0
            while tries < 5:
                tries += 1
                async with aiohttp.ClientSession() as s:
                    async with s.get(sim.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                        snap = await r.json()
                core.load_snapshot(snap["bids"], snap["asks"], snap["lastUpdateId"])
                try:
                    await wait_for(lambda: core.synced_book, timeout=3)
                    break
                except AssertionError:
                    continue
            # an unbridged snapshot counts one gap (the core asks for a resync); none may follow the sync
            gaps_at_sync = core.counters()["gaps"]
            assert core.synced_book and gaps_at_sync <= tries - 1
            await wait_for(lambda: core.synced_book and core.bars_closed >= 10, timeout=15)
            tp.disconnect()
            tm.disconnect()
            async with aiohttp.ClientSession() as s:
                async with s.get(sim.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=5") as r:
                    now = await r.json()
            return lp, lm, now, gaps_at_sync
        finally:
            await sim.stop()

    lp, lm, now, gaps_at_sync = run(go())
    k = core.counters()
    assert lp.frames > 0 and lm.frames > 0 and lp.fragments == 0
    assert k["errors"] == 0 and k["gaps"] == gaps_at_sync and k["depth"] > 10 and k["trade"] > 0
    assert core.synced_book and core.book.best_bid() < core.book.best_ask()
    mid = 0.5 * (float(now["bids"][0][0]) + float(now["asks"][0][0]))
    assert abs(core.book.mid() / mid - 1) < 0.01  # the same market as the venue's own book
    assert k["bars"] >= 10 and core.p_signal == core.p_signal  # decisions ran (p is a number)
