"""The synthetic market: seeded, regime-switching, Binance funding clamp, tick/lot formatting."""

from __future__ import annotations

import math
import random

import pytest

from kaizen.venue.sim.market import SymbolMarket, funding_rate, next_funding_ms
from kaizen.venue.sim.spec import SPECS


def _path(seed: int, steps: int, dt: float = 60.0) -> tuple[list[float], list[tuple[bool, bool]]]:
    # a standalone market owns a one-symbol process of the demo model, seeded from its rng
    m = SymbolMarket(SPECS["BTCUSDT"], random.Random(seed), 42_000.0)
    prices, regimes = [], []
    for _ in range(steps):
        m.step(dt)
        prices.append(m.mark)
        regimes.append((m.trend, m.high_vol))
    return prices, regimes


def test_same_seed_same_market_other_seed_other_market() -> None:
    a, _ = _path(3, 500)
    b, _ = _path(3, 500)
    c, _ = _path(4, 500)
    assert a == b and a != c


def test_regimes_switch_and_high_vol_is_more_volatile() -> None:
    prices, regimes = _path(11, 60 * 24 * 60)  # 60 days of 1-minute steps
    assert set(regimes) == {(True, True), (True, False), (False, True), (False, False)}
    rets = {True: [], False: []}
    for i in range(1, len(prices)):
        rets[regimes[i][1]].append(math.log(prices[i] / prices[i - 1]))
    sd = {k: (sum(r * r for r in v) / len(v)) ** 0.5 for k, v in rets.items()}
    assert sd[True] > 2.0 * sd[False]
    assert 10_000 < min(prices) and max(prices) < 200_000  # a realistic BTC range


@pytest.mark.parametrize(
    "premium,rate",
    [
        (0.0, 0.0001),
        (0.0003, 0.0001),
        (0.001, 0.0005),
        (-0.0002, 0.0001),
        (-0.0008, -0.0003),
        (0.02, 0.0075),
        (-0.02, -0.0075),
    ],
)
def test_funding_rate_clamped_as_binance(premium: float, rate: float) -> None:
    assert funding_rate(premium) == pytest.approx(rate, abs=1e-12)


def test_funding_times_and_formatting() -> None:
    assert next_funding_ms(1_704_067_200_000) == 1_704_067_200_000 + 8 * 3_600_000
    assert next_funding_ms(1_704_067_200_001) == 1_704_096_000_000
    btc, sol, bnb = SPECS["BTCUSDT"], SPECS["SOLUSDT"], SPECS["BNBUSDT"]
    assert btc.fmt_price(420_001) == "42000.10" and btc.fmt_qty(1) == "0.001"
    assert sol.fmt_price(10_012) == "100.1200" and sol.fmt_qty(3) == "3"
    assert bnb.fmt_price(31_012) == "310.120" and bnb.fmt_qty(5) == "0.05"
    assert btc.to_ticks("42000.1") == 420_001 and btc.to_ticks("42000.15") is None
    assert sol.to_lots("2.5") is None and btc.to_lots("0.0010") == 1


def test_simulator_price_path_depends_on_the_seed_only() -> None:
    from kaizen.venue.sim import Simulator

    a, b, c = Simulator(seed=9), Simulator(seed=9), Simulator(seed=10)
    marks = {id(s): [] for s in (a, b, c)}
    for i in range(300):
        if i % 25 == 0:  # our orders consume liquidity in b only: the price path must not change
            b.exchange.new_order(
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY" if i % 50 else "SELL",
                    "type": "MARKET",
                    "quantity": "0.050",
                    "newClientOrderId": f"d{i}",
                }
            )
        for s in (a, b, c):
            s.step_once()
            marks[id(s)].append(tuple(round(m.mark, 9) for m in s.markets.values()))
    assert marks[id(a)] == marks[id(b)] and marks[id(a)] != marks[id(c)]
    assert len(b.trade_log) > 0
