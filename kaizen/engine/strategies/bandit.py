"""The regime-aware variant portfolio (`regime_bandit`): at each bar the regime detector names the
market state, the role (symbol, regime, style) draws one variant by Thompson sampling, and that
variant's paper position becomes the target.

Every variant (a trained signal model configuration: horizon, features, hyper-parameters, training
window) trades on paper all the time (kaizen.models.edge.PaperTrader: the net-edge rule, the same
fees, spread and funding as the real book), so at every bar each one has a net return for the
decision it made at the previous bar. A draw happens when the book is flat; a trade in progress stays with the variant that took it
until that variant's paper position goes flat (switching mid-trade would pay for every switch).
The role that made the previous decision learns from all of them:
the variant that was traded at weight 1, the others as shadows at `[policy] shadow_weight`
(counterfactual rewards), `flat` always 0. Rewards are in basis points per decision. Retirement
checks run on the policy's cadence. Every draw, update, retirement and regime change is a lineage
record (BanditChoice, BanditUpdate, VariantChange, MarketStatus "regime").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kaizen.config import PolicyConfig
from kaizen.engine.strategy import BarContext, Costs, Target
from kaizen.lineage import records as R
from kaizen.lineage.ids import new_id
from kaizen.models.edge import PaperTrader
from kaizen.policy.portfolio import RolePortfolio
from kaizen.policy.roles import FLAT, Role, Variant

ALL = "all"  # the one regime when no detector is configured


class VariantModel:
    """A variant with its trained model and its paper position."""

    def __init__(
        self, variant: Variant, model: Any, costs: Costs, interval_ms: int, default_horizon: int
    ) -> None:
        self.variant = variant
        self.model = model
        self.trader = PaperTrader(variant.horizon_bars or default_horizon, costs.round_trip, interval_ms)

    def step(self, ctx: BarContext) -> tuple[int, float, float]:
        """(side now, p, net return of the previous decision as a fraction, or nan)."""
        p = self.model.predict(ctx.inputs)
        e = self.model.edge.expected_return(p) if math.isfinite(p) else math.nan
        side, reward = self.trader.step(ctx.symbol, ctx.close, e, ctx.funding_rate)
        return side, p, reward


class RegimeBandit:
    name = "regime_bandit"

    def __init__(
        self,
        variants: list[VariantModel],
        policy: PolicyConfig,
        *,
        style: str = "signal",
        detector_factory: Callable[[str], Any] | None = None,
        regime_names: list[str] | tuple[str, ...] = (),
        name: str = "regime_bandit",
    ) -> None:
        if not variants:
            raise ValueError("regime_bandit needs at least one trained variant besides flat")
        self.name = name
        self.version = f"{name}@1"
        self.variants = {v.variant.id: v for v in variants}
        self.policy = policy
        self.style = style
        self.detector_factory = detector_factory
        self.regime_names = list(regime_names)
        self.detectors: dict[str, Any] = {}
        self.portfolios: dict[Role, RolePortfolio] = {}
        self.last: dict[str, tuple[Role, str]] = {}  # symbol -> (role, variant) of the last decision
        self.regime: dict[str, str] = {}

    def _portfolio(self, role: Role) -> RolePortfolio:
        rp = self.portfolios.get(role)
        if rp is None:
            rp = RolePortfolio(
                role, [v.variant for v in self.variants.values()], self.policy, model=self.version
            )
            self.portfolios[role] = rp
        return rp

    def _regime(self, ctx: BarContext, recs: list[Any]) -> str:
        if self.detector_factory is None:
            return ALL
        det = self.detectors.get(ctx.symbol)
        if det is None:
            det = self.detectors[ctx.symbol] = self.detector_factory(ctx.symbol)
        rid, probs = det.on_bar(ctx.features)
        ctx.regime, ctx.regime_probs = int(rid), probs
        name = self.regime_names[rid] if 0 <= rid < len(self.regime_names) else ALL
        if self.regime.get(ctx.symbol) != name:
            recs.append(R.MarketStatus(id=new_id(), ts=ctx.ts_ns, symbol=ctx.symbol, model=self.version,
                                       status="regime", reason=name))  # fmt: skip
            self.regime[ctx.symbol] = name
        return name

    def decide(self, ctx: BarContext) -> Target:
        recs: list[Any] = []
        regime = self._regime(ctx, recs)
        steps = {vid: vm.step(ctx) for vid, vm in self.variants.items()}
        ts = ctx.ts_ns
        prev = self.last.get(ctx.symbol)
        if prev is not None:  # the role that decided at the previous bar learns what each variant earned
            prole, pchoice = prev
            rp = self._portfolio(prole)
            for vid, (_, _, reward) in steps.items():
                if math.isfinite(reward):
                    w = 1.0 if vid == pchoice else rp.shadow_weight
                    recs += rp.update(vid, reward * 1e4, w, ts, shadow=vid != pchoice)
            recs += rp.maybe_retire(ts)
        role = Role(ctx.symbol, regime, self.style)
        rp = self._portfolio(role)
        held = prev[1] if prev is not None else FLAT
        if held != FLAT and held in steps and steps[held][0] != 0:
            # a trade in progress stays with the variant that took it: a fresh draw every bar
            # would flip the book between variants' positions and pay for every flip
            vid, role = held, prev[0]
            rp = self._portfolio(role)
        else:
            vid, choice = rp.choose(ts)
            recs += choice
        self.last[ctx.symbol] = (role, vid)
        if vid == FLAT:
            return Target(exposure=0.0, reason=f"{role.key}:flat", value=0.0, model=f"{self.version}:flat",
                          role=role.key, records=recs)  # fmt: skip
        side, p, _ = steps[vid]
        vm = self.variants[vid]
        return Target(
            exposure=float(side) * rp.risk_cap(vid),
            reason=f"{role.key}:{vid}",
            value=p if math.isfinite(p) else 0.0,
            model=f"{self.version}:{vid}@{vm.model.version}",
            role=role.key,
            records=recs,
        )


def default_variants(horizon: int) -> list[Variant]:
    """Three signal configurations when the config declares none: the ensemble at the model
    horizon, at three times it, and a momentum/volatility-only one."""
    from kaizen.models.features import FEATURES

    mom = tuple(f.name for f in FEATURES if f.surface in ("momentum", "volatility"))
    return [
        Variant(id=f"ens_h{horizon}", style="signal", horizon_bars=horizon),
        Variant(id=f"ens_h{3 * horizon}", style="signal", horizon_bars=3 * horizon),
        Variant(id=f"mom_h{horizon}", style="signal", horizon_bars=horizon, features=mom),
    ]
