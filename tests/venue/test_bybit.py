"""Bybit linear adapter, offline. It cannot be exercised against the local simulator (which speaks
Binance's API), so this checks what can be checked honestly without Bybit: symbol mapping, the fee
schedule from config, client-id params, and market filters parsed by ccxt's own bybit parser from a
response in the documented v5 instruments-info format (the network call is the only thing replaced)."""

import asyncio

import msgspec

from kaizen.config import Config, loads
from kaizen.venue import make_venue
from kaizen.venue.bybit import BYBIT_DEFAULT_FEES, BybitLinear
from kaizen.venue.ccxt_venue import kaizen_to_unified, unified_to_kaizen

INSTRUMENT = {
    "symbol": "BTCUSDT",
    "contractType": "LinearPerpetual",
    "status": "Trading",
    "baseCoin": "BTC",
    "quoteCoin": "USDT",
    "launchTime": "1585526400000",
    "deliveryTime": "0",
    "deliveryFeeRate": "",
    "priceScale": "2",
    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
    "lotSizeFilter": {
        "maxOrderQty": "1190.000",
        "minOrderQty": "0.001",
        "qtyStep": "0.001",
        "postOnlyMaxOrderQty": "1190.000",
        "maxMktOrderQty": "500.000",
        "minNotionalValue": "5",
    },
    "unifiedMarginTrade": True,
    "fundingInterval": 480,
    "settleCoin": "USDT",
    "copyTrading": "both",
    "upperFundingRate": "0.00375",
    "lowerFundingRate": "-0.00375",
    "isPreListing": False,
    "preListingInfo": None,
    "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
}


def bybit_cfg() -> Config:
    return loads(
        b'mode = "paper"\nsymbols = ["BTCUSDT"]\n[venue]\nname = "bybit"\n'
        b"[fees]\nmaker = 0.0002\ntaker = 0.00055\n"
    )


def test_symbol_mapping():
    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"):
        assert unified_to_kaizen(kaizen_to_unified(s)) == s
    assert kaizen_to_unified("SOLUSDT") == "SOL/USDT:USDT"


def test_make_venue_picks_bybit_with_its_fees():
    v = make_venue(bybit_cfg())
    try:
        assert isinstance(v, BybitLinear) and v.ex.id == "bybit"
        assert v.fees == BYBIT_DEFAULT_FEES == (0.0002, 0.00055)
        p = v._order_params("kzabc-1", reduce_only=True, post_only=True)
        assert p == {"clientOrderId": "kzabc-1", "reduceOnly": True, "postOnly": True}
    finally:
        asyncio.run(v.close())


def test_markets_parsed_through_ccxt_bybit(monkeypatch):
    async def go():
        v = make_venue(bybit_cfg())
        calls = []

        async def instruments(params=None):
            params = params or {}
            calls.append(dict(params))
            lst = [] if params.get("status") == "PreLaunch" else [INSTRUMENT]
            return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": lst}, "time": 1}

        v.ex.publicGetV5MarketInstrumentsInfo = instruments
        v.ex.has = {**v.ex.has, "fetchCurrencies": False}
        try:
            await v.connect()
        finally:
            await v.close()
        return v, calls

    v, calls = asyncio.run(go())
    m = v.markets["BTCUSDT"]
    assert (m.tick_size, m.lot_size, m.min_qty, m.min_notional) == (0.1, 0.001, 0.001, 5.0)
    assert m.market_max_qty == 500.0 and m.venue_symbol == "BTC/USDT:USDT"
    assert v.funding_interval_hours("BTCUSDT") == 8.0  # 480 minutes
    assert all(c.get("category") == "linear" for c in calls)
    assert msgspec.json.decode(msgspec.json.encode(m))["symbol"] == "BTCUSDT"
