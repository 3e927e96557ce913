import math

from kaizen.config import StrategyConfig
from kaizen.engine.bars import BarBuilder
from kaizen.engine.strategies.baseline import BaselineMomentum

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
    strat = BaselineMomentum(StrategyConfig(entry_z=1.0, max_vol_ratio=1.5))
    # z = 0.03 / (2 * 0.01) = 1.5 > 1 and the slow return agrees
    assert strat.signal(0.03, 0.01, 0.01, 1.0) == (1.0, "momentum_long")
    assert strat.signal(-0.03, -0.01, 0.01, 1.0) == (-1.0, "momentum_short")
    assert strat.signal(0.03, -0.01, 0.01, 1.0) == (0.0, "no_signal")  # slow momentum disagrees
    assert strat.signal(0.01, 0.01, 0.01, 1.0) == (0.0, "no_signal")  # z = 0.5 is noise
    assert strat.signal(0.03, 0.01, 0.01, 2.0) == (0.0, "vol_filter")  # a volatility spike
    assert strat.signal(math.nan, 0.05, 0.01, 1.0) == (0.0, "warmup")
