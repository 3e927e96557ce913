"""Order types and matching rules, through the real ccxt client (no automatic market steps, so
every match happens when the test moves the scripted price)."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from tests.sim.helpers import BTC, admin, run, sim_and_client

QUIET = {"publish_interval_s": 3600.0}


async def _pin(sim, price: float) -> None:  # noqa: ANN001
    await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": price})


def test_post_only_ioc_fok_and_reduce_only() -> None:
    async def go() -> None:
        async with sim_and_client(**QUIET) as (sim, ex):
            await _pin(sim, 42_000.05)  # touch: bid 42000.0 / ask 42000.1
            book = await ex.fetch_order_book(BTC, 5)
            bid, ask = book["bids"][0][0], book["asks"][0][0]
            assert (bid, ask) == (42_000.0, 42_000.1)
            with pytest.raises(ccxt.InvalidOrder, match="-5022"):
                await ex.create_order(BTC, "limit", "buy", 0.01, ask, {"postOnly": True})
            po = await ex.create_order(BTC, "limit", "buy", 0.01, bid, {"postOnly": True})
            assert po["status"] == "open" and sim.exchange.orders[int(po["id"])].tif == "GTX"
            # IOC priced at the ask takes only the ask level, the rest expires
            ask_qty = book["asks"][0][1]
            ioc = await ex.create_order(
                BTC, "limit", "buy", round(ask_qty + 1.0, 3), ask, {"timeInForce": "IOC"}
            )
            assert ioc["status"] == "expired" and ioc["filled"] == pytest.approx(ask_qty)
            # FOK that cannot fill fully: nothing happens
            n = len(sim.trade_log)
            fok = await ex.create_order(BTC, "limit", "buy", 0.5, bid + 0.1, {"timeInForce": "FOK"})
            assert fok["status"] == "expired" and fok["filled"] == 0 and len(sim.trade_log) == n
            # reduce-only: rejected when it would only increase; trimmed to the position
            with pytest.raises(ccxt.ExchangeError, match="-2022"):
                await ex.create_order(BTC, "market", "buy", 0.01, None, {"reduceOnly": True})
            ro = await ex.create_order(
                BTC, "market", "sell", round(ask_qty + 5.0, 3), None, {"reduceOnly": True}
            )
            assert ro["filled"] == pytest.approx(ask_qty)
            pos = await ex.fetch_positions([BTC])
            assert not pos or pos[0]["contracts"] == 0

    run(go())


def test_cancel_and_query_unknown_orders() -> None:
    async def go() -> None:
        async with sim_and_client(**QUIET) as (sim, ex):
            with pytest.raises(ccxt.ExchangeError, match="-2011"):
                await ex.cancel_order("123", BTC)
            with pytest.raises(ccxt.OrderNotFound, match="-2013"):
                await ex.fetch_order("123", BTC)
            o = await ex.create_order(BTC, "market", "buy", 0.003)
            with pytest.raises(ccxt.ExchangeError, match="-2011"):  # filled: nothing to cancel
                await ex.cancel_order(o["id"], BTC)

    run(go())


def test_price_time_priority_and_own_orders_in_the_public_book() -> None:
    async def go() -> None:
        async with sim_and_client(starting_balance=1_000_000.0, **QUIET) as (sim, ex):
            await ex.set_leverage(20, BTC)
            await _pin(sim, 42_100.05)
            p = 42_000.0
            a = await ex.create_order(BTC, "limit", "buy", 6.0, p, {"newClientOrderId": "first"})
            b = await ex.create_order(BTC, "limit", "buy", 6.0, p, {"newClientOrderId": "second"})
            c = await ex.create_order(BTC, "limit", "buy", 0.5, p - 0.1, {"newClientOrderId": "lower"})
            await admin(sim, "POST", "/_sim/step")
            snap = await ex.fetch_order_book(BTC, 1000)
            levels = dict((px, q) for px, q in snap["bids"])
            assert levels[p] >= 12.0 and levels[p - 0.1] >= 0.5  # ours are part of the book
            # the market falls so that only the ask level at p trades through our bids
            await _pin(sim, p - 0.05)
            fa, fb, fc = [(await ex.fetch_order(o["id"], BTC))["filled"] for o in (a, b, c)]
            level = sum(t["qty"] for t in sim.trade_log)
            assert level > 0 and fc == 0
            assert fa == pytest.approx(min(6.0, level))
            assert fb == pytest.approx(max(0.0, level - 6.0))
            assert all(t["maker"] and t["price"] == p for t in sim.trade_log)

    run(go())


def test_amend_keeps_the_id_and_loses_priority_and_leverage_cap() -> None:
    async def go() -> None:
        async with sim_and_client(starting_balance=1_000_000.0, **QUIET) as (sim, ex):
            await _pin(sim, 42_100.05)
            p = 42_000.0
            a = await ex.create_order(BTC, "limit", "buy", 6.0, p - 0.1, {"newClientOrderId": "amend-me"})
            b = await ex.create_order(BTC, "limit", "buy", 6.0, p, {"newClientOrderId": "stays"})
            e = await ex.edit_order(a["id"], BTC, "limit", "buy", 6.0, p)
            assert e["id"] == a["id"] and e["price"] == p and e["status"] == "open"
            await _pin(sim, p - 0.05)  # only the ask level at p trades through
            fa, fb = [(await ex.fetch_order(o["id"], BTC))["filled"] for o in (a, b)]
            level = sum(t["qty"] for t in sim.trade_log)
            assert fb == pytest.approx(min(6.0, level)) and fa == pytest.approx(max(0.0, level - 6.0))
            # 125x allows 50k notional on BTC (bracket 1): a bigger position is refused
            await ex.cancel_all_orders(BTC)
            await ex.set_leverage(125, BTC)
            with pytest.raises(ccxt.ExchangeError, match="-2027"):
                await ex.create_order(BTC, "market", "buy", 2.0)

    run(go())
