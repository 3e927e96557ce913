"""SIGHUP: re-read the config file and apply the keys that can change under a running engine.

Safe: the risk limits (the risk manager reads its config at every check), the baseline strategy's
thresholds, the router's no-trade band, flatten_on_stop and the log level. Everything else (symbols,
venue, strategy or model choice, bar length, lineage, sizing capital, task periods, the status
port...) is wired into objects built at start-up; changing it needs a restart. A reload that
changes any unsafe key is refused as a whole (one line naming the keys) and nothing is applied:
half a config is worse than the old one. An applied reload is a `RiskEvent(kind="config_reload")`
lineage record listing every change, and a console line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kaizen.config import Config

SAFE_PREFIXES = ("risk.",)
SAFE_KEYS = {
    "strategy.entry_z",
    "strategy.max_vol_ratio",
    "strategy.rebalance_band",
    "engine.flatten_on_stop",
    "engine.log_level",
}
UNSAFE_IN_SAFE = {"risk.capital"}  # the sizing capital is fixed for the run (decisions must not compound)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    d = msgspec.to_builtins(obj)
    out: dict[str, Any] = {}

    def walk(node: Any, p: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{p}{k}.")
        else:
            out[p[:-1]] = node

    walk(d, prefix)
    return out


def is_safe(key: str) -> bool:
    if key in UNSAFE_IN_SAFE:
        return False
    return key in SAFE_KEYS or key.startswith(SAFE_PREFIXES)


@dataclass
class ReloadPlan:
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    unsafe: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unsafe

    def describe(self) -> str:
        return "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(self.changes.items()))


def plan(old: Config, new: Config) -> ReloadPlan:
    a, b = flatten(old), flatten(new)
    p = ReloadPlan()
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            p.changes[k] = (a.get(k), b.get(k))
            if not is_safe(k):
                p.unsafe.append(k)
    return p


def set_log_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())


def apply(engine: Any, new: Config) -> None:
    """Point the running engine at the new config's safe values (call only for a safe plan)."""
    engine.cfg = new  # sizing, flatten_on_stop and stop() read engine.cfg
    if getattr(engine, "risk", None) is not None:
        engine.risk.cfg = new.risk
    if getattr(engine, "router", None) is not None:
        engine.router.rebalance_band = new.strategy.rebalance_band
    strat = getattr(engine, "strategy", None)
    if strat is not None and hasattr(strat, "entry_z"):
        strat.entry_z = new.strategy.entry_z
        if hasattr(strat, "max_ratio"):
            strat.max_ratio = new.strategy.max_vol_ratio
    set_log_level(new.engine.log_level)
