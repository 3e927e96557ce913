"""Every ccxt binanceusdm method Kaizen may call is served (no unknown path), with sane answers."""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt
import pytest

from tests.sim.helpers import BTC, run, sim_and_client

CALLS = [
    ("fetch_ticker", (BTC,)),
    ("fetch_tickers", ()),
    ("fetch_trades", (BTC,)),
    ("fetch_ohlcv", (BTC, "1m")),
    ("fetch_funding_rates", ()),
    ("fetch_leverage_tiers", ([BTC],)),
    ("fetch_mark_ohlcv", (BTC, "1m")),
    ("fetch_index_ohlcv", (BTC, "1m")),
    ("fetch_leverage", (BTC,)),
    ("fetch_positions", ()),
    ("fetch_orders", (BTC,)),
    ("fetch_closed_orders", (BTC,)),
    ("fetch_position_mode", (BTC,)),
    ("fetch_trading_fee", (BTC,)),
    ("fetch_margin_mode", (BTC,)),
    ("fetch_open_orders", ()),
    ("fetch_time", ()),
    ("fetch_status", ()),
    ("fetch_funding_rate", (BTC,)),
    ("fetch_funding_interval", (BTC,)),
    ("fetch_l2_order_book", (BTC,)),
    ("fetch_bids_asks", ([BTC],)),
    ("fetch_last_prices", ()),
    ("fetch_my_trades", (BTC,)),
    ("fetch_balance", ()),
    ("fetch_open_interest", (BTC,)),
    ("fetch_funding_history", (BTC,)),
]


def test_ccxt_methods_are_all_served() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            ex.enableRateLimit = False
            await ex.create_order(BTC, "market", "buy", 0.003)
            await asyncio.sleep(0.3)  # a few published steps, so bars and trades exist
            got = {}
            for name, args in CALLS:
                got[name] = await getattr(ex, name)(*args)
            assert sim.rest.unknown_paths == []
            assert got["fetch_trading_fee"]["maker"] == 0.0002 and got["fetch_trading_fee"]["taker"] == 0.0005
            assert got["fetch_leverage"]["longLeverage"] == 20
            assert got["fetch_margin_mode"]["marginMode"] == "cross"
            assert got["fetch_position_mode"]["hedged"] is False
            assert got["fetch_ohlcv"] and got["fetch_trades"]
            tiers = got["fetch_leverage_tiers"][BTC]
            assert tiers[0]["maintenanceMarginRate"] == 0.004 and tiers[0]["maxLeverage"] == 125
            assert got["fetch_funding_interval"]["interval"] == "8h"
            with pytest.raises(ccxt.ExchangeError, match="-4068"):
                await ex.set_position_mode(True)

    run(go())
