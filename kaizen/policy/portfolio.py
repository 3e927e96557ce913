"""One role's variant portfolio, as the engine uses it.

    rp = RolePortfolio(role, variants, cfg.policy)
    vid, recs = rp.choose(ts)                        # one Thompson draw over the live variants
    recs += rp.update(vid, reward_bps, 1.0, ts)      # the traded variant's realised reward
    recs += rp.update(other, cf_bps, rp.shadow_weight, ts)   # shadows' counterfactual rewards
    recs += rp.maybe_retire(ts)                       # retirement and candidate graduation
    exposure *= rp.risk_cap(vid)                      # candidates trade a capped share of risk

Rewards are per decision, in bps, net of fees, spread and funding. `flat` is variant 0: it earns
exactly 0 and is never updated; it wins a decision when every other variant's draw is below 0.
kind "beta" turns a reward into a win (> 0) or a loss (< 0); a reward of exactly 0 (no position)
is not an observation there.

Retirement: a variant whose probability of being best stays below `retire_threshold` at every check
for `retire_window` decisions, once it has `min_sample` weighted rewards, is retired (flat never).
Entry: `add(variant)` brings a candidate in with `candidate_prior`; until it has `min_sample`
weighted rewards, `risk_cap` is `candidate_risk_share`, which the engine's sizing multiplies in.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import numpy as np

from kaizen.config import PolicyConfig, PriorConfig
from kaizen.ext.thompson import ThompsonPortfolio
from kaizen.lineage.ids import new_id
from kaizen.lineage.records import BanditChoice, BanditUpdate, VariantChange
from kaizen.policy.roles import FLAT, Role, Variant, flat_variant


def role_seed(seed: int, role: Role) -> int:
    """A role's bandit seed: stable across processes and platforms (not Python's salted hash)."""
    h = hashlib.blake2b(f"{seed}:{role.key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def prior_kwargs(kind: str, prior: PriorConfig) -> dict[str, float]:
    if kind == "normal_gamma":
        return {
            "mean": prior.mean,
            "kappa": prior.kappa,
            "alpha": prior.alpha,
            "beta": prior.alpha * prior.scale_bps * prior.scale_bps,
        }
    return {"alpha": prior.alpha, "beta": prior.beta}


class RolePortfolio:
    def __init__(
        self,
        role: Role,
        variants: Sequence[Variant],
        cfg: PolicyConfig | None = None,
        *,
        seed: int | None = None,
        model: str = "",
        id_fn: Callable[[], int] = new_id,
        impl: type = ThompsonPortfolio,
    ) -> None:
        self.role = role
        self.key = role.key
        self.cfg = cfg = cfg if cfg is not None else PolicyConfig()
        self.model = model
        self._id = id_fn
        others = [v for v in variants if not v.is_flat]
        ids = [v.id for v in others]
        if len(set(ids)) != len(ids):
            raise ValueError(f"role {self.key}: duplicate variant ids {ids}")
        self.variants: list[Variant] = [flat_variant(role.style), *others]
        self.index = {v.id: i for i, v in enumerate(self.variants)}
        self.seed = role_seed(cfg.seed, role) if seed is None else seed
        self.bandit = impl(
            len(self.variants),
            discount=cfg.discount,
            seed=self.seed,
            kind=cfg.kind,
            flat=True,
            flat_value=0.0 if cfg.kind == "normal_gamma" else cfg.beta_flat_value,
            **prior_kwargs(cfg.kind, cfg.prior),
        )
        n = len(self.variants)
        self.candidate = [False] * n
        self.below_since: list[int | None] = [None] * n
        self.last_prob_best = np.full(n, math.nan)
        self._last_check = -(10**18)
        self._last_choice = -1
        self.bad_rewards = 0  # non-finite rewards refused (counted, never raised)

    # ---- decisions ----------------------------------------------------------------------------------
    @property
    def shadow_weight(self) -> float:
        return self.cfg.shadow_weight

    @property
    def decisions(self) -> int:
        return self.bandit.t

    def choose(self, ts: int) -> tuple[str, list]:
        """The variant that gets this decision, and its BanditChoice record."""
        i = self.bandit.choose()
        self._last_choice = i
        vid = self.variants[i].id
        rec = BanditChoice(
            id=self._id(),
            ts=ts,
            symbol=self.role.symbol,
            model=self.model,
            role=self.key,
            variant=vid,
            draw=float(self.bandit.last_draw),
            decision=self.bandit.t,
            risk_cap=self.risk_cap(vid),
        )
        return vid, [rec]

    def update(
        self,
        variant_id: str,
        reward: float,
        weight: float = 1.0,
        ts: int = 0,
        *,
        shadow: bool | None = None,
        parents: Sequence[int] = (),
    ) -> list:
        """Add one decision's reward (bps, net of costs) for a variant at `weight`.

        shadow=None: a shadow update unless the variant is the one the last choice picked.
        Returns the BanditUpdate record ([] for flat, a retired variant, weight 0, a non-finite
        reward, which is counted in `bad_rewards`, or a zero reward under kind "beta")."""
        i = self._idx(variant_id)
        if self.variants[i].is_flat:
            return []
        reward = float(reward)
        if not math.isfinite(reward):
            self.bad_rewards += 1
            return []
        x = reward
        if self.cfg.kind == "beta":
            if reward == 0.0:
                return []
            x = 1.0 if reward > 0.0 else 0.0
        if not self.bandit.update(i, x, weight):
            return []
        post = self.bandit.posterior(i)
        return [
            BanditUpdate(
                id=self._id(),
                ts=ts,
                parents=list(parents),
                symbol=self.role.symbol,
                model=self.model,
                role=self.key,
                variant=variant_id,
                reward=reward,
                alpha=float(post["alpha"]),
                beta=float(post["beta"]),
                kind=self.cfg.kind,
                mean=float(post["mean"]),
                kappa=float(post.get("kappa", 0.0)),
                n_eff=float(post["n_eff"]),
                weight=float(weight),
                shadow=(i != self._last_choice) if shadow is None else bool(shadow),
                decision=self.bandit.t,
            )
        ]

    # ---- portfolio changes --------------------------------------------------------------------------
    def maybe_retire(self, ts: int, *, force: bool = False) -> list:
        """Every `check_every` decisions (or when forced): estimate each variant's probability of
        being best, graduate candidates with enough evidence, retire variants that stayed below
        the threshold for the window. Returns the VariantChange records."""
        t = self.bandit.t
        if not force and t - self._last_check < self.cfg.check_every:
            return []
        self._last_check = t
        pb = np.asarray(self.bandit.prob_best(self.cfg.prob_best_samples), dtype=np.float64)
        self.last_prob_best = pb
        out = []
        for i, v in enumerate(self.variants):
            if v.is_flat or not self.bandit.is_active(i):
                continue
            evidence = float(self.bandit.posterior(i)["w_total"])
            if self.candidate[i] and evidence >= self.cfg.min_sample:
                self.candidate[i] = False
                out.append(self._change(ts, v.id, "graduate", "min_sample reached", pb[i], evidence))
            if pb[i] < self.cfg.retire_threshold:
                if self.below_since[i] is None:
                    self.below_since[i] = t
            else:
                self.below_since[i] = None
            since = self.below_since[i]
            if since is not None and t - since >= self.cfg.retire_window and evidence >= self.cfg.min_sample:
                self.bandit.retire(i)
                self.candidate[i] = False
                reason = f"prob_best < {self.cfg.retire_threshold:g} for {t - since} decisions"
                out.append(self._change(ts, v.id, "retire", reason, pb[i], evidence))
        return out

    def add(self, variant: Variant, ts: int = 0) -> tuple[int, list]:
        """A new candidate enters with the candidate prior and a capped risk share."""
        if variant.is_flat or variant.id in self.index:
            raise ValueError(f"role {self.key}: variant {variant.id!r} is already in the portfolio")
        i = self.bandit.add(**prior_kwargs(self.cfg.kind, self.cfg.candidate_prior))
        self.variants.append(variant)
        self.index[variant.id] = i
        self.candidate.append(True)
        self.below_since.append(None)
        self.last_prob_best = np.append(self.last_prob_best, math.nan)
        return i, [self._change(ts, variant.id, "enter", "candidate", math.nan, 0.0)]

    def retire(self, variant_id: str, ts: int = 0, reason: str = "manual") -> list:
        i = self._idx(variant_id)
        if not self.bandit.retire(i):
            return []
        self.candidate[i] = False
        ev = float(self.bandit.posterior(i)["w_total"])
        return [self._change(ts, variant_id, "retire", reason, self.last_prob_best[i], ev)]

    def risk_cap(self, variant_id: str) -> float:
        """Share of the role's risk budget the variant may use: candidate_risk_share while it is
        a candidate exploring, 1 otherwise."""
        return self.cfg.candidate_risk_share if self.candidate[self._idx(variant_id)] else 1.0

    # ---- inspection ---------------------------------------------------------------------------------
    def active(self) -> list[str]:
        return [v.id for i, v in enumerate(self.variants) if self.bandit.is_active(i)]

    def prob_best(self, n_samples: int | None = None) -> dict[str, float]:
        pb = self.bandit.prob_best(n_samples or self.cfg.prob_best_samples)
        return {v.id: float(pb[i]) for i, v in enumerate(self.variants) if self.bandit.is_active(i)}

    def summary(self) -> list[dict]:
        rows = []
        for i, v in enumerate(self.variants):
            post = self.bandit.posterior(i)
            rows.append(
                {
                    "variant": v.id,
                    "active": bool(post["active"]),
                    "candidate": self.candidate[i],
                    "mean": float(post["mean"]),
                    "n_eff": float(post["n_eff"]),
                    "evidence": float(post["w_total"]),
                    "prob_best": float(self.last_prob_best[i]),
                }
            )
        return rows

    def _idx(self, variant_id: str) -> int:
        try:
            return self.index[variant_id]
        except KeyError:
            raise ValueError(f"role {self.key}: unknown variant {variant_id!r}") from None

    def _change(
        self, ts: int, vid: str, action: str, reason: str, pb: float, evidence: float
    ) -> VariantChange:
        return VariantChange(
            id=self._id(),
            ts=ts,
            symbol=self.role.symbol,
            model=self.model,
            role=self.key,
            variant=vid,
            action=action,
            reason=reason,
            prob_best=float(pb) if math.isfinite(pb) else 0.0,
            evidence=evidence,
            risk_cap=self.risk_cap(vid),
            decision=self.bandit.t,
        )


__all__ = ["FLAT", "RolePortfolio", "role_seed", "prior_kwargs"]
