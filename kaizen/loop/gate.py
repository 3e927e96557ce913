"""Validation gate: promote a shadow candidate only when it beats the champion by more than luck.

Inputs are the champion's and the candidate's per-decision NET returns (after fees, spread and
funding) on the same shadow decisions -- the champion may be `flat`, whose returns are all 0 -- and
the number of trials ever run for the role. A candidate is promoted when all of these hold:

1. sample: at least `min_decisions` paired decisions;
2. luck: a one-sided paired test of H1 "E[candidate - champion] > 0" gives p < `alpha`
   (`test = "dm"`: Diebold-Mariano with the Harvey-Leybourne-Newbold correction and a Newey-West
   long-run variance; `"bootstrap"`: paired stationary block bootstrap; `"both"`, the default: both
   must pass. Measured on fat-tailed, autocorrelated nulls (tests/loop/test_gate.py), DM-HLN alone
   rejects 5-7 % at alpha 5 %, the bootstrap 4-7 %, both together 4-5 %, for ~1 point of power);
3. overfitting: the candidate's deflated Sharpe ratio, counting every trial of the role, is
   >= `min_dsr` (0.95);
4. optionally, when the per-decision returns of the role's trials are given and `max_pbo` is set,
   the CSCV probability of backtest overfitting is <= `max_pbo`.

The gate decides once, when the shadow period is over (`final=True`): promote, or retire. Before
that it answers `keep_waiting` with interim statistics: promoting at the first of many interim looks
with p < alpha would inflate the false-promotion rate far above alpha. When the period is over but
the sample is short, it keeps waiting; `expired=True` (the caller's longest extension) retires.

Group-sequential looks (`looks` > 1): a weak real edge needs more decisions than one shadow period
holds, and retraining a fresh candidate every period throws the evidence away (and counts one more
trial against the next). So a candidate may be looked at `looks` times, at the end of each period
(`look=1..looks`): at each look the test runs at Pocock's nominal level (`pocock_alpha`: the same
level at every look, set so that the chance of ANY look rejecting a null is `alpha`), promoting
when every check passes; an interim look whose mean difference is <= 0 retires the candidate
(futility; a binding futility rule only lowers the false-promotion rate); otherwise it keeps
waiting, and the last look promotes or retires.

`flat` as the candidate asks whether the champion loses money: the test is the same on
d = 0 - champion, and the deflated-Sharpe criterion does not apply (flat is no fitted trial).

All statistics live in `kaizen.stats`; this module only decides and records.
"""

from __future__ import annotations

import functools
from typing import Literal

import msgspec
import numpy as np

from kaizen import stats
from kaizen.lineage.ids import new_id
from kaizen.lineage.records import ShadowComparison
from kaizen.models.registry import FLAT

PROMOTE = "promote"
RETIRE = "retire"
KEEP_WAITING = "keep_waiting"
METRIC = "net_return_per_decision"


class GateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    alpha: float = 0.05
    min_dsr: float = 0.95
    min_decisions: int = 200
    test: Literal["dm", "bootstrap", "both"] = "both"
    horizon: int = 1  # decisions an outcome overlaps (sets the minimum Newey-West lag: horizon - 1)
    bootstrap: Literal["stationary", "circular"] = "stationary"
    reps: int = 999
    max_pbo: float | None = None
    looks: int = 1  # group-sequential looks at a candidate, one per shadow period (Pocock levels)

    def __post_init__(self) -> None:
        if not 1 <= self.looks <= 20:
            raise ValueError(f"gate looks must be in [1, 20], got {self.looks}")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"gate alpha must be in (0, 0.5), got {self.alpha}")
        if not 0.0 <= self.min_dsr < 1.0:
            raise ValueError(f"gate min_dsr must be in [0, 1), got {self.min_dsr}")
        if self.min_decisions < 10 or self.horizon < 1 or self.reps < 99:
            raise ValueError("gate: min_decisions >= 10, horizon >= 1 and reps >= 99 are required")

    @classmethod
    def from_loop(cls, loop) -> GateConfig:
        """From a `kaizen.config.LoopConfig` (its gate_* keys)."""
        return cls(
            alpha=loop.gate_alpha,
            min_dsr=loop.gate_min_dsr,
            min_decisions=loop.gate_min_decisions,
            test=loop.gate_test,
            horizon=loop.gate_horizon,
            reps=loop.gate_bootstrap_reps,
            max_pbo=loop.gate_max_pbo,
            looks=loop.shadow_looks,
        )

    @property
    def look_alpha(self) -> float:
        """The nominal one-sided level of each look (alpha itself with one look)."""
        return self.alpha if self.looks == 1 else pocock_alpha(self.alpha, self.looks)


@functools.lru_cache(maxsize=64)
def pocock_alpha(alpha: float, looks: int, paths: int = 400_000, seed: int = 1977) -> float:
    """Pocock's nominal one-sided level for `looks` equally spaced looks at overall level `alpha`:
    the c with P(max_i Z_i > c) = alpha for the score statistics Z_i = S_i / sqrt(i) of a random
    walk with i iid N(0, 1) increments (corr(Z_i, Z_j) = sqrt(i / j)), by seeded simulation;
    returns 1 - Phi(c) (one-sided 0.05: 2 looks 0.0302, 3 looks 0.0234, 4 looks 0.0194)."""
    from scipy.stats import norm

    if looks == 1:
        return alpha
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.standard_normal((paths, looks)), axis=1)
    zmax = (walk / np.sqrt(np.arange(1, looks + 1))).max(axis=1)
    c = float(np.quantile(zmax, 1.0 - alpha))
    return float(norm.sf(c))


class GateResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the gate computed and decided. Sharpe ratios are per decision. `p_value` is the
    deciding p-value (the larger of the two when test = "both"); `checks` names each criterion and
    whether it passed; `dsr` is 0 and `dsr_applies` False for a flat candidate."""

    decision: str
    reason: str
    role: str
    champion: str
    candidate: str
    n: int
    final: bool
    mean_champion: float
    mean_candidate: float
    mean_diff: float
    sr_champion: float
    sr_candidate: float
    sr_diff: float
    test: str
    statistic: float
    p_value: float
    dm: stats.PairedTest | None
    bootstrap: stats.PairedTest | None
    dsr: float
    psr: float
    sr0: float
    dsr_applies: bool
    n_trials: int
    pbo: float | None
    checks: dict[str, bool]


class ValidationGate:
    """Stateless apart from its config; one instance serves every role."""

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()

    def evaluate(
        self,
        champion_returns: np.ndarray,
        candidate_returns: np.ndarray,
        *,
        n_trials: int,
        role: str = "",
        champion: str = "",
        candidate: str = "",
        trial_srs: np.ndarray | None = None,
        trial_returns: np.ndarray | None = None,
        final: bool = True,
        expired: bool = False,
        seed: int | None = 0,
        look: int | None = None,
    ) -> GateResult:
        """Decide promote / retire / keep_waiting for `candidate` against `champion`.

        `champion_returns`, `candidate_returns`: per-decision net returns on the same decisions
        (equal length, finite). `n_trials`: every trial ever run for the role (>= 1; the candidate
        counts). `trial_srs`: their per-decision Sharpe ratios, if known (sets the variance of SR
        across trials in the DSR). `trial_returns`: T x N per-decision returns of the role's trials
        on a common period, for PBO. `seed`: the bootstrap's generator seed (results are
        reproducible). `look` (1..config.looks): a group-sequential look (module doc); it sets
        `final` itself (the last look is final) and the level (`GateConfig.look_alpha`)."""
        cfg = self.config
        alpha = cfg.alpha
        interim = False
        if look is not None:
            if not 1 <= look <= cfg.looks:
                raise ValueError(f"gate: look {look} outside 1..{cfg.looks}")
            alpha = cfg.look_alpha
            interim = look < cfg.looks
            final = True
        champ = np.asarray(champion_returns, np.float64).ravel()
        cand = np.asarray(candidate_returns, np.float64).ravel()
        if champ.shape != cand.shape:
            raise ValueError(f"gate: {len(champ)} champion returns but {len(cand)} candidate returns")
        if not (np.all(np.isfinite(champ)) and np.all(np.isfinite(cand))):
            raise ValueError("gate: returns contain NaN or inf")
        if n_trials < 1:
            raise ValueError("gate: n_trials counts the candidate, so it is >= 1")
        n = len(cand)
        flat = candidate == FLAT
        diff = cand - champ
        dm = bs = None
        if cfg.test in ("dm", "both"):
            dm = stats.diebold_mariano(diff, horizon=cfg.horizon)
        if cfg.test in ("bootstrap", "both"):
            bs = stats.bootstrap_pvalue(diff, method=cfg.bootstrap, reps=cfg.reps, seed=seed)
        deciding = max((t for t in (dm, bs) if t is not None), key=lambda t: t.p_value)
        if flat:
            dsr = {"dsr": 0.0, "psr": 0.0, "sr0": 0.0}
        else:
            dsr = stats.deflated_sharpe(cand, n_trials, trial_srs)
        pbo = None
        if trial_returns is not None:
            pbo = stats.pbo_cscv(np.asarray(trial_returns, np.float64)).pbo

        checks = {
            "sample": n >= cfg.min_decisions,
            "p_value": deciding.p_value < alpha,
            "dsr": True if flat else dsr["dsr"] >= cfg.min_dsr,
        }
        if cfg.max_pbo is not None and pbo is not None:
            checks["pbo"] = pbo <= cfg.max_pbo
        failed = [k for k, ok in checks.items() if not ok]
        if not checks["sample"]:
            decision = RETIRE if expired else KEEP_WAITING
            reason = f"{n} decisions < min {cfg.min_decisions}" + (" at expiry" if expired else "")
        elif not final:
            decision, reason = KEEP_WAITING, "shadow period not over (interim statistics)"
        elif failed and interim and diff.mean() > 0:
            decision = KEEP_WAITING
            reason = f"look {look}/{cfg.looks}: " + "; ".join(self._why(k, deciding, dsr, pbo, alpha) for k in failed)
        elif failed:
            decision = RETIRE
            reason = "; ".join(self._why(k, deciding, dsr, pbo, alpha) for k in failed)
            if interim:
                reason = f"look {look}/{cfg.looks}: no better than the champion so far (futility); " + reason
        else:
            decision = PROMOTE
            reason = (
                f"beats {champion or 'champion'} by {diff.mean():.3g}/decision over {n}: "
                f"p={deciding.p_value:.3g} < {alpha:.3g}"
                + (f" (look {look}/{cfg.looks})" if look is not None and cfg.looks > 1 else "")
                + ("" if flat else f", DSR={dsr['dsr']:.3f} >= {cfg.min_dsr} ({n_trials} trials)")
            )
        return GateResult(
            decision=decision,
            reason=reason,
            role=role,
            champion=champion,
            candidate=candidate,
            n=n,
            final=final,
            mean_champion=float(champ.mean()) if n else 0.0,
            mean_candidate=float(cand.mean()) if n else 0.0,
            mean_diff=float(diff.mean()) if n else 0.0,
            sr_champion=stats.sharpe(champ),
            sr_candidate=stats.sharpe(cand),
            sr_diff=stats.sharpe(diff),
            test=cfg.test,
            statistic=deciding.statistic,
            p_value=deciding.p_value,
            dm=dm,
            bootstrap=bs,
            dsr=float(dsr["dsr"]),
            psr=float(dsr["psr"]),
            sr0=float(dsr["sr0"]),
            dsr_applies=not flat,
            n_trials=int(n_trials),
            pbo=pbo,
            checks=checks,
        )

    def _why(self, check: str, test: stats.PairedTest, dsr: dict, pbo: float | None, alpha: float) -> str:
        cfg = self.config
        if check == "p_value":
            return f"p={test.p_value:.3g} >= {alpha:.3g} ({test.method})"
        if check == "dsr":
            return f"DSR={dsr['dsr']:.3f} < {cfg.min_dsr}"
        return f"PBO={pbo:.2f} > {cfg.max_pbo}"


def comparison_record(
    result: GateResult, *, ts: int, id: int | None = None, parents: list[int] | None = None
) -> ShadowComparison:
    """The `ShadowComparison` lineage record of one gate evaluation. `parents`: the ids the
    comparison derives from (e.g. the candidate's Retrain record). Record ids from `new_id()`
    unless given. The registry move that follows a promotion or retirement should name this
    record's id among its parents, so `kaizen log trace` can walk move -> comparison -> training."""
    extra = {
        "sr_champion": result.sr_champion,
        "sr_candidate": result.sr_candidate,
        "sr_diff": result.sr_diff,
        "mean_diff": result.mean_diff,
        "psr": result.psr,
        "sr0": result.sr0,
        "final": float(result.final),
    }
    for t in (result.dm, result.bootstrap):
        if t is not None:
            pre = "dm" if t.method.startswith("dm") else "bootstrap"
            extra[f"{pre}_statistic"] = t.statistic
            extra[f"{pre}_p_value"] = t.p_value
            extra[f"{pre}_lags" if pre == "dm" else f"{pre}_block"] = float(
                t.lags if pre == "dm" else t.block
            )
    if result.pbo is not None:
        extra["pbo"] = result.pbo
    return ShadowComparison(
        id=new_id() if id is None else id,
        ts=ts,
        parents=list(parents or []),
        model=result.candidate,
        role=result.role,
        champion=result.champion,
        shadow=result.candidate,
        metric=METRIC,
        champion_value=result.mean_champion,
        shadow_value=result.mean_candidate,
        n=result.n,
        test=result.test,
        statistic=result.statistic,
        p_value=result.p_value,
        dsr=result.dsr,
        n_trials=result.n_trials,
        decision=result.decision,
        reason=result.reason,
        stats=extra,
    )
