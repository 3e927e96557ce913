"""Property: whatever the signals and the market path, no order the router decides to send breaches a
configured risk limit. Hypothesis drives random signals, prices (including jumps beyond the price
band), staleness gaps and time steps through the router's own decision code (OrderRouter.decide,
the same function set_target uses) and the real RiskManager; approved orders are filled at the
reference price. An independent checker (written here from the limits' definitions) re-verifies
every approved order. The end-to-end version against the simulator is in tests/venue/."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaizen.config import RiskConfig
from kaizen.risk import RiskManager, size_position
from kaizen.venue.base import MarketInfo
from kaizen.venue.router import OrderRouter

SYMS = ("BTCUSDT", "ETHUSDT")


class _Markets:
    """Only the venue's market filters: decide() never calls the venue."""

    def __init__(self) -> None:
        self.markets = {
            "BTCUSDT": MarketInfo(
                symbol="BTCUSDT",
                venue_symbol="BTC/USDT:USDT",
                tick_size=0.1,
                lot_size=0.001,
                min_qty=0.001,
                min_notional=5.0,
            ),
            "ETHUSDT": MarketInfo(
                symbol="ETHUSDT",
                venue_symbol="ETH/USDT:USDT",
                tick_size=0.01,
                lot_size=0.001,
                min_qty=0.001,
                min_notional=5.0,
            ),
        }


step = st.tuples(
    st.sampled_from(SYMS),
    st.floats(-3.0, 3.0),  # signal
    st.floats(-0.2, 0.2),  # log return of the price this step
    st.floats(-0.1, 0.1),  # ref price offset from mark (fat fingers beyond the band included)
    st.integers(0, 20_000),  # ms since the last step
    st.booleans(),  # does this step carry fresh market data?
)

cfg_st = st.builds(
    RiskConfig,
    max_notional_per_symbol=st.floats(50.0, 20_000.0),
    max_gross_leverage=st.floats(0.1, 5.0),
    max_net_leverage=st.floats(0.1, 5.0),
    max_open_orders=st.integers(1, 10),
    max_orders_per_minute=st.integers(1, 30),
    price_band_pct=st.floats(0.001, 0.1),
    daily_loss_limit=st.floats(10.0, 5_000.0),
    max_drawdown=st.floats(0.01, 0.9),
    stale_after_ms=st.integers(100, 10_000),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg_st, st.lists(step, min_size=1, max_size=60), st.floats(500.0, 100_000.0))
def test_no_order_breaches_a_limit(cfg, steps, equity0):
    now = 1_700_000_000_000
    risk = RiskManager(cfg, equity=equity0, now_ms=now)
    router = OrderRouter(_Markets(), risk, [], SYMS, run_id="prop")
    marks = {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0}
    last_data = {s: None for s in SYMS}
    sent_times: list[int] = []
    halted_at = None
    for sym, signal, ret, offset, dt, fresh in steps:
        now += dt
        marks[sym] *= math.exp(ret)
        for s in SYMS:
            router.books[s].mark = marks[s]
        if fresh:
            risk.on_market(sym, now)
            last_data[sym] = now
        equity = equity0 + router.net_pnl()
        if risk.on_equity(equity, now) and halted_at is None:
            halted_at = now
        ref = marks[sym] * (1 + offset)
        target = size_position(
            signal, ref, 0.01, 525_600, max(equity, 1e-9), 0.5, 1.0, cfg.max_notional_per_symbol
        )
        before = {s: router.books[s].qty for s in SYMS}
        plan, price, ok, why = router.decide(sym, target, ref, marks[sym], now)
        if plan is None or not ok:
            continue
        # ---- independent re-check of the approved order ----
        assert not risk.halted, "an order was approved after the kill switch"
        signed = plan.qty if plan.side == "buy" else -plan.qty
        after = dict(before)
        after[sym] = before[sym] + signed
        assert abs(ref - marks[sym]) / marks[sym] <= cfg.price_band_pct + 1e-12
        recent = [t for t in sent_times if t > now - 60_000]
        assert len(recent) + 1 <= cfg.max_orders_per_minute
        assert router.open_order_count() + 1 <= cfg.max_open_orders
        reduces = abs(after[sym]) <= abs(before[sym]) + 1e-9 and after[sym] * before[sym] >= 0
        if not reduces:
            assert last_data[sym] is not None and now - last_data[sym] <= cfg.stale_after_ms
            assert abs(after[sym]) * marks[sym] <= cfg.max_notional_per_symbol * (1 + 1e-6)
            gross = sum(abs(after[s]) * marks[s] for s in SYMS)
            net = sum(after[s] * marks[s] for s in SYMS)
            assert gross <= cfg.max_gross_leverage * risk.equity * (1 + 1e-6)
            assert abs(net) <= cfg.max_net_leverage * risk.equity * (1 + 1e-6)
        # ---- "fill" it at the reference price, as a market order would ----
        risk.record_order(now)
        sent_times.append(now)
        router.books[sym].apply(plan.side, plan.qty, ref, plan.qty * ref * 0.0005)
    if halted_at is not None:
        assert risk.halted
