"""Property, end to end: hypothesis drives random signals, market paths (scripted on the simulator),
fat-finger reference prices, stale data and random limits through the real router, the real ccxt
client and the simulator. Every order the venue accepted is then checked, independently of the
router's bookkeeping, against the configured limits: position notional per symbol, gross and net
leverage (against the venue's own equity), order rate, price band, and no new risk on stale data."""

from __future__ import annotations

import asyncio
import math
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaizen.risk import size_position
from tests.venue.harness import Session

SYMS = ["BTCUSDT", "ETHUSDT"]

steps_st = st.lists(
    st.tuples(
        st.sampled_from(SYMS),
        st.floats(-2.0, 2.0),
        st.floats(-0.03, 0.03),
        st.floats(-0.08, 0.08),
        st.booleans(),
    ),
    min_size=3,
    max_size=10,
)
limits_st = st.fixed_dictionaries(
    {
        "max_notional_per_symbol": st.floats(200.0, 6_000.0),
        "max_gross_leverage": st.floats(0.05, 1.0),
        "max_net_leverage": st.floats(0.05, 1.0),
        "max_orders_per_minute": st.integers(2, 8),
        "price_band_pct": st.floats(0.005, 0.06),
    }
)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(limits_st, steps_st)
def test_no_accepted_order_breaches_a_limit(tmp_path_factory, limits, steps):
    tmp = tmp_path_factory.mktemp("prop")

    async def go():
        async with Session(
            tmp, SYMS, daily_loss_limit=1e9, max_drawdown=0.99, stale_after_ms=60_000, **limits
        ) as s:
            t_start = time.monotonic()
            prices = {sym: s.mark(sym) for sym in SYMS}
            for sym in SYMS:
                s.sim.script_price({"symbol": sym, "price": prices[sym]})
            checks = []
            last_data: dict[str, int] = {}
            for sym, signal, ret, offset, stale in steps:
                prices[sym] = s.venue.markets[sym].round_price(prices[sym] * math.exp(ret))
                s.sim.script_price({"symbol": sym, "price": prices[sym]})
                venue_pos = {k: v.qty for k, v in (await s.venue.fetch_positions()).items()}
                equity = (await s.venue.fetch_balance()).equity
                ref = prices[sym] * (1 + offset)
                target = size_position(
                    signal, ref, 0.002, 525_600, equity, 0.5, 1.0, limits["max_notional_per_symbol"]
                )
                n0 = len(s.accepted())
                now_ms = time.time_ns() // 1_000_000
                data_ts = now_ms - 120_000 if stale else now_ms
                # stale = the newest data seen for the symbol is older than stale_after_ms
                last_data[sym] = max(last_data.get(sym, 0), data_ts)
                stale = now_ms - last_data[sym] > 60_000
                await s.router.set_target(sym, target, ref, prices[sym], data_ts_ms=data_ts)
                for o in s.accepted()[n0:]:
                    checks.append((sym, o, dict(venue_pos), dict(prices), equity, ref, stale))
                await s.router.poll()
            elapsed = time.monotonic() - t_start
            await s.router.stop()
            return checks, elapsed

    checks, elapsed = asyncio.run(asyncio.wait_for(go(), 120))
    assert elapsed < 60  # so the order-rate limit applies to the whole run
    assert len(checks) <= limits["max_orders_per_minute"]
    for sym, o, pos, prices, equity, ref, stale in checks:
        p = o["params"]
        qty = float(p["quantity"])
        signed = qty if p["side"] == "BUY" else -qty
        after = dict(pos)
        after[sym] = pos.get(sym, 0.0) + signed
        assert abs(ref - prices[sym]) / prices[sym] <= limits["price_band_pct"] + 1e-9
        reduces = abs(after[sym]) <= abs(pos.get(sym, 0.0)) + 1e-12 and after[sym] * pos.get(sym, 0.0) >= 0
        if reduces:
            continue
        assert not stale, "new risk on stale data"
        assert abs(after[sym]) * prices[sym] <= limits["max_notional_per_symbol"] * 1.01
        gross = sum(abs(after.get(k, 0.0)) * prices[k] for k in SYMS)
        net = sum(after.get(k, 0.0) * prices[k] for k in SYMS)
        assert gross <= limits["max_gross_leverage"] * equity * 1.01
        assert abs(net) <= limits["max_net_leverage"] * equity * 1.01
