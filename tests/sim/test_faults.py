"""Each injected fault is observable through the real ccxt client, and none makes a second order."""

from __future__ import annotations

import asyncio
import time

import ccxt.async_support as ccxt
import pytest

from tests.sim.helpers import BTC, admin, run, sim_and_client

ORDER = "/fapi/v1/order"


def _accepted(sim, cid: str) -> int:  # noqa: ANN001
    return sum(1 for r in sim.orders_received if r["params"].get("newClientOrderId") == cid and r["accepted"])


def test_5xx_then_retry_same_client_id_makes_one_order() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            await admin(sim, "POST", "/_sim/faults", {"rest_5xx": 1, "paths": [ORDER]})
            with pytest.raises((ccxt.OperationFailed, ccxt.ExchangeNotAvailable), match="-1001"):
                await ex.create_order(BTC, "market", "buy", 0.003, None, {"newClientOrderId": "r-1"})
            assert _accepted(sim, "r-1") == 0 and sim.fault_log[-1]["fault"] == "5xx"
            o = await ex.create_order(BTC, "market", "buy", 0.003, None, {"newClientOrderId": "r-1"})
            assert o["filled"] == 0.003 and _accepted(sim, "r-1") == 1
            assert [r["accepted"] for r in sim.orders_received] == [False, True]

    run(go())


def test_429_carries_retry_after() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            await admin(sim, "POST", "/_sim/faults", {"rest_429": 1, "retry_after_s": 3})
            with pytest.raises(ccxt.DDoSProtection, match="-1003"):
                await ex.fetch_balance()
            assert ex.last_http_response and ex.last_response_headers.get("Retry-After") == "3"
            await ex.fetch_balance()  # the counter is spent: served again
            assert [f["fault"] for f in sim.fault_log] == ["429"]

    run(go())


def test_timeout_before_processing_makes_no_order() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            ex.timeout = 800
            await admin(sim, "POST", "/_sim/faults", {"timeout": 1, "timeout_s": 2.0, "paths": [ORDER]})
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order(BTC, "market", "buy", 0.003, None, {"newClientOrderId": "t-1"})
            assert _accepted(sim, "t-1") == 0 and sim.trade_log == []
            assert [r["error"]["code"] for r in sim.orders_received] == [-1007]
            with pytest.raises(ccxt.OrderNotFound):
                await ex.fetch_order(None, BTC, {"origClientOrderId": "t-1"})

    run(go())


def test_timeout_after_accept_order_exists_and_retry_is_refused_as_duplicate() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            ex.timeout = 800
            await admin(
                sim, "POST", "/_sim/faults", {"timeout_after_accept": 1, "timeout_s": 2.0, "paths": [ORDER]}
            )
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order(BTC, "market", "buy", 0.004, None, {"newClientOrderId": "ta-1"})
            assert _accepted(sim, "ta-1") == 1
            o = await ex.fetch_order(None, BTC, {"origClientOrderId": "ta-1"})
            assert o["status"] == "closed" and o["filled"] == 0.004
            with pytest.raises(ccxt.ExchangeError, match="-4116"):  # the naive retry
                await ex.create_order(BTC, "market", "buy", 0.004, None, {"newClientOrderId": "ta-1"})
            pos = (await ex.fetch_positions([BTC]))[0]
            assert pos["contracts"] == pytest.approx(0.004)
            assert {t["clientOrderId"] for t in sim.trade_log} == {"ta-1"}

    run(go())


def test_rejected_orders_and_latency() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            await admin(sim, "POST", "/_sim/faults", {"reject_orders": 1})
            with pytest.raises(ccxt.InvalidOrder, match="-2010"):
                await ex.create_order(BTC, "market", "buy", 0.003, None, {"newClientOrderId": "x-1"})
            assert sim.orders_received[-1]["error"]["code"] == -2010 and sim.trade_log == []
            t0 = time.perf_counter()
            await ex.fetch_balance()
            fast = time.perf_counter() - t0
            await admin(sim, "POST", "/_sim/faults", {"latency_ms": 300})
            t0 = time.perf_counter()
            await ex.fetch_balance()
            slow = time.perf_counter() - t0
            assert slow >= 0.3 and slow > fast

    run(go())


def test_partial_fills() -> None:
    async def go() -> None:
        # no automatic market steps: each match happens when the test says so
        async with sim_and_client(publish_interval_s=3600.0) as (sim, ex):
            await admin(sim, "POST", "/_sim/faults", {"partial_fill_ratio": 0.5})
            o = await ex.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "p-1"})
            assert o["filled"] == pytest.approx(0.005) and o["status"] == "expired"
            mark = sim.markets["BTCUSDT"].mark
            price = round(mark * 0.995, 1)
            lo = await ex.create_order(BTC, "limit", "buy", 0.01, price, {"newClientOrderId": "p-2"})
            await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": mark * 0.99})
            lo = await ex.fetch_order(lo["id"], BTC)
            assert lo["status"] == "open" and lo["filled"] == pytest.approx(0.005)
            await admin(sim, "POST", "/_sim/step")
            lo = await ex.fetch_order(lo["id"], BTC)
            assert lo["status"] == "closed" and lo["filled"] == pytest.approx(0.01)
            fills = [t for t in sim.trade_log if t["clientOrderId"] == "p-2"]
            assert [t["qty"] for t in fills] == [0.005, 0.005] and all(t["maker"] for t in fills)

    run(go())


def test_dropped_websocket_reconnect_and_refusal() -> None:
    async def go() -> None:
        from picows import WSError, WSListener, ws_connect

        async with sim_and_client() as (sim, ex):
            tr, _ = await ws_connect(WSListener, f"{sim.ws_url}/ws/btcusdt@depth@100ms")
            await admin(sim, "POST", "/_sim/faults", {"refuse_ws": True, "drop_ws": True})
            await asyncio.wait_for(tr.wait_disconnected(), 3)
            with pytest.raises((WSError, OSError)):
                await ws_connect(WSListener, f"{sim.ws_url}/ws/btcusdt@depth@100ms")
            await admin(sim, "POST", "/_sim/faults", {"refuse_ws": False})
            tr2, _ = await ws_connect(WSListener, f"{sim.ws_url}/ws/btcusdt@depth@100ms")
            tr2.disconnect()
            assert sim.ws.dropped == 1

    run(go())
