import math

from kaizen.config import StrategyConfig
from kaizen.engine.bars import BarBuilder
from kaizen.engine.baseline import BaselineMomentum

S = 1_000_000_000


def test_bars_close_on_the_event_clock_and_fill_gaps():
    b = BarBuilder("BTCUSDT", 60)
    assert b.on_trade(10 * S, 100.0, 1.0, False) == []
    assert b.on_trade(20 * S, 101.0, 2.0, True) == []
    assert b.on_trade(30 * S, 99.0, 1.0, False) == []
    closed = b.on_trade(61 * S, 102.0, 1.0, False)
    assert len(closed) == 1
    bar = closed[0]
    assert (bar.open, bar.high, bar.low, bar.close) == (100.0, 101.0, 99.0, 99.0)
    assert bar.volume == 4.0 and bar.buy_volume == 2.0 and bar.trades == 3
    # no trades for two intervals: flat bars carry the close forward
    closed = b.on_clock(240 * S)
    assert [c.open_time_ns for c in closed] == [60 * S, 120 * S, 180 * S]
    assert closed[0].close == 102.0
    assert closed[1].volume == 0.0 and closed[1].close == 102.0


def test_baseline_signal_and_vol_filter():
    cfg = StrategyConfig(fast_bars=2, slow_bars=4, vol_bars=4, max_vol_per_bar=0.05, entry_threshold=0.001)
    strat = BaselineMomentum(cfg)
    feats = None
    for c in [100, 100.5, 101, 101.6, 102.2]:
        feats = strat.features("X", c)
    assert feats is not None
    assert math.isclose(feats[0], 102.2 / 101 - 1)
    sig, reason = strat.signal(feats)
    assert sig > 0 and reason == "momentum_long"
    choppy = BaselineMomentum(cfg)
    for c in [100, 120, 95, 125, 130]:
        feats = choppy.features("X", c)
    assert choppy.signal(feats) == (0.0, "vol_filter")
