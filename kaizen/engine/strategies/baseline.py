"""The baseline strategy: momentum gated by a volatility filter, on the engine's features.

It is deliberately simple and clearly named: the yardstick the learned models must beat. It reads
four features of the shared vector, so it sees exactly what the models see, bar for bar, live or
in a backtest, and its thresholds are in units of volatility, so they mean the same on any bar:

    z = mom_ret_4 / (vol_rv_24 * 2)          (the 4-bar return in its own standard deviations)
    long  when z >  entry_z and mom_ret_24 > 0;  short when z < -entry_z and mom_ret_24 < 0
    flat  when vol_ratio_24_72 > max_vol_ratio (a volatility spike), or neither holds
"""

from __future__ import annotations

import math

from kaizen.config import StrategyConfig
from kaizen.engine.strategy import BarContext, Target
from kaizen.models.features import FEATURE_NAMES

NAME = "baseline_momentum"
VERSION = "baseline_momentum@2"
_FAST = FEATURE_NAMES.index("mom_ret_4")
_SLOW = FEATURE_NAMES.index("mom_ret_24")
_VOL = FEATURE_NAMES.index("vol_rv_24")
_RATIO = FEATURE_NAMES.index("vol_ratio_24_72")


class BaselineMomentum:
    name = NAME
    version = VERSION

    def __init__(self, cfg: StrategyConfig) -> None:
        self.entry_z = cfg.entry_z
        self.max_ratio = cfg.max_vol_ratio

    def signal(self, mom_fast: float, mom_slow: float, vol: float, vol_ratio: float) -> tuple[float, str]:
        """A signal in {-1, 0, 1} and its reason (log returns and per-bar vol, as the features hold them)."""
        if not (math.isfinite(mom_fast) and math.isfinite(mom_slow) and vol > 0 and math.isfinite(vol_ratio)):
            return 0.0, "warmup"
        if vol_ratio > self.max_ratio:
            return 0.0, "vol_filter"
        z = mom_fast / (2.0 * vol)
        if z > self.entry_z and mom_slow > 0:
            return 1.0, "momentum_long"
        if z < -self.entry_z and mom_slow < 0:
            return -1.0, "momentum_short"
        return 0.0, "no_signal"

    def decide(self, ctx: BarContext) -> Target:
        f = ctx.features
        sig, reason = self.signal(float(f[_FAST]), float(f[_SLOW]), float(f[_VOL]), float(f[_RATIO]))
        return Target(exposure=sig, reason=reason, value=sig, model=VERSION, role=f"{ctx.symbol}/signal")
