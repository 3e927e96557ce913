"""Strategies behind the engine's strategy seam (kaizen/engine/strategy.py).

`make_strategy(cfg)` builds the one named in `[strategy] name`: `baseline_momentum` (the named
yardstick), `ensemble` (a trained model directory through the compiled predictors, trading only a
positive net edge), `flat`, `buy_and_hold`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaizen.engine.strategies.baseline import BaselineMomentum
from kaizen.engine.strategies.simple import BuyAndHold, Flat

if TYPE_CHECKING:
    from kaizen.config import Config
    from kaizen.engine.strategy import Strategy

NAMES = ("baseline_momentum", "ensemble", "flat", "buy_and_hold", "kaizen")


def make_strategy(cfg: Config) -> Strategy:
    from kaizen.errors import ConfigError

    name = cfg.strategy.name
    if name == "baseline_momentum":
        return BaselineMomentum(cfg.strategy)
    if name == "flat":
        return Flat()
    if name == "buy_and_hold":
        return BuyAndHold()
    if name == "ensemble":
        from kaizen.engine.strategies.ensemble import EnsembleStrategy, load_signal_model

        if not cfg.strategy.model_dir:
            raise ConfigError("strategy 'ensemble' needs 'strategy.model_dir' (a `kaizen train` models directory)")
        return EnsembleStrategy(load_signal_model(cfg.strategy.model_dir), cfg.models.horizon_bars)
    if name == "kaizen":  # the loop needs the run's lineage, registry and history: the runner builds it
        raise ConfigError("strategy.name = 'kaizen' (the improvement loop) runs under `kaizen run` or a backtest")
    raise ConfigError(f"unknown strategy.name {name!r} (known: {', '.join(NAMES)})")


__all__ = ["NAMES", "make_strategy", "BaselineMomentum", "BuyAndHold", "Flat"]
