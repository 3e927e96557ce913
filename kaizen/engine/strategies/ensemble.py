"""The ensemble strategy: the trained signal ensemble through the compiled predictors, trading only
a positive expected edge net of costs.

At each bar close the compiled ensemble gives p = P(a long's net forward return over the horizon
> 0); the model's out-of-fold calibration (kaizen/models/edge.py) turns p into an expected gross
return E over the horizon, and `decide_side` (the one net-edge rule, also used to produce the
model's out-of-fold evidence) picks the side: enter only when the edge net of funding beats the
round trip (taker fee + half spread + slippage, twice), hold a new position for the horizon the
model was trained on, keep an older one while its edge stays positive; otherwise flat.

`require_evidence` (the `kaizen` strategy) also stays flat unless the model showed an edge out of
sample before it was deployed: the same rule traded on its out-of-fold predictions made money with
a daily t-statistic >= `min_tstat`. Flat is the fallback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from kaizen.engine.strategy import BarContext, Target
from kaizen.errors import DataError
from kaizen.models.edge import EdgeCalibration, decide_side

FUNDING_INTERVAL_H = 8.0


class SignalModel:
    """A trained ensemble directory loaded for the hot path: the compiled predictor, its edge
    calibration and the out-of-sample evidence recorded at training time."""

    def __init__(self, path: Path, compiled, edge: EdgeCalibration, evidence: dict, manifest: dict) -> None:
        from kaizen.models.features import CONTEXT_NAMES, FEATURE_NAMES, INPUT_NAMES

        self.path = path
        self.compiled = compiled
        self.edge = edge
        self.evidence = evidence
        self.manifest = manifest
        self.version = compiled.version
        # a variant trained on some features only sees those: the others are missing, as in training
        keep = manifest.get("variant_features") or []
        self._masked = (
            np.array([i for i, n in enumerate(FEATURE_NAMES) if n not in keep], np.intp) if keep else None
        )
        # the inputs it was trained on: the engine features, or those and the regime context
        context = any(n in CONTEXT_NAMES for n in manifest["features"])
        self.n_inputs = len(INPUT_NAMES) if context else len(FEATURE_NAMES)
        self._buf = np.empty(self.n_inputs, np.float64)

    def predict(self, x: np.ndarray) -> float:
        """x: the bar's BarContext.inputs (engine features then regime context; a model without
        context reads the first part) or, for a model without context, the engine vector alone."""
        if len(x) != self.n_inputs:
            x = x[: self.n_inputs]
        if self._masked is None:
            return self.compiled.predict(x)
        buf = self._buf
        buf[:] = x
        buf[self._masked] = np.nan
        return self.compiled.predict(buf)


def load_signal_model(path: str | Path, backend: str = "auto") -> SignalModel:
    from kaizen.models.ensemble import Ensemble

    path = Path(path)
    ens = Ensemble.load(path, backend=backend)
    edge = ens.manifest.get("edge")
    if not isinstance(edge, dict) or "slope" not in edge:
        raise DataError(f"{path}: model has no edge calibration (train it again with this version)")
    return SignalModel(path, ens.compiled(), EdgeCalibration.from_dict(edge), edge, ens.manifest)


def evidence_ok(evidence: dict, min_tstat: float) -> bool:
    """Did the rule make money out of fold, beyond luck (daily t-statistic >= min_tstat)?"""
    t = float(evidence.get("oof_daily_tstat", 0.0))
    return float(evidence.get("slope", 0.0)) > 0 and math.isfinite(t) and t >= min_tstat


class EnsembleStrategy:
    name = "ensemble"

    def __init__(
        self,
        model: SignalModel,
        horizon_bars: int,
        *,
        require_evidence: bool = False,
        min_tstat: float = 2.0,
        name: str = "ensemble",
    ) -> None:
        self.name = name
        self.horizon_bars = horizon_bars
        self.require_evidence = require_evidence
        self.min_tstat = min_tstat
        self.set_model(model)

    def set_model(self, model: SignalModel) -> None:
        """Swap the model (between two bars: the engine calls decide() one bar at a time)."""
        self.model = model
        self.version = f"{self.name}:{model.version}"
        self.trusted = (not self.require_evidence) or evidence_ok(model.evidence, self.min_tstat)

    def decide(self, ctx: BarContext) -> Target:
        role = f"{ctx.symbol}/signal"
        p = self.model.predict(ctx.inputs)
        if not math.isfinite(p):
            return Target(exposure=0.0, reason="no_prediction", value=p, model=self.version, role=role)
        if not self.trusted:
            return Target(
                exposure=0.0, reason="no_oof_edge", value=p, edge=0.0, model=self.version, role=role
            )
        e = self.model.edge.expected_return(p)
        ctx.signal_edge = e
        hold_h = self.horizon_bars * 24.0 / ctx.bars_per_day
        fr = ctx.funding_rate if math.isfinite(ctx.funding_rate) else 0.0
        pos = ctx.position
        side, reason, edge = decide_side(
            e,
            fr * hold_h / FUNDING_INTERVAL_H,
            ctx.costs.round_trip,
            pos.side,
            pos.bars_in_trade,
            self.horizon_bars,
        )
        return Target(exposure=float(side), reason=reason, value=p, edge=edge, model=self.version, role=role)


def describe(model: SignalModel) -> str:
    return json.dumps({"version": model.version, "edge": model.evidence}, sort_keys=True)
