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
            tr, col = await _connect(
                f"{sim.ws_url}/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker"
            )
            tr_m, col_m = await _connect(
                f"{sim.ws_url}/market/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s"
            )
            await asyncio.sleep(0.3)
            async with aiohttp.ClientSession() as s:
                async with s.get(sim.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                    snap = await r.json()
            await asyncio.sleep(1.5)
            async with aiohttp.ClientSession() as s:
                async with s.get(sim.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                    snap2 = await r.json()
            tr.disconnect()
            tr_m.disconnect()
            col.msgs += col_m.msgs
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
            tr, col = await _connect(f"{sim.ws_url}/public/ws/ethusdt@depth@100ms")
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


def test_user_data_stream_and_partial_depth() -> None:
    async def go() -> None:
        from tests.sim.helpers import BTC, sim_and_client

        async with sim_and_client() as (sim, ex):
            key = (await ex.fapiPrivatePostListenKey())["listenKey"]
            tr, col = await _connect(f"{sim.ws_url}/private/ws/{key}")
            tr2, col2 = await _connect(f"{sim.ws_url}/public/stream?streams=btcusdt@depth5@100ms")
            o = await ex.create_order(BTC, "market", "buy", 0.004, None, {"newClientOrderId": "ud-1"})
            await asyncio.sleep(0.4)
            tr.disconnect()
            tr2.disconnect()
            ou = [m for m in col.msgs if m["e"] == "ORDER_TRADE_UPDATE"]
            assert [m["o"]["x"] for m in ou][0] == "NEW" and ou[-1]["o"]["X"] == "FILLED"
            assert all(m["o"]["c"] == "ud-1" and m["o"]["i"] == int(o["id"]) for m in ou)
            fills = [m["o"] for m in ou if m["o"]["x"] == "TRADE"]
            assert sum(float(f["l"]) for f in fills) == 0.004
            acct = [m for m in col.msgs if m["e"] == "ACCOUNT_UPDATE"]
            assert acct and acct[-1]["a"]["P"][0]["pa"] == "0.004"
            assert float(acct[-1]["a"]["B"][0]["wb"]) == sim.exchange.account.wallet
            d5 = [m["data"] for m in col2.msgs]
            assert d5 and all(len(d["b"]) == 5 and len(d["a"]) == 5 for d in d5)

    run(go())


def test_websocket_latency_fault_delays_messages() -> None:
    async def go() -> None:
        import time

        from kaizen.venue.sim import Simulator

        sim = Simulator(seed=2, faults={"ws_latency_ms": 400})
        await sim.start()
        try:
            t0 = time.monotonic()
            tr, col = await _connect(f"{sim.ws_url}/public/ws/btcusdt@depth@100ms")
            while not col.msgs:
                await asyncio.sleep(0.01)
            first = time.monotonic() - t0
            tr.disconnect()
            assert first >= 0.4
            us = [m["u"] for m in col.msgs]
            assert us == sorted(us)
        finally:
            await sim.stop()

    run(go())
