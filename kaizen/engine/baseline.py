"""The baseline strategy: momentum gated by a volatility filter.

It is deliberately simple and clearly named: the yardstick the learned models must beat, and the
strategy the walking skeleton trades before any model is trained.
"""

from __future__ import annotations

import math
from collections import deque

from kaizen.config import StrategyConfig

NAME = "baseline_momentum"
VERSION = "baseline_momentum@1"
FEATURE_NAMES = ["mom_fast", "mom_slow", "vol_per_bar"]


class BaselineMomentum:
    def __init__(self, cfg: StrategyConfig) -> None:
        self.cfg = cfg
        self._closes: dict[str, deque[float]] = {}
        keep = max(cfg.fast_bars, cfg.slow_bars, cfg.vol_bars) + 1
        self._keep = keep

    def features(self, symbol: str, close: float) -> list[float] | None:
        """Fold in a bar close; return [mom_fast, mom_slow, vol_per_bar] once warmed up."""
        closes = self._closes.setdefault(symbol, deque(maxlen=self._keep))
        closes.append(close)
        if len(closes) < self._keep:
            return None
        c = list(closes)
        mom_fast = c[-1] / c[-1 - self.cfg.fast_bars] - 1.0
        mom_slow = c[-1] / c[-1 - self.cfg.slow_bars] - 1.0
        rets = [math.log(c[i] / c[i - 1]) for i in range(len(c) - self.cfg.vol_bars, len(c))]
        mean = sum(rets) / len(rets)
        vol = math.sqrt(sum((r - mean) ** 2 for r in rets) / max(len(rets) - 1, 1))
        return [mom_fast, mom_slow, vol]

    def signal(self, feats: list[float]) -> tuple[float, str]:
        """A signal in [-1, 1] and the reason, from the features."""
        mom_fast, mom_slow, vol = feats
        if vol > self.cfg.max_vol_per_bar:
            return 0.0, "vol_filter"
        thr = self.cfg.entry_threshold
        if mom_fast > thr and mom_slow > 0:
            return min(1.0, mom_fast / (4 * thr)), "momentum_long"
        if mom_fast < -thr and mom_slow < 0:
            return max(-1.0, mom_fast / (4 * thr)), "momentum_short"
        return 0.0, "no_signal"
