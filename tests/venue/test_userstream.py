"""UserDataStream against the simulator: listenKey by REST, the socket on /private, fills, orders and
account updates parsed into the venue types, keep-alive, expiry, reconnects and the resync hook."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kaizen.venue.base import OrderState, VenueFill
from kaizen.venue.userstream import AccountUpdate, UserDataHandler, UserDataStream
from tests.sim.helpers import BTC, KEY, admin, run, sim_and_client, wait_for


class Recorder:
    def __init__(self) -> None:
        self.fills: list[VenueFill] = []
        self.orders: list[OrderState] = []
        self.accounts: list[AccountUpdate] = []
        self.resyncs = 0

    def on_fill(self, fill: VenueFill) -> None:
        self.fills.append(fill)

    def on_order(self, order: OrderState) -> None:
        self.orders.append(order)

    def on_account(self, update: AccountUpdate) -> None:
        self.accounts.append(update)

    def on_resync(self) -> None:
        self.resyncs += 1


def test_recorder_is_a_user_data_handler() -> None:
    h: UserDataHandler = Recorder()  # the Protocol is what the router will implement
    assert callable(h.on_resync)


def test_fills_orders_and_account_updates_match_the_venue() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            h = Recorder()
            us = UserDataStream(sim.rest_url, sim.ws_url, KEY, h)
            await us.start()
            try:
                await wait_for(lambda: us.connected)
                assert h.resyncs == 1  # on connect: the owner reconciles by REST
                assert [c.route for c in sim.ws.conns] == ["private"]
                buy = await ex.create_order(BTC, "market", "buy", 0.010, None, {"newClientOrderId": "us-1"})
                px = float(sim.markets["BTCUSDT"].mark) * 0.98
                rest = await ex.create_order(
                    BTC, "limit", "buy", 0.003, round(px, 1), {"newClientOrderId": "us-2"}
                )
                await ex.cancel_order(rest["id"], BTC)
                sell = await ex.create_order(
                    BTC, "market", "sell", 0.010, None, {"newClientOrderId": "us-3", "reduceOnly": True}
                )
                await wait_for(lambda: sum(1 for o in h.orders if o.status == "closed") == 2)
                await wait_for(lambda: len(h.accounts) >= 2)
            finally:
                await us.stop()
            venue = {t["id"]: t for t in sim.trade_log}
            assert h.fills and {f.trade_id for f in h.fills} == {str(i) for i in venue}
            for f in h.fills:
                t = venue[int(f.trade_id)]
                assert (f.symbol, f.qty, f.price, f.maker) == ("BTCUSDT", t["qty"], t["price"], t["maker"])
                assert f.fee == pytest.approx(t["commission"]) and f.fee_asset == "USDT"
                assert f.realized_pnl == pytest.approx(t["realizedPnl"])
                assert f.venue_order_id == str(t["orderId"])
            assert {f.client_order_id for f in h.fills} == {"us-1", "us-3"}
            assert sum(f.qty for f in h.fills if f.side == "buy") == pytest.approx(0.010)
            by_cid: dict[str, list[str]] = {}
            for o in h.orders:
                by_cid.setdefault(o.client_order_id, []).append(o.status)
            assert by_cid["us-2"] == ["open", "canceled"]
            assert by_cid["us-1"][0] == "open" and by_cid["us-1"][-1] == "closed"
            last = {o.client_order_id: o for o in h.orders}
            assert last["us-1"].venue_order_id == buy["id"] and last["us-1"].filled == pytest.approx(0.010)
            assert last["us-3"].reduce_only and last["us-3"].venue_order_id == sell["id"]
            assert last["us-2"].order_type == "limit" and last["us-2"].price == round(px, 1)
            pos = [p for a in h.accounts for p in a.positions if p.symbol == "BTCUSDT"]
            assert pos[0].qty == pytest.approx(0.010) and pos[-1].qty == 0.0
            assert h.accounts[-1].balances[0].wallet == pytest.approx(sim.exchange.account.wallet)
            assert us.stats["bad"] == 0 and us.stats["handler_errors"] == 0

    run(go())


def test_keepalive_expiry_reconnect_and_rollover_each_resync() -> None:
    async def go() -> None:
        async with sim_and_client(listen_key_ttl_s=0.8) as (sim, ex):
            h = Recorder()
            us = UserDataStream(
                sim.rest_url, sim.ws_url, KEY, h, keepalive_s=0.2, backoff_initial_s=0.05, rollover_s=3600
            )
            await us.start()
            try:
                await wait_for(lambda: us.connected)
                await asyncio.sleep(2.0)  # 2.5 TTLs: the keep-alives hold the key
                assert us.stats["expired"] == 0 and us.stats["keepalives"] >= 5
                assert us.stats["connects"] == 1 and h.resyncs == 1
                key1 = sim.listen_key

                # The venue expires the key: listenKeyExpired -> a new key, a new socket, a resync.
                await admin(sim, "POST", "/_sim/expire_listen_key")
                await wait_for(lambda: us.stats["connects"] == 2 and us.connected)
                assert sim.listen_key != key1 and us.stats["expired"] == 1 and h.resyncs == 2

                # The key vanishes without an event reaching us: the next PUT says -1125.
                sim.listen_key_expires = 0.0
                await wait_for(lambda: us.stats["connects"] == 3 and us.connected)
                assert us.stats["expired"] == 2 and h.resyncs == 3

                # The socket drops: reconnect with backoff, resync.
                await admin(sim, "POST", "/_sim/faults", {"drop_ws": True})
                await wait_for(lambda: us.stats["connects"] == 4 and us.connected)
                assert us.stats["disconnects"] >= 3 and h.resyncs == 4

                # Events flow on the latest connection.
                await ex.create_order(BTC, "market", "buy", 0.004, None, {"newClientOrderId": "ka-1"})
                await wait_for(lambda: any(f.client_order_id == "ka-1" for f in h.fills))
            finally:
                await us.stop()

            # Renewal before Binance's 24 h cut-off (here 0.4 s): a fresh socket, a resync.
            h2 = Recorder()
            us2 = UserDataStream(sim.rest_url, sim.ws_url, KEY, h2, keepalive_s=0.2, rollover_s=0.4)
            await us2.start()
            try:
                await wait_for(lambda: us2.stats["rollovers"] >= 2 and us2.connected)
                assert h2.resyncs == us2.stats["connects"] >= 3
            finally:
                await us2.stop()

    run(go())


def test_bad_and_unknown_events_are_counted_and_secrets_never_logged(caplog) -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            h = Recorder()
            us = UserDataStream(sim.rest_url, sim.ws_url, KEY, h, backoff_initial_s=0.05)
            await us.start()
            try:
                await wait_for(lambda: us.connected)
                key = sim.listen_key.lower()
                sim.ws.publish(key, {"e": "MARGIN_CALL", "E": 1, "cw": "3.1", "p": []})
                sim.ws.publish(key, {"e": "TRADE_LITE", "E": 1})
                sim.ws.publish(key, {"e": "ORDER_TRADE_UPDATE", "E": 1, "o": "not an order"})
                sim.ws.publish(key, {"e": "ACCOUNT_UPDATE", "E": 1, "a": {"B": [{"a": "USDT"}]}})
                await ex.create_order(BTC, "market", "buy", 0.004, None, {"newClientOrderId": "bad-1"})
                await wait_for(lambda: any(f.client_order_id == "bad-1" for f in h.fills))
                # refused reconnects log a failure that names neither the API key nor the listenKey
                await admin(sim, "POST", "/_sim/faults", {"refuse_ws": True})
                await admin(sim, "POST", "/_sim/faults", {"drop_ws": True})
                await wait_for(lambda: us.stats["connect_errors"] >= 2)
                await admin(sim, "POST", "/_sim/faults", {"refuse_ws": False})
                await wait_for(lambda: us.connected)
            finally:
                await us.stop()
            assert us.stats["unknown"] == 2 and us.unknown_events == {"MARGIN_CALL": 1, "TRADE_LITE": 1}
            assert us.stats["bad"] == 2
            assert KEY not in repr(us) and key not in repr(us)
            text = "\n".join(r.getMessage() for r in caplog.records)
            assert "connect to" in text and "undecodable" in text
            assert KEY not in text and key not in text.lower()

    with caplog.at_level(logging.DEBUG, logger="kaizen.venue.userstream"):
        run(go())


@pytest.mark.parametrize("sim_layout, ok", [("legacy", True), ("routed", False)])
def test_legacy_layout_uses_the_unrouted_path(sim_layout: str, ok: bool) -> None:
    """Declared legacy, the stream opens `{base}/ws/<key>`: that works on a venue still on the old
    layout, and on today's Binance it is accepted and silent (so the router's REST polling stays
    the safety net there)."""

    async def go() -> None:
        async with sim_and_client(ws_layout=sim_layout) as (sim, ex):
            h = Recorder()
            us = UserDataStream(sim.rest_url, sim.ws_url, KEY, h, ws_layout="legacy")
            await us.start()
            try:
                await wait_for(lambda: us.connected)
                assert [c.route for c in sim.ws.conns] == ["legacy"]
                await ex.create_order(BTC, "market", "buy", 0.004, None, {"newClientOrderId": "lg-1"})
                if ok:
                    await wait_for(lambda: len(h.fills) == 1)
                else:
                    await asyncio.sleep(0.5)
                    assert h.fills == [] and h.orders == []
            finally:
                await us.stop()

    run(go())


def test_missing_api_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="API key"):
        UserDataStream("http://127.0.0.1:1", "ws://127.0.0.1:2", "", Recorder())
    with pytest.raises(ValueError, match="ends in /ws"):
        UserDataStream("http://127.0.0.1:1", "ws://127.0.0.1:2/ws", "k", Recorder())
