"""The synthetic market's parameters: one model for the live simulator and `kaizen data synth`.

`MarketModel` (a msgspec Struct) holds the regime chain, the regime shapes, the planted signal and
its break; `MarketModel.process(...)` builds the Cython kernel (kaizen.ext.marketmodel) that both
the simulator (a step per publish tick) and the batch generator (sub-steps inside each bar) run.

Two presets:
- `demo()`: the simulator's default, fast regime switches (mean dwell 4 h of sim time) so a short
  paper demo sees several regimes; no planted signal.
- `synth()`: the realistic planted market of `kaizen data synth` and `kaizen sim --market synth`:
  mean dwell of a symbol's regime ~6 days, high-vol 2.5x the low-vol volatility, trend drift
  0.05 sigma per hour, regimes co-moving across symbols, and a planted momentum/reversion signal
  whose regime mapping changes at an optional break. Numbers and reasons in README ("Synthetic
  market").
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np

from kaizen.errors import ConfigError

REGIMES = ("trend_low", "trend_high", "range_low", "range_high")  # id = vol bit + 2 * range bit
SignalKind = Literal["momentum", "reversion", "none"]
_SIGN = {"momentum": 1.0, "reversion": -1.0, "none": 0.0}
HOURS_PER_YEAR = 365.0 * 24.0


class RegimeParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Regime chain (two axes: vol low/high, trend/range) and the shape of each regime."""

    vol_low: float  # hourly sigma = symbol's annual vol / sqrt(8760) * vol_low
    vol_high: float
    trend_drift: float  # drift per hour in units of the regime's hourly sigma (direction drawn per trend)
    range_half_life_h: float  # a range's pull back to its anchor
    fast_gain_trend: float  # sub-bar feedback (minutes): > 0 persistence, < 0 reversal
    fast_gain_range: float
    fast_tau_min: float
    premium_tilt: float  # perp premium shifts by tilt * direction in a trend (funding leans with it)
    vol_dwell_h: float  # market-wide: mean time between flips of the vol axis
    trend_dwell_h: float  # ... and of the trend/range axis
    follow: float  # P(a symbol adopts a market flip): regime co-movement across symbols
    own_dwell_h: float  # a symbol agreeing with the market leaves it on its own at this mean interval
    rejoin_h: float  # ... and a symbol on its own rejoins the market after this mean time
    return_corr: float  # correlation of the symbols' return shocks

    def shapes(self) -> np.ndarray:
        """4 x 5 (vol_mult, drift, kappa, fast_gain, premium_tilt) in REGIMES order."""
        kappa = math.log(2.0) / self.range_half_life_h
        rows = []
        for name in REGIMES:
            trend = name.startswith("trend")
            vol = self.vol_high if name.endswith("high") else self.vol_low
            rows.append(
                (
                    vol,
                    self.trend_drift if trend else 0.0,
                    0.0 if trend else kappa,
                    self.fast_gain_trend if trend else self.fast_gain_range,
                    self.premium_tilt if trend else 0.0,
                )
            )
        return np.array(rows, dtype=np.float64)

    def axis_rate_h(self, dwell_h: float) -> float:
        """A symbol's flip rate of one axis in the stationary state of its agree/disagree chain
        with the market: agreeing, it follows a market flip (f / D) or leaves (1 / O); disagreeing,
        it rejoins (1 / R), and a market flip towards it makes it agree without a flip of its own."""
        m, o, r, f = 1.0 / dwell_h, 1.0 / self.own_dwell_h, 1.0 / self.rejoin_h, self.follow
        leave, back = (1.0 - f) * m + o, m + r
        q = back / (leave + back)  # P(agree)
        return q * (f * m + o) + (1.0 - q) * r

    def agreement(self, dwell_h: float) -> float:
        """Stationary probability that a symbol's axis equals the market's."""
        m, o, r, f = 1.0 / dwell_h, 1.0 / self.own_dwell_h, 1.0 / self.rejoin_h, self.follow
        leave, back = (1.0 - f) * m + o, m + r
        return back / (leave + back)

    def mean_dwell_h(self) -> float:
        """Mean time a symbol stays in one of the four regimes."""
        return 1.0 / (self.axis_rate_h(self.vol_dwell_h) + self.axis_rate_h(self.trend_dwell_h))


class SignalParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The planted predictable component: expected drift per hour = phi * sigma * clip(s_norm),
    s_norm the symbol's recent log return (EMA sum, time constant tau_h) in units of its
    stationary sd; phi = +strength (momentum), -strength (reversion) or 0 (none) by regime."""

    strength: float
    tau_h: float
    clip: float
    before: tuple[SignalKind, SignalKind, SignalKind, SignalKind]  # per regime in REGIMES order
    after: tuple[SignalKind, SignalKind, SignalKind, SignalKind]  # from the break on

    def phi(self, mapping: tuple[str, ...]) -> np.ndarray:
        return np.array([_SIGN[k] * self.strength for k in mapping], dtype=np.float64)


class MarketModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    regime: RegimeParams
    signal: SignalParams
    break_h: float | None = None  # sim hours after the start when the signal mapping changes
    premium_base: float = 0.0001  # perp premium target: Binance's 0.01 % per 8 h interest leg
    premium_sd: float = 0.0003
    premium_relax_h: float = 1.0

    @classmethod
    def demo(cls) -> MarketModel:
        """The simulator's default market (unchanged behaviour): regimes every ~4 h of sim time,
        independent per symbol, no planted signal."""
        return cls(
            name="demo",
            regime=RegimeParams(
                vol_low=0.6,
                vol_high=1.7,
                trend_drift=0.05,
                range_half_life_h=2.0 * math.log(2.0),
                fast_gain_trend=0.0,
                fast_gain_range=0.0,
                fast_tau_min=5.0,
                premium_tilt=0.0002,
                vol_dwell_h=8.0,
                trend_dwell_h=8.0,
                follow=0.0,
                own_dwell_h=8.0,
                rejoin_h=8.0,
                return_corr=0.36,
            ),  # fmt: skip
            signal=SignalParams(strength=0.0, tau_h=4.0, clip=2.0, before=("none",) * 4, after=("none",) * 4),
        )

    @classmethod
    def synth(cls, break_day: float | None = None) -> MarketModel:
        """The planted market (README "Synthetic market" gives the reasons for each number)."""
        return cls(
            name="synth",
            regime=RegimeParams(
                vol_low=0.6,
                vol_high=1.5,
                trend_drift=0.05,
                range_half_life_h=24.0,
                fast_gain_trend=0.35,
                fast_gain_range=-0.35,
                fast_tau_min=5.0,
                premium_tilt=0.0002,
                vol_dwell_h=10 * 24.0,
                trend_dwell_h=21 * 24.0,
                follow=0.85,
                own_dwell_h=90 * 24.0,
                rejoin_h=5 * 24.0,
                return_corr=0.6,
            ),  # fmt: skip
            signal=SignalParams(
                strength=0.06,
                tau_h=4.0,
                clip=2.0,
                before=("momentum", "momentum", "reversion", "reversion"),
                after=("none", "reversion", "none", "momentum"),
            ),
            break_h=None if break_day is None else 24.0 * break_day,
        )

    @classmethod
    def showcase(cls, break_h: float | None = None) -> MarketModel:
        """`kaizen demo`'s market: the synth structure compressed into hours so a few wall minutes
        at 600x hold several regimes and a break. Regimes flip every few sim hours; the planted
        signal is strong (1.0 sigma per hour per unit of the signal, clipped at 2, 1 h time constant) so a 1 h hold
        beats a taker round trip, momentum in every regime before the break and reversion after
        it (a break a model trained before it must fail on, visibly)."""
        return cls(
            name="showcase",
            regime=RegimeParams(
                vol_low=0.6,
                vol_high=1.5,
                trend_drift=0.05,
                range_half_life_h=2.0,
                fast_gain_trend=0.0,
                fast_gain_range=0.0,
                fast_tau_min=5.0,
                premium_tilt=0.0002,
                vol_dwell_h=6.0,
                trend_dwell_h=8.0,
                follow=0.85,
                own_dwell_h=48.0,
                rejoin_h=4.0,
                return_corr=0.6,
            ),  # fmt: skip
            signal=SignalParams(
                strength=1.0,
                tau_h=1.0,
                clip=2.0,
                before=("momentum",) * 4,
                after=("reversion",) * 4,
            ),
            break_h=break_h,
        )

    @classmethod
    def preset(cls, name: str, break_day: float | None = None) -> MarketModel:
        if name == "showcase":
            return cls.showcase(None if break_day is None else 24.0 * break_day)
        if name == "demo":
            if break_day is not None:
                raise ConfigError("the demo market has no planted signal to break; use --market synth")
            return cls.demo()
        if name == "synth":
            return cls.synth(break_day)
        raise ConfigError(f"unknown market model {name!r} (known: demo, synth, showcase)")

    def validate(self) -> MarketModel:
        r, s = self.regime, self.signal
        checks = {
            "vol_low": r.vol_low > 0,
            "vol_high": r.vol_high >= r.vol_low,
            "range_half_life_h": r.range_half_life_h > 0,
            "fast_tau_min": r.fast_tau_min > 0,
            "vol_dwell_h": r.vol_dwell_h > 0,
            "trend_dwell_h": r.trend_dwell_h > 0,
            "own_dwell_h": r.own_dwell_h > 0,
            "rejoin_h": r.rejoin_h > 0,
            "follow": 0.0 <= r.follow <= 1.0,
            "return_corr": 0.0 <= r.return_corr <= 1.0,
            "fast_gain_trend": -1.0 < r.fast_gain_trend < 0.8,
            "fast_gain_range": -1.0 < r.fast_gain_range < 0.8,
            "signal.strength": s.strength >= 0,
            "signal.tau_h": s.tau_h > 0,
            "signal.clip": s.clip > 0,
            "break_h": self.break_h is None or self.break_h >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"market model {self.name!r}: bad value for {', '.join(bad)}")
        return self

    def process(self, annual_vols: list[float], start_prices: list[float], seed: int):
        """The kernel for these symbols (annual vol and start price each), seeded."""
        from kaizen.ext.marketmodel import MarketProcess

        self.validate()
        r, s = self.regime, self.signal
        return MarketProcess(
            self.regime.shapes(),
            s.phi(s.before),
            s.phi(s.after),
            np.array([r.vol_dwell_h, r.trend_dwell_h]),
            np.array([r.own_dwell_h, r.own_dwell_h]),
            np.array([r.rejoin_h, r.rejoin_h]),
            r.follow,
            r.return_corr,
            r.fast_tau_min / 60.0,
            s.tau_h,
            s.clip,
            -1.0 if self.break_h is None else self.break_h,
            self.premium_base,
            self.premium_sd,
            self.premium_relax_h,
            np.array([v / math.sqrt(HOURS_PER_YEAR) for v in annual_vols], dtype=np.float64),
            np.array(start_prices, dtype=np.float64),
            int(seed) & 0xFFFFFFFFFFFFFFFF,
        )

    def describe(self) -> dict:
        """Plain dict of every parameter plus derived figures (for DIR/truth/signal.json)."""
        r = self.regime
        out = msgspec.to_builtins(self)
        out["regimes"] = list(REGIMES)
        out["derived"] = {
            "mean_dwell_h": r.mean_dwell_h(),
            "vol_axis_mean_dwell_h": 1.0 / r.axis_rate_h(r.vol_dwell_h),
            "trend_axis_mean_dwell_h": 1.0 / r.axis_rate_h(r.trend_dwell_h),
            "high_over_low_vol": r.vol_high / r.vol_low,
            "trend_drift_per_hour_over_hourly_sigma": r.trend_drift,
            "range_reversion_per_hour": math.log(2.0) / r.range_half_life_h,
            "p_symbol_on_market_vol_axis": r.agreement(r.vol_dwell_h),
            "p_symbol_on_market_trend_axis": r.agreement(r.trend_dwell_h),
        }
        return out
