"""The improvement loop on the wall clock: `kaizen run` with `[strategy] name = "kaizen"` and
`kaizen demo`.

The engine closes bars from the venue's stream; `LiveLoop.on_bar_closed` (the engine's
`on_bar_closed` hook) adds each to a `BarStore` (stored history + every live bar, and each funding
settlement the engine saw) and, at the first bar of each new close time, calls the loop's
`on_clock` with a `DataView` whose clock is that close: the same walk-forward rule as in a
backtest. Training runs in the loop's executor (non-blocking), so the decision path never waits on
it; a candidate enters shadow at the first bar close after its job ends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaizen.config import Config
from kaizen.errors import ConfigError, DataError

log = logging.getLogger("kaizen.loop")


class LiveLoop:
    """The loop's strategy plus the hook that keeps its history and clock (see the module doc)."""

    def __init__(
        self,
        strategy: Any,
        store: Any,
        interval_ms: int,
        on_funding: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.strategy = strategy  # LoopStrategy (or a wrapper with on_clock / decide)
        self.store = store
        self.interval_ms = int(interval_ms)
        self.on_funding = on_funding  # also told of each settlement (the demo's buy-and-hold)
        self.engine: Any = None  # set once the engine exists (its funding schedule is read here)
        self._clock = 0
        self._next_funding: dict[str, int] = {}
        self.last_close = 0
        self.dropped = 0  # stored bars at or after the first live bar (history past the live clock)

    @property
    def loop(self) -> Any:
        return self.strategy.loop

    def on_bar_closed(self, bar: Any, mark: float, funding_rate: float) -> None:
        s = bar.symbol
        open_ms = bar.open_time_ns // 1_000_000
        t_ms = open_ms + self.interval_ms
        if not self._clock:  # the first live bar: stored history from its time on is not history
            self.dropped = self.store.drop_from(open_ms)
            if self.dropped:
                log.warning("loop history runs past the live clock: %d stored bars from %s on dropped",
                            self.dropped, open_ms)  # fmt: skip
        if self.engine is not None:  # a settlement happened when the symbol's next funding time moved
            nf = self.engine._next_funding.get(s, 0)
            prev = self._next_funding.get(s, 0)
            if prev and nf > prev and math.isfinite(funding_rate):
                self.store.add_funding(s, prev, funding_rate)
                if self.on_funding is not None:
                    self.on_funding(s, prev, funding_rate)
            self._next_funding[s] = nf
        self.store.add_bar(s, open_ms, bar.open, bar.high, bar.low, bar.close, bar.volume, funding_rate, mark)
        self.last_close = t_ms
        if t_ms > self._clock:  # the first bar of a new close time: the loop's clock
            self._clock = t_ms
            self.strategy.on_clock(self.store.view(t_ms), t_ms)

    def close(self) -> None:
        self.loop.close()


def bar_interval(cfg: Config) -> str:
    """The archive interval of the engine's bars; the models must be trained on the same."""
    from kaizen.market.data import INTERVAL_MS

    ms = cfg.strategy.bar_seconds * 1000
    iv = next((name for name, v in INTERVAL_MS.items() if v == ms), None)
    if iv is None:
        raise ConfigError(
            f"strategy.bar_seconds = {cfg.strategy.bar_seconds}: the loop needs an archive interval "
            f"({', '.join(f'{v // 1000} s' for v in INTERVAL_MS.values())})"
        )
    if cfg.models.interval != iv:
        raise ConfigError(
            f"models.interval = {cfg.models.interval!r} but the engine's bars are {iv} "
            f"(strategy.bar_seconds = {cfg.strategy.bar_seconds}): the loop trains on the bars it trades"
        )
    return iv


def build_live_loop(cfg: Config, root: Path, lineage: Any, now_ns: Callable[[], int]) -> LiveLoop:
    """The loop for `kaizen run`: history from `[loop] history_dir` (the Binance archive layout, as
    `kaizen backtest` reads), registry and models under `root`, records to `lineage`."""
    from kaizen.backtest.driver import costs_of
    from kaizen.loop.loop import ImprovementLoop, LoopStrategy
    from kaizen.market.barstore import BarStore
    from kaizen.market.data import interval_ms, load_dataset

    if not cfg.loop.history_dir:
        raise ConfigError("strategy.name = 'kaizen' needs loop.history_dir (klines in the Binance archive layout)")
    iv = bar_interval(cfg)
    try:
        history = load_dataset(cfg.loop.history_dir, list(cfg.symbols), iv)
    except DataError as exc:
        raise ConfigError(f"loop.history_dir: {exc}") from None
    ms = interval_ms(iv)
    loop = ImprovementLoop(cfg, Path(root), lineage, costs_of(cfg), ms, now_ns=now_ns, blocking=False)
    return LiveLoop(LoopStrategy(loop, "kaizen"), BarStore(list(cfg.symbols), ms, history=history), ms)


__all__ = ["LiveLoop", "bar_interval", "build_live_loop"]
