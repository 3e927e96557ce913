"""The two reference strategies: doing nothing, and buying once and holding."""

from __future__ import annotations

from kaizen.engine.strategy import BarContext, Target


class Flat:
    """Never holds a position: the yardstick every model must beat net of costs."""

    name = "flat"
    version = "flat@1"

    def decide(self, ctx: BarContext) -> Target:
        return Target(exposure=0.0, reason="flat", value=0.0, model=self.version, role=f"{ctx.symbol}/signal")


class BuyAndHold:
    """Equal weight: at a symbol's first bar, buy its share of the capital (the engine's
    per-symbol budget, unlevered and not vol-scaled) and keep that quantity to the end."""

    name = "buy_and_hold"
    version = "buy_and_hold@1"

    def __init__(self) -> None:
        self.qty: dict[str, float] = {}

    def decide(self, ctx: BarContext) -> Target:
        role = f"{ctx.symbol}/signal"
        q = self.qty.get(ctx.symbol)
        if q is None:
            if not (ctx.budget > 0 and ctx.close > 0):
                return Target(exposure=0.0, reason="no_budget", value=0.0, model=self.version, role=role)
            q = self.qty[ctx.symbol] = ctx.budget / ctx.close
        return Target(exposure=1.0, reason="hold", value=1.0, model=self.version, role=role, qty=q)
