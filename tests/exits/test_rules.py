"""Baseline exit rules on hand-made paths, the rule factory and config, the oracle's fence, and the
PositionState update the rules read."""

from __future__ import annotations

import math

import pytest

from kaizen import config
from kaizen.engine.strategy import BarContext, Costs, ExitRule, PositionState
from kaizen.errors import ConfigError
from kaizen.models.exit_rules import (
    FutureExits,
    HindsightOracle,
    SignalExit,
    baseline_names,
    make_rule,
)

H = 3_600_000


def _ctx() -> BarContext:
    return BarContext("BTCUSDT", 0, ["x"], Costs(), 24.0)


def _walk(rule, closes, side=1, entry=100.0, entry_vol=0.01, edges=None, rate=0.0):
    """Exit bar (1-based) of a position entered at `entry`, asked at each close; None = held."""
    ctx = _ctx()
    pos = ctx.position
    pos.open(side, 1.0, entry, 7 * H * 1_000_000, -1, entry_vol)
    for j, c in enumerate(closes, start=1):
        ctx.ts_ns = (7 + j) * H * 1_000_000
        ctx.close = c
        ctx.vol = entry_vol
        ctx.funding_rate = rate
        ctx.signal_edge = edges[j - 1] if edges is not None else math.nan
        pos.mark(c)
        d = rule.on_bar(ctx)
        if d.exit:
            return j, d.reason
    return None, ""


def test_position_state_mark():
    p = PositionState()
    p.open(-1, 2.0, 100.0, 5, 3, 0.01)
    for c in (99.0, 101.0, 98.0):
        p.mark(c)
    assert p.bars_in_trade == 3
    assert p.last_return == pytest.approx(0.02) and p.mfe == pytest.approx(0.02)
    assert p.mae == pytest.approx(-0.01) and p.entry_regime == 3


def test_barrier_rules():
    kw = {"horizon_bars": 4, "max_hold_bars": 10}
    u = 0.01 * 2  # entry vol * sqrt(horizon)
    # take profit at +2u = +4 %, stop at -1u = -2 %: checked on closes
    r = make_rule("tpsl_2_1", **kw)
    assert _walk(r, [101, 103, 104.1, 90]) == (3, "take_profit")
    assert _walk(r, [101, 97.9, 110]) == (2, "stop_loss")
    assert _walk(r, [100.0] * 12) == (10, "max_hold")
    # short: the same path is a loss
    assert _walk(r, [101, 102.1], side=-1) == (2, "stop_loss")
    # trailing: activates at MFE >= 1u (2 %), exits 0.5u (1 %) below the MFE
    t = make_rule("trail_1_0.5", **kw)
    assert _walk(t, [101, 101.5, 100.4, 102.5, 101.6, 101.4]) == (6, "trailing_stop")
    assert _walk(t, [101, 99, 96, 95]) == (None, "")  # never activated: no stop
    assert _walk(make_rule("time_4", **kw), [100.0] * 8) == (4, "time")
    tb = make_rule("triple_2_1_4", **kw)
    assert _walk(tb, [100.5, 100.2, 100.1, 100.3, 105]) == (4, "time")
    assert _walk(tb, [100.5, 104.5]) == (2, "take_profit")
    assert u == pytest.approx(0.02)


def test_signal_exit():
    s = make_rule("signal", horizon_bars=4, max_hold_bars=10)
    sz = make_rule("signal_zero", horizon_bars=4, max_hold_bars=10)
    assert isinstance(s, SignalExit) and isinstance(s, ExitRule)
    edges = [0.003, 0.0016, 0.0013, -0.0001]  # round trip is 14 bp
    assert _walk(s, [100.0] * 4, edges=edges) == (3, "signal")
    assert _walk(sz, [100.0] * 4, edges=edges) == (4, "signal")
    assert _walk(sz, [100.0] * 4, side=-1, edges=edges) == (1, "signal")
    # funding: a long expecting to pay 0.0008 * 4/8 = 4 bp needs E > 18 bp
    assert _walk(s, [100.0] * 2, edges=[0.0017, 0.0017], rate=0.0008) == (1, "signal")
    assert _walk(s, [100.0] * 3, edges=[math.nan] * 3) == (None, "")  # no signal: nothing to act on


def test_names_round_trip_and_errors():
    for n in baseline_names(4):
        assert make_rule(n, horizon_bars=4, max_hold_bars=16).name == n
    for bad in ("tpsl_1", "tpsl_a_b", "time_1.5", "trail_1_0", "wobble", "", "tpsl_nan_1"):
        with pytest.raises(ConfigError):
            make_rule(bad, horizon_bars=4, max_hold_bars=16)
    with pytest.raises(ConfigError, match="learned"):
        make_rule("learned", horizon_bars=4, max_hold_bars=16)


def test_oracle_is_never_a_live_rule():
    with pytest.raises(ConfigError, match="hindsight"):
        make_rule("oracle", horizon_bars=4, max_hold_bars=16)
    with pytest.raises(ConfigError, match="hindsight"):
        config.loads('[exit]\nrule = "oracle"\n')
    assert config.loads('[exit]\nrule = "triple_2_1_4"\n').exit.rule == "triple_2_1_4"
    with pytest.raises(ConfigError, match="exit.rule"):
        config.loads('[exit]\nrule = "tpsl_x_1"\n')
    with pytest.raises(TypeError):
        HindsightOracle({("BTCUSDT", 0): 1}, 4, 16)  # a plain dict is not the harness's answer
    o = HindsightOracle(FutureExits({("BTCUSDT", 7 * H * 1_000_000): 3}), 4, 16)
    assert o.live is False
    assert _walk(o, [100.0] * 5) == (3, "hindsight")
