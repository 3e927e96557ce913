"""The real `ccxt.pro` binanceusdm client against the simulator's websockets.

ccxt 4.5 speaks Binance's routed layout: it opens `/public/ws/...` for depth and trades,
`/market/ws/...` for aggTrade and mark price, and `/private/ws?listenKey=...` for user data.
Before the simulator served those routes, every watch below failed with a 404 on the upgrade.
"""

from __future__ import annotations

import asyncio

import aiohttp

from tests.sim.helpers import BTC, KEY, SECRET, run, wait_for


def _rows(rows) -> list[tuple[float, float]]:
    return [(float(r[0]), float(r[1])) for r in rows]


def test_ccxt_pro_watches_book_trades_mark_and_own_fills_on_the_routes() -> None:
    async def go() -> None:
        import ccxt.pro as ccxtpro

        from kaizen.venue.ccxt_urls import point_binanceusdm_at
        from kaizen.venue.sim import Simulator

        sim = Simulator(seed=23, speed=60.0, api_key=KEY, api_secret=SECRET)
        await sim.start()
        ex = ccxtpro.binanceusdm(
            {
                "apiKey": KEY,
                "secret": SECRET,
                "timeout": 5000,
                # the positions snapshot is a REST side task of the private socket; not under test
                "options": {"watchPositions": {"fetchPositionsSnapshot": False}},
            }
        )
        point_binanceusdm_at(ex, sim.rest_url, ws_url=sim.ws_url)
        try:
            await ex.load_markets()

            # Order book: at the same update id, ccxt's book (REST snapshot + /public diffs) is the
            # venue's REST depth, level for level.
            # (REST read with a plain client: ccxt's own throttle would wait out the depth weight.)
            first = (await asyncio.wait_for(ex.watch_order_book(BTC), 10))["nonce"]
            matched = 0
            for _ in range(60):
                ob = await asyncio.wait_for(ex.watch_order_book(BTC), 10)
                nonce, bids, asks = ob["nonce"], _rows(ob["bids"]), _rows(ob["asks"])
                assert nonce > first  # a book built from diffs, not the snapshot alone
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"{sim.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
                        snap = await r.json()
                if int(snap["lastUpdateId"]) != nonce:
                    continue  # the market stepped between the two reads
                assert bids == _rows(snap["bids"]) and asks == _rows(snap["asks"])
                assert len(bids) >= 20 and bids[0][0] < asks[0][0]
                matched += 1
                if matched == 3:
                    break
            assert matched == 3, f"ccxt's book matched the REST depth at only {matched} update ids"

            # Trades: aggTrade (from /market) and trade (from /public) are the simulator's trades.
            spec = sim.markets["BTCUSDT"].spec
            seen: dict[str, list] = {"aggTrade": [], "trade": []}
            for name in ("aggTrade", "trade"):
                while not seen[name]:
                    trades = await asyncio.wait_for(ex.watch_trades(BTC, params={"name": name}), 10)
                    seen[name] += [t for t in trades if t["info"]["e"] == name]
            published = {t.trade_id: t for t in sim.recent_trades["BTCUSDT"]}
            for name, trades in seen.items():
                for t in trades:
                    src = published[int(t["id"])]
                    assert t["price"] == float(spec.fmt_price(src.price_ticks)), name
                    assert t["amount"] == float(spec.fmt_qty(src.lots)), name

            # Mark price (markPrice@1s from /market)
            mp = await asyncio.wait_for(ex.watch_mark_price(BTC), 10)
            assert mp["info"]["e"] == "markPriceUpdate"
            assert abs(mp["markPrice"] / sim.markets["BTCUSDT"].mark - 1) < 0.01

            # Own orders and fills through /private (listenKey by REST, as ccxt does it)
            orders = asyncio.create_task(ex.watch_orders(BTC))
            fills = asyncio.create_task(ex.watch_my_trades(BTC))
            await wait_for(lambda: any(c.route == "private" for c in sim.ws.conns), 10)
            placed = await ex.create_order(BTC, "market", "buy", 0.006, None, {"newClientOrderId": "pro-1"})
            got_orders = await asyncio.wait_for(orders, 10)
            while got_orders[-1]["status"] != "closed":
                got_orders = await asyncio.wait_for(ex.watch_orders(BTC), 10)
            got_fills = await asyncio.wait_for(fills, 10)
            ours = [t for t in sim.trade_log if t["orderId"] == int(placed["id"])]
            while sum(t["amount"] for t in got_fills) < 0.006 - 1e-12:
                got_fills = await asyncio.wait_for(ex.watch_my_trades(BTC), 10)
            assert got_orders[-1]["id"] == placed["id"] and got_orders[-1]["clientOrderId"] == "pro-1"
            assert got_orders[-1]["filled"] == 0.006
            assert sorted((int(t["id"]), t["price"], t["amount"]) for t in got_fills) == sorted(
                (t["id"], t["price"], t["qty"]) for t in ours
            )
            assert all(t["order"] == placed["id"] for t in got_fills)

            # ccxt used the routes, and every stream sits on the route that serves it
            subs = {(c.route, s) for c in sim.ws.conns for s in c.live}
            assert {
                ("public", "btcusdt@depth@100ms"),
                ("public", "btcusdt@trade"),
                ("market", "btcusdt@aggtrade"),
                ("market", "btcusdt@markprice@1s"),
                ("private", sim.listen_key.lower()),
            } <= subs
            assert "legacy" not in {c.route for c in sim.ws.conns}
        finally:
            await ex.close()
            await sim.stop()

    run(go())
