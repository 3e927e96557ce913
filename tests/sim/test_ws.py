"""Websocket market data from the simulator, read with a real picows client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from tests.sim.helpers import run


class Collector(WSListener):
    def __init__(self) -> None:
        self.msgs: list[Any] = []
        self.closed = asyncio.Event()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.msgs.append(json.loads(frame.get_payload_as_bytes()))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed.set()


async def _connect(url: str) -> tuple[WSTransport, Collector]:
    transport, listener = await ws_connect(Collector, url)
    return transport, listener


def _apply(book: dict[float, float], rows: list[list[str]]) -> None:
    for p, q in rows:
        if float(q) == 0:
            book.pop(float(p), None)
        else:
            book[float(p)] = float(q)


def test_combined_depth_diffs_chain_and_rebuild_the_snapshot_book() -> None:
    async def go() -> None:
        from kaizen.venue.sim import Simulator

        sim = Simulator(seed=5, speed=60.0)
        await sim.start()
        try:
            streams = "btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@markPrice@1s/btcusdt@bookTicker"
            tr, col = await _connect(f"{sim.ws_url}/stream?streams={streams}")
            await asyncio.sleep(0.3)
            async with aiohttp.ClientSession() as s:
                async with s.get(sim.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                    snap = await r.json()
            await asyncio.sleep(1.5)
            async with aiohttp.ClientSession() as s:
                async with s.get(sim.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                    snap2 = await r.json()
            tr.disconnect()
            names = {m["stream"] for m in col.msgs}
            assert names == {
                "btcusdt@depth@100ms",
                "btcusdt@aggTrade",
                "btcusdt@markPrice@1s",
                "btcusdt@bookTicker",
            }
            diffs = [m["data"] for m in col.msgs if m["stream"] == "btcusdt@depth@100ms"]
            for a, b in zip(diffs, diffs[1:], strict=False):
                assert b["pu"] == a["u"] and b["U"] == a["u"] + 1 and b["u"] >= b["U"]
                assert b["E"] >= a["E"] and b["s"] == "BTCUSDT" and b["e"] == "depthUpdate"
            # Binance's sync procedure: drop u < lastUpdateId, first kept has U <= id <= u
            bids = {float(p): float(q) for p, q in snap["bids"]}
            asks = {float(p): float(q) for p, q in snap["asks"]}
            kept = [d for d in diffs if d["u"] >= snap["lastUpdateId"]]
            assert kept and kept[0]["U"] <= snap["lastUpdateId"] + 1
            upto = [d for d in kept if d["u"] <= snap2["lastUpdateId"]]
            assert upto[-1]["u"] == snap2["lastUpdateId"]
            for d in upto:
                if d["u"] <= snap["lastUpdateId"]:
                    continue
                _apply(bids, d["b"])
                _apply(asks, d["a"])
            assert bids == {float(p): float(q) for p, q in snap2["bids"]}
            assert asks == {float(p): float(q) for p, q in snap2["asks"]}
            # prices and quantities as strings at tick/lot precision
            row = diffs[-1]["b"][0] if diffs[-1]["b"] else diffs[-1]["a"][0]
            assert len(row[0].split(".")[1]) == 2 and len(row[1].split(".")[1]) == 3
            mark = [m["data"] for m in col.msgs if m["stream"] == "btcusdt@markPrice@1s"][-1]
            assert mark["e"] == "markPriceUpdate" and mark["T"] % (8 * 3600_000) == 0
            assert float(mark["r"]) != 0 and mark["T"] > mark["E"]
            trade = [m["data"] for m in col.msgs if m["stream"] == "btcusdt@aggTrade"][-1]
            assert set(trade) >= {"e", "E", "a", "s", "p", "q", "f", "l", "T", "m"}
        finally:
            await sim.stop()

    run(go())


def test_single_stream_raw_payloads_and_dropped_socket_fault() -> None:
    async def go() -> None:
        from kaizen.venue.sim import Simulator

        sim = Simulator(seed=5, speed=60.0)
        await sim.start()
        try:
            tr, col = await _connect(f"{sim.ws_url}/ws/ethusdt@depth@100ms")
            await asyncio.sleep(0.5)
            assert col.msgs and all(m["e"] == "depthUpdate" and m["s"] == "ETHUSDT" for m in col.msgs)
            tr.send(
                WSMsgType.TEXT,
                json.dumps({"method": "SUBSCRIBE", "params": ["solusdt@bookTicker"], "id": 7}).encode(),
            )
            await asyncio.sleep(0.4)
            assert {"result": None, "id": 7} in col.msgs
            assert any(m.get("e") == "bookTicker" and m.get("s") == "SOLUSDT" for m in col.msgs)
            async with aiohttp.ClientSession() as s:
                async with s.post(sim.rest_url + "/_sim/faults", data=json.dumps({"drop_ws": True})) as r:
                    assert (await r.json())["dropped"] == 1
            await asyncio.wait_for(col.closed.wait(), 3)
            assert sim.fault_log[-1]["fault"] == "drop_ws"
        finally:
            await sim.stop()

    run(go())
