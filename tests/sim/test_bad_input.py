"""Bad requests get Binance error answers, never a crash or an HTTP 500."""

from __future__ import annotations

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.venue.sim import Simulator
from kaizen.venue.sim.exchange import SimError
from tests.sim.helpers import run

junk = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "0", "-1", "1e9", "nan", "inf", "0.0011", "42000.05", "BTCUSDT", "BUY", "LIMIT", "GTX", "true"]
    ),
)
PARAMS = [
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "timeInForce",
    "reduceOnly",
    "newClientOrderId",
    "positionSide",
    "orderId",
    "origClientOrderId",
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(PARAMS), junk, max_size=9))
def test_order_endpoints_answer_only_binance_errors(params: dict[str, str]) -> None:
    sim = Simulator(seed=1, symbols=("BTCUSDT",))
    ex = sim.exchange
    for fn in (
        ex.new_order,
        ex.amend,
        lambda p: ex.cancel(p.get("symbol", ""), p.get("orderId"), p.get("origClientOrderId")),
    ):
        try:
            fn(dict(params))
        except SimError as e:
            assert e.code < 0 and e.msg


def test_http_bad_params_are_binance_errors() -> None:
    async def go() -> None:
        sim = Simulator(seed=1)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as s:
                for path, code in [
                    ("/fapi/v1/depth?symbol=BTCUSDT&limit=abc", -1102),
                    ("/fapi/v1/depth?symbol=NOPE", -1121),
                    ("/fapi/v1/depth?symbol=BTCUSDT&limit=7", -1102),
                    ("/fapi/v1/klines?symbol=BTCUSDT&interval=7x", -1120),
                    ("/fapi/v2/balance", -1102),  # no timestamp
                    ("/fapi/v1/nothing", -5000),
                ]:
                    async with s.get(sim.rest_url + path) as r:
                        body = await r.json()
                        assert body["code"] == code, (path, body)
                        assert 400 <= r.status < 500
                async with s.post(sim.rest_url + "/_sim/faults", data='{"bogus": 1}') as r:
                    assert r.status == 400 and "bogus" in (await r.json())["error"]
                async with s.post(sim.rest_url + "/_sim/price", data="not json") as r:
                    assert r.status == 400
            assert sim.rest.internal_errors == 0
        finally:
            await sim.stop()

    run(go())
