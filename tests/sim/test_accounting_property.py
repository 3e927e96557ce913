"""Property: whatever orders and market moves, the account equals an independent recomputation
from the trade and funding logs, and no order ever fills outside its limit price."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaizen.venue.sim import Simulator
from kaizen.venue.sim.exchange import SimError
from tests.sim.test_accounting import recompute

SYMS = ("BTCUSDT", "SOLUSDT")
QTY = {"BTCUSDT": ["0.003", "0.010", "2.000"], "SOLUSDT": ["1", "3", "900"]}

action = st.one_of(
    st.tuples(
        st.just("market"),
        st.sampled_from(SYMS),
        st.sampled_from(["BUY", "SELL"]),
        st.integers(0, 2),
        st.booleans(),
    ),
    st.tuples(
        st.just("limit"),
        st.sampled_from(SYMS),
        st.sampled_from(["BUY", "SELL"]),
        st.integers(0, 2),
        st.floats(-0.02, 0.02),
        st.sampled_from(["GTC", "IOC", "GTX"]),
    ),
    st.tuples(st.just("move"), st.sampled_from(SYMS), st.floats(-0.08, 0.08)),
    st.tuples(st.just("fund"), st.integers(1, 2)),
    st.tuples(st.just("step")),
    st.tuples(st.just("cancel"), st.sampled_from(SYMS)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.lists(action, min_size=8, max_size=40))
def test_account_equals_recomputation(seed: int, actions: list[tuple]) -> None:
    sim = Simulator(seed=seed, speed=60.0, symbols=SYMS, starting_balance=5_000.0)
    ex = sim.exchange
    n = 0
    for a in actions:
        kind = a[0]
        n += 1
        try:
            if kind == "market":
                _, sym, side, qi, ro = a
                p = {
                    "symbol": sym,
                    "side": side,
                    "type": "MARKET",
                    "quantity": QTY[sym][qi],
                    "newClientOrderId": f"m{n}",
                }
                if ro:
                    p["reduceOnly"] = "true"
                ex.new_order(p)
            elif kind == "limit":
                _, sym, side, qi, off, tif = a
                m = sim.markets[sym]
                px = m.spec.fmt_price(int(round(m.mark * (1 + off) / m.spec.tick_f)))
                ex.new_order(
                    {
                        "symbol": sym,
                        "side": side,
                        "type": "LIMIT",
                        "quantity": QTY[sym][qi],
                        "price": px,
                        "timeInForce": tif,
                        "newClientOrderId": f"l{n}",
                    }
                )
            elif kind == "move":
                _, sym, r = a
                sim._set_price(sim.markets[sym], sim.markets[sym].mark * (1 + r))
            elif kind == "fund":
                sim.advance(a[1] * 8 * 3_600_000)
            elif kind == "step":
                sim.step_once()
            elif kind == "cancel":
                ex.cancel_all(a[1])
        except SimError:
            pass  # filters, margin and post-only rejects are part of the game
    exp = recompute(ex.trade_log, ex.funding_log, 5_000.0)
    assert abs(ex.account.wallet - exp["wallet"]) < 1e-6
    for sym in SYMS:
        pos = ex.account.positions[sym]
        q, entry = exp["positions"].get(sym, [0.0, 0.0])
        assert abs(sim.markets[sym].spec.qty_of(pos.lots) - q) < 1e-9
        if pos.lots:
            assert abs(pos.entry - entry) <= 1e-9 * entry
    by_id = ex.orders
    for t in ex.trade_log:
        o = by_id[t["orderId"]]
        if o.type == "LIMIT":
            limit = sim.markets[t["symbol"]].spec.price_of(o.price_ticks)
            assert (t["price"] <= limit + 1e-9) if o.side == "BUY" else (t["price"] >= limit - 1e-9)
        if o.tif == "GTX":
            assert t["maker"]
    for o in by_id.values():
        assert 0 <= o.filled_lots <= o.lots
        if o.tif in ("IOC", "FOK") or o.type == "MARKET":
            assert not o.is_open
