"""The real ccxt binanceusdm client against the simulator on loopback: markets, orders, fills."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from tests.sim.helpers import BTC, KEY, SECRET, admin, run, sim_and_client


def test_load_markets_filters_match_binance() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            m = ex.markets
            assert set(m) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT"}
            assert m[BTC]["precision"]["price"] == 0.1 and m[BTC]["precision"]["amount"] == 0.001
            assert m["SOL/USDT:USDT"]["precision"]["amount"] == 1
            assert m["BNB/USDT:USDT"]["precision"]["price"] == 0.01
            assert m[BTC]["limits"]["cost"]["min"] == 100
            assert m[BTC]["linear"] and m[BTC]["swap"]
            assert sim.rest.unknown_paths == []

    run(go())


def test_orders_placed_are_orders_received() -> None:
    async def go() -> None:
        async with sim_and_client(seed=11) as (sim, ex):
            book = await ex.fetch_order_book(BTC, 5)
            sent = [
                ("c-mkt-1", "market", "buy", 0.005, None, {}),
                ("c-lim-1", "limit", "sell", 0.004, round(book["asks"][0][0] * 1.01, 1), {}),
                (
                    "c-ioc-1",
                    "limit",
                    "buy",
                    0.003,
                    round(book["asks"][0][0] * 1.002, 1),
                    {"timeInForce": "IOC"},
                ),
                ("c-mkt-2", "market", "sell", 0.002, None, {"reduceOnly": True}),
            ]
            results = []
            for cid, typ, side, qty, price, extra in sent:
                results.append(
                    await ex.create_order(BTC, typ, side, qty, price, {"newClientOrderId": cid, **extra})
                )
            got = sim.orders_received
            assert [r["params"]["newClientOrderId"] for r in got] == [s[0] for s in sent]
            for r, (_cid, typ, side, qty, price, extra) in zip(got, sent, strict=True):
                p = r["params"]
                assert r["accepted"]
                assert p["symbol"] == "BTCUSDT" and p["type"] == typ.upper() and p["side"] == side.upper()
                assert float(p["quantity"]) == qty
                if price is not None:
                    assert float(p["price"]) == price
                if extra.get("reduceOnly"):
                    assert p["reduceOnly"] == "true"
            assert results[0]["status"] == "closed" and results[0]["filled"] == 0.005
            assert results[1]["status"] == "open"
            assert results[2]["status"] == "closed" and results[2]["filled"] == 0.003
            over_http = await admin(sim, "GET", "/_sim/orders")
            assert [o["params"]["newClientOrderId"] for o in over_http] == [s[0] for s in sent]
            open_ = await ex.fetch_open_orders(BTC)
            assert [o["clientOrderId"] for o in open_] == ["c-lim-1"]
            await ex.cancel_all_orders(BTC)
            assert await ex.fetch_open_orders(BTC) == []
            pos = await ex.fetch_positions([BTC])
            assert pos[0]["contracts"] == pytest.approx(0.006) and pos[0]["side"] == "long"

    run(go())


def test_duplicate_client_id_never_makes_a_second_order() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            await ex.create_order(BTC, "market", "buy", 0.003, None, {"newClientOrderId": "dup-1"})
            with pytest.raises(ccxt.ExchangeError, match="-4116"):
                await ex.create_order(BTC, "market", "buy", 0.003, None, {"newClientOrderId": "dup-1"})
            assert [r["error"] for r in sim.orders_received] == [
                None,
                {"code": -4116, "msg": "ClientOrderId is duplicated."},
            ]
            assert len(sim.trade_log) >= 1 and {t["clientOrderId"] for t in sim.trade_log} == {"dup-1"}
            pos = await ex.fetch_positions([BTC])
            assert pos[0]["contracts"] == pytest.approx(0.003)

    run(go())


def test_bad_signature_key_and_timestamp_get_binance_errors() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            bad_secret = ccxt.binanceusdm({"apiKey": KEY, "secret": "wrong"})
            bad_key = ccxt.binanceusdm({"apiKey": "nope", "secret": SECRET})
            from kaizen.venue.ccxt_urls import point_binanceusdm_at

            for c in (bad_secret, bad_key):
                point_binanceusdm_at(c, sim.rest_url)
                c.markets = ex.markets
                c.markets_by_id = ex.markets_by_id
            try:
                with pytest.raises(ccxt.AuthenticationError, match="-1022"):
                    await bad_secret.fetch_balance()
                with pytest.raises(ccxt.AuthenticationError, match="-2015"):
                    await bad_key.fetch_balance()
                ex.options["timeDifference"] = 120_000  # clock skew: timestamps 2 min behind
                with pytest.raises(ccxt.InvalidNonce, match="-1021"):
                    await ex.fetch_balance()
            finally:
                await bad_secret.close()
                await bad_key.close()

    run(go())


@pytest.mark.parametrize(
    "qty,price_mult,code,exc",
    [
        ("0.0005", None, "-1111", ccxt.BadRequest),  # below the lot step: precision
        ("0.001", None, "-4164", ccxt.ExchangeError),  # ~42 USDT < 100 min notional
        ("5", None, "-2019", ccxt.ExchangeError),  # 5 BTC at 20x needs ~10.5k margin
        ("0.01", 1.2, "-4016", ccxt.ExchangeError),  # limit 20 % above mark: price band
        ("0", None, "-4003", ccxt.ExchangeError),  # zero quantity
    ],
)
def test_filters_answer_binance_codes(qty: str, price_mult: float | None, code: str, exc: type) -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            mark = sim.markets["BTCUSDT"].mark
            params = {"symbol": "BTCUSDT", "side": "BUY", "quantity": qty, "newClientOrderId": "f-1"}
            if price_mult is None:
                params["type"] = "MARKET"
            else:
                params.update(type="LIMIT", timeInForce="GTC", price=f"{mark * price_mult:.1f}")
            # through ccxt's raw endpoint so the simulator (not ccxt's rounding) sees the exact value
            with pytest.raises(exc, match=code):
                await ex.fapiPrivatePostOrder(params)
            assert sim.orders_received[-1]["error"]["code"] == int(code)

    run(go())


def test_fee_tier_sets_the_rates_charged() -> None:
    async def go() -> None:
        async with sim_and_client(fee_tier=3) as (sim, ex):
            fee = await ex.fetch_trading_fee(BTC)
            assert (fee["maker"], fee["taker"]) == (0.00012, 0.00032)
            o = await ex.create_order(BTC, "market", "buy", 0.01)
            trades = await ex.fetch_my_trades(BTC)
            assert sum(t["fee"]["cost"] for t in trades) == pytest.approx(o["cost"] * 0.00032, rel=1e-9)
            assert (await ex.fetch_balance())["info"]["feeTier"] == 3

    run(go())
