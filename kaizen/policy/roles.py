"""Roles and variants.

A role is (symbol, regime, style): "the trend specialist for BTC in high volatility". A variant is
a trained model configuration competing for a role's decisions: features, label horizon,
hyper-parameters, training window. `flat` (hold no position, reward exactly 0) is variant 0 of
every role, so a model has to beat doing nothing, net of costs, to trade.
"""

from __future__ import annotations

import msgspec

from kaizen.config import Config, PolicyConfig, VariantConfig

FLAT = "flat"


class Role(msgspec.Struct, frozen=True, order=True):
    symbol: str
    regime: str
    style: str

    @property
    def key(self) -> str:
        """The role's name in lineage records: SYMBOL/regime/style."""
        return f"{self.symbol}/{self.regime}/{self.style}"


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    style: str
    features: tuple[str, ...] = ()
    horizon_bars: int = 0
    train_days: int = 0
    params: dict[str, float | int | str | bool] = {}

    @property
    def is_flat(self) -> bool:
        return self.id == FLAT

    @classmethod
    def from_config(cls, style: str, v: VariantConfig) -> Variant:
        return cls(
            id=v.id,
            style=style,
            features=tuple(v.features),
            horizon_bars=v.horizon_bars,
            train_days=v.train_days,
            params=dict(v.params),
        )


def flat_variant(style: str) -> Variant:
    return Variant(id=FLAT, style=style)


def build_roles(cfg: Config | PolicyConfig, symbols: list[str] | None = None) -> dict[Role, list[Variant]]:
    """Every role (symbol x regime x style) with its variants, `flat` first.

    A `[[policy.roles]]` entry restricts one role to the variants it lists; other roles get every
    variant of their style. Cross-references are checked when the config is loaded."""
    if isinstance(cfg, Config):
        pol, symbols = cfg.policy, list(cfg.symbols) if symbols is None else symbols
    else:
        pol = cfg
        if symbols is None:
            raise ValueError("build_roles(PolicyConfig) needs the symbols")
    overrides = {(r.symbol, r.regime, r.style): r.variants for r in pol.roles}
    out: dict[Role, list[Variant]] = {}
    for sym in symbols:
        for regime in pol.regimes:
            for st in pol.styles:
                variants = [Variant.from_config(st.name, v) for v in st.variants]
                keep = overrides.get((sym, regime, st.name))
                if keep is not None:
                    variants = [v for v in variants if v.id in keep]
                out[Role(sym, regime, st.name)] = [flat_variant(st.name), *variants]
    return out
