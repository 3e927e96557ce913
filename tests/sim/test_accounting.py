"""Fills, fees and funding in the account (as read back through ccxt) equal an independent
recomputation from the simulator's trade and funding logs; liquidation at the documented price."""

from __future__ import annotations

import math
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.sim.helpers import BTC, admin, run, sim_and_client

MAKER, TAKER = 0.0002, 0.0005
EIGHT_H = 8 * 3_600_000


def recompute(trades: list[dict[str, Any]], funding: list[dict[str, Any]], start: float) -> dict[str, Any]:
    """Average-cost position accounting written independently of the simulator's code."""
    pos: dict[str, list[float]] = {}  # symbol -> [signed qty, entry]
    realized = fees = 0.0
    events = [(t["time"], 0, t) for t in trades] + [(f["time"], 1, f) for f in funding]
    fund_total = 0.0
    for _, kind, e in sorted(events, key=lambda x: (x[0], x[1])):
        if kind == 1:
            q = pos.get(e["symbol"], [0.0, 0.0])[0]
            assert e["qty"] == pytest.approx(q, abs=1e-9), "funding charged on the position held"
            pay = -q * e["mark"] * e["rate"]
            assert e["payment"] == pytest.approx(pay, rel=1e-12, abs=1e-12)
            fund_total += pay
            continue
        q, entry = pos.get(e["symbol"], [0.0, 0.0])
        sgn = 1.0 if e["side"] == "BUY" else -1.0
        price, qty = float(e["price_str"]), float(e["qty_str"])
        fee = price * qty * (MAKER if e["maker"] else TAKER)
        assert e["commission"] == pytest.approx(fee, rel=1e-12)
        fees += fee
        if q == 0 or (q > 0) == (sgn > 0):
            entry = (abs(q) * entry + qty * price) / (abs(q) + qty)
            q += sgn * qty
        else:
            close = min(abs(q), qty)
            realized += (price - entry) * close * (1 if q > 0 else -1)
            q += sgn * qty
            if abs(q) < 1e-12:
                q, entry = 0.0, 0.0
            elif (q > 0) == (sgn > 0):  # flipped
                entry = price
        pos[e["symbol"]] = [round(q, 9), entry]
    return {
        "positions": pos,
        "realized": realized,
        "fees": fees,
        "funding": fund_total,
        "wallet": start + realized - fees + fund_total,
    }


def test_fills_fees_and_funding_match_independent_recomputation() -> None:
    async def go() -> None:
        async with sim_and_client(seed=21, speed=60.0) as (sim, ex):
            eth = "ETH/USDT:USDT"
            await ex.create_order(BTC, "market", "buy", 0.02, None, {"newClientOrderId": "a1"})
            await ex.create_order(eth, "market", "sell", 0.5, None, {"newClientOrderId": "a2"})
            # a resting buy that the scripted market then trades through: a maker fill at its price
            mark = sim.markets["BTCUSDT"].mark
            limit = round(mark * 0.995, 1)
            o = await ex.create_order(BTC, "limit", "buy", 0.01, limit, {"newClientOrderId": "a3"})
            assert o["status"] == "open"
            await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": mark * 0.99})
            o = await ex.fetch_order(o["id"], BTC)
            assert o["status"] == "closed" and o["average"] == pytest.approx(limit)
            # through one funding boundary holding both positions
            await admin(sim, "POST", "/_sim/advance", {"ms": EIGHT_H})
            await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "release": True})
            await ex.create_order(BTC, "market", "sell", 0.05, None, {"newClientOrderId": "a4"})  # flip
            await ex.create_order(
                eth, "market", "buy", 0.2, None, {"newClientOrderId": "a5", "reduceOnly": True}
            )
            await admin(sim, "POST", "/_sim/advance", {"ms": EIGHT_H})
            await ex.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "a6"})

            trades = await admin(sim, "GET", "/_sim/trades")
            funding = await admin(sim, "GET", "/_sim/funding")
            assert len(funding) == 4 and {f["symbol"] for f in funding} == {"BTCUSDT", "ETHUSDT"}
            assert any(t["maker"] for t in trades) and any(not t["maker"] for t in trades)
            exp = recompute(trades, funding, 10_000.0)

            bal = await ex.fetch_balance()
            assert float(bal["info"]["totalWalletBalance"]) == pytest.approx(exp["wallet"], abs=1e-6)
            positions = {p["symbol"]: p for p in await ex.fetch_positions()}
            for ccxt_sym, sym in ((BTC, "BTCUSDT"), (eth, "ETHUSDT")):
                q, entry = exp["positions"][sym]
                p = positions[ccxt_sym]
                signed = p["contracts"] * (1 if p["side"] == "long" else -1)
                assert signed == pytest.approx(q, abs=1e-9)
                assert p["entryPrice"] == pytest.approx(entry, rel=1e-9)
            # the trade history and income history ccxt reads back say the same
            mine = await ex.fetch_my_trades(BTC) + await ex.fetch_my_trades(eth)
            assert sorted(t["id"] for t in mine) == sorted(str(t["id"]) for t in trades)
            assert sum(t["fee"]["cost"] for t in mine) == pytest.approx(exp["fees"], abs=1e-6)
            hist = await ex.fetch_funding_history(BTC) + await ex.fetch_funding_history(eth)
            assert sum(h["amount"] for h in hist) == pytest.approx(exp["funding"], abs=1e-6)
            income = await ex.fapiPrivateGetIncome({"limit": 1000})
            by = {}
            for r in income:
                by[r["incomeType"]] = by.get(r["incomeType"], 0.0) + float(r["income"])
            assert by["REALIZED_PNL"] == pytest.approx(exp["realized"], abs=1e-6)
            assert by["COMMISSION"] == pytest.approx(-exp["fees"], abs=1e-6)
            assert by["FUNDING_FEE"] == pytest.approx(exp["funding"], abs=1e-6)
            # funding rates as Binance computes them, and published in its history
            rates = await ex.fetch_funding_rate_history(BTC)
            assert [r["fundingRate"] for r in rates] == pytest.approx(
                [f["rate"] for f in funding if f["symbol"] == "BTCUSDT"], abs=1e-8
            )
            for f in funding:
                assert abs(f["rate"]) <= 0.0075 and f["time"] % EIGHT_H == 0

    run(go())


def _lp(wb: float, q: float, entry: float, mmr: float, cum: float, side: int) -> float:
    return (wb + cum - side * q * entry) / (q * mmr - side * q)


@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_liquidation_at_the_documented_price(mode: str) -> None:
    async def go() -> None:
        async with sim_and_client(seed=4, starting_balance=1_000.0) as (sim, ex):
            await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": 42_000.0})
            if mode == "isolated":
                await ex.set_margin_mode("isolated", BTC)
            await ex.set_leverage(20, BTC)
            qty = 0.4  # 16.8k notional: bracket 1 (<= 50k) of the simplified BTC table, mmr 0.4 %
            o = await ex.create_order(BTC, "market", "buy", qty, None, {"newClientOrderId": "liq-1"})
            entry = o["average"]
            bal = await ex.fetch_balance()
            wallet = float(bal["info"]["totalWalletBalance"])
            wb = qty * entry / 20 if mode == "isolated" else wallet
            lp = _lp(wb, qty, entry, 0.004, 0.0, 1)
            pos = (await ex.fetch_positions([BTC]))[0]
            assert pos["liquidationPrice"] == pytest.approx(lp, rel=1e-9)
            assert pos["marginMode"] == mode
            # just above: still alive; just below: liquidated at LP (rounded to the tick)
            await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": lp + 2.0})
            assert (await ex.fetch_positions([BTC]))[0]["contracts"] == pytest.approx(qty)
            await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": lp - 2.0})
            pos = await ex.fetch_positions([BTC])
            assert not pos or pos[0]["contracts"] == 0
            liq = sim.trade_log[-1]
            assert liq["liquidation"] and liq["side"] == "SELL" and liq["qty"] == pytest.approx(qty)
            assert liq["price"] == pytest.approx(round(lp / 0.1) * 0.1, abs=1e-6)
            assert not liq["maker"] and liq["commission"] == pytest.approx(liq["price"] * qty * TAKER)
            # what is left is the maintenance margin at LP minus the fee (and, cross, the rest)
            bal = await ex.fetch_balance()
            loss = (entry - liq["price"]) * qty
            assert float(bal["info"]["totalWalletBalance"]) == pytest.approx(
                wallet - loss - liq["commission"], abs=1e-6
            )
            left_in_margin = wb - loss
            assert left_in_margin == pytest.approx(qty * liq["price"] * 0.004, abs=qty * 0.1)
            assert math.isfinite(lp) and lp < entry

    run(go())


def test_adding_isolated_margin_moves_the_liquidation_price() -> None:
    async def go() -> None:
        async with sim_and_client(seed=4, starting_balance=2_000.0) as (sim, ex):
            await admin(sim, "POST", "/_sim/price", {"symbol": "BTCUSDT", "price": 42_000.0})
            await ex.set_margin_mode("isolated", BTC)
            await ex.set_leverage(20, BTC)
            o = await ex.create_order(BTC, "market", "buy", 0.4)
            entry = o["average"]
            before = (await ex.fetch_positions([BTC]))[0]["liquidationPrice"]
            await ex.add_margin(BTC, 100.0)
            after = (await ex.fetch_positions([BTC]))[0]["liquidationPrice"]
            assert after == pytest.approx(_lp(0.4 * entry / 20 + 100.0, 0.4, entry, 0.004, 0.0, 1), rel=1e-9)
            assert after < before
            with pytest.raises(ccxt.ExchangeError, match="-4051"):
                await ex.reduce_margin(BTC, 10_000.0)
            await ex.reduce_margin(BTC, 100.0)
            assert (await ex.fetch_positions([BTC]))[0]["liquidationPrice"] == pytest.approx(before, rel=1e-9)

    run(go())
