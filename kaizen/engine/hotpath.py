"""Assemble the Cython decision core (kaizen.ext.core.DecisionCore) from trained models.

`train_small(root)` fits a small model set on real candles in a few seconds (the tick-to-trade
benchmark and the hot-path tests use it): the regime detector, a three-base signal ensemble with a
forest meta reading the bases' logits and the regime probabilities, and an exit model. `build_core`
compiles them (kaizen.models.compile) and wires them into a DecisionCore. This module is set-up
code: nothing here runs per message.

Wiring it into the live process (not done here; kaizen/engine/runner.py and engine.py own it):
- one DecisionCore per symbol, built from the champions the loop promotes (the CompiledEnsemble it
  already compiles, the regime detector's Forest, the exit Forest); promotions go through
  `core.swap_models(...)` from the loop, which runs between two frames;
- the feed's per-route connections use `kaizen.ext.wsfeed.CoreListener(core)` instead of the
  Python listener; on (re)connect or when `core.synced_book` turns false (a lost diff, counted in
  `gaps`), fetch a REST snapshot and call `core.load_snapshot(...)` as MarketFeed does today;
- orders: a DecisionCore subclass overrides `on_order(n)` to hand `order_bytes()` (or the
  `order_*` fields) to the venue adapter (one Python call per order, none per frame); set
  `paper_fill = False` and report fills with `core.on_fill(side, lots, price)`; the risk layer
  sets `core.kill_switch`, and the limits are plain attributes (`max_notional`, ...);
- bars close on event time when `bar_every_msgs` is 0 (the interval of the feature engine);
- metrics: `core.counters()` and `core.stage_stamps()` after each frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kaizen.ext.book import OrderBook
from kaizen.ext.core import DecisionCore
from kaizen.ext.ensemble import CompiledEnsemble
from kaizen.ext.features import FeatureEngine
from kaizen.ext.regime import Hysteresis
from kaizen.ext.thompson import ThompsonPortfolio
from kaizen.market.data import load_dataset
from kaizen.models.features import FEATURE_NAMES, batch_features, surfaces_of
from kaizen.models.regime import (
    _ENGINE_COLS,
    DetectorParams,
    _new_state,
    detector_matrix,
    fit,
    realized_labels,
)

SIGNAL_SURFACES = ("momentum", "mean_reversion", "volatility")
EXIT_FEATURES = ("mom_ret_1", "mom_ret_4", "mom_ret_12", "vol_rv_24", "vol_parkinson_24", "mr_z_24")
EXIT_HORIZON = 4
# (entry threshold on |p - 0.5|, size multiplier) per bandit arm
VARIANTS = ((0.0, 1.0), (0.01, 0.5), (0.03, 1.5))
# BTCUSDT USD-M filters
TICK, LOT = 0.1, 0.001


@dataclass
class SmallModels:
    regime: Any                      # xgboost.Booster, multi:softprob over the regimes
    bases: list[tuple[Any, list[int]]]
    meta: Any
    exit: Any
    exit_cols: list[int]
    hysteresis: tuple[float, int]
    interval_ms: int
    warm: np.ndarray                 # the last bars before the stream: open_time, o, h, l, c, v
    info: dict[str, Any] = field(default_factory=dict)


def _params(objective: str, trees: int, depth: int, seed: int, **extra: Any) -> dict[str, Any]:
    return {"objective": objective, "max_depth": depth, "eta": 0.1, "tree_method": "hist",
            "subsample": 0.8, "nthread": 2, "seed": seed, **extra}  # fmt: skip


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def train_small(
    root: str | Path, symbol: str = "BTCUSDT", start: str = "2023-01-01", end_ms: int = 1723161600000,
    trees: int = 30, seed: int = 7, warm_bars: int = 200,
) -> SmallModels:  # fmt: skip
    """Fit the model set on `symbol`'s 1h candles in [start, end_ms) (default: up to the recorded
    stream's day, 2024-08-09 00:00 UTC)."""
    import xgboost as xgb

    from kaizen.market.data import parse_date_ms

    ds = load_dataset(root, [symbol], "1h", parse_date_ms(start, "start"), end_ms)
    iv = ds.symbols[symbol].klines.interval_ms
    bf = batch_features(ds, leader=symbol)
    X, close = bf.X, bf.close
    # regime detector on realized labels
    Xd = detector_matrix(bf, iv)
    y = realized_labels(close, iv)
    ok = y >= 0
    dp = DetectorParams(trees=trees, threads=2, seed=seed)
    regime = fit(Xd[ok], y[ok], dp)
    probs = regime.inplace_predict(Xd.astype(np.float32), missing=np.nan).reshape(len(Xd), -1)
    # signal: bases on surfaces predict the next bar's direction; meta on logits + regime probs
    nxt = np.r_[close[1:] / close[:-1] - 1.0, np.nan]
    rows = np.isfinite(nxt)
    up = (nxt[rows] > 0).astype(np.float32)
    surf = surfaces_of(FEATURE_NAMES)
    bases, logits = [], []
    for j, s in enumerate(SIGNAL_SURFACES):
        cols = surf[s]
        d = xgb.DMatrix(X[rows][:, cols], label=up, missing=np.nan)
        b = xgb.train(_params("binary:logistic", trees, 3, seed + j), d, num_boost_round=trees)
        bases.append((b, cols))
        logits.append(_logit(b.inplace_predict(X[rows][:, cols].astype(np.float32), missing=np.nan)))
    M = np.column_stack([*logits, probs[rows]]).astype(np.float32)
    meta = xgb.train(_params("binary:logistic", trees, 2, seed + 9), xgb.DMatrix(M, label=up), num_boost_round=trees)
    # exit: random held positions; label = the next EXIT_HORIZON bars go against the position
    rng = np.random.default_rng(seed)
    ecols = [FEATURE_NAMES.index(n) for n in EXIT_FEATURES]
    n = len(close)
    t = np.arange(24, n - EXIT_HORIZON)
    side = rng.choice([-1.0, 1.0], len(t))
    held = rng.integers(0, 12, len(t))
    ur = side * (close[t] / close[t - held] - 1.0)
    fwd = side * (close[t + EXIT_HORIZON] / close[t] - 1.0)
    reg = probs[t].argmax(1).astype(np.float64)
    E = np.column_stack([X[t][:, ecols], side, held, ur, reg]).astype(np.float32)
    ex = xgb.train(_params("binary:logistic", trees, 3, seed + 11), xgb.DMatrix(E, label=(fwd < 0).astype(np.float32), missing=np.nan), num_boost_round=trees)  # fmt: skip
    k = ds.symbols[symbol].klines
    sl = slice(len(k.open_time) - warm_bars, None)
    warm = np.column_stack([k.open_time[sl], k.open[sl], k.high[sl], k.low[sl], k.close[sl], k.volume[sl]])
    return SmallModels(regime, bases, meta, ex, ecols, (dp.margin, dp.confirm), iv, warm,
                       {"rows": int(len(close)), "trees": trees})  # fmt: skip


@dataclass
class Compiled:
    regime: Any
    bases: list[tuple[Any, list[int]]]
    meta: Any
    exit: Any


def compile_models(m: SmallModels, backend: str = "compiled") -> Compiled:
    from kaizen.models.compile import load_forest

    return Compiled(
        load_forest(m.regime, backend=backend),
        [(load_forest(b, backend=backend), cols) for b, cols in m.bases],
        load_forest(m.meta, backend=backend),
        load_forest(m.exit, backend=backend),
    )


def build_core(
    m: SmallModels, c: Compiled, symbol: str = "BTCUSDT", seed: int = 11, cls: type = DecisionCore,
    book_window: int = 65536, **kw: Any
) -> DecisionCore:
    """A fresh DecisionCore over the compiled models, its features warmed on m.warm."""
    book = OrderBook(TICK, LOT, 1, 3, window=book_window)
    fe = FeatureEngine([symbol], leader=symbol, interval_ms=m.interval_ms)
    signal = CompiledEnsemble(c.bases, c.meta, len(FEATURE_NAMES), num_extra=c.regime.num_outputs)
    core = cls(
        book, fe, symbol,
        regime_forest=c.regime, engine_cols=[int(i) for i in _ENGINE_COLS],
        hysteresis=Hysteresis(c.regime.num_outputs, m.hysteresis[0], m.hysteresis[1]),
        regime_features=_new_state(m.interval_ms), bandit=ThompsonPortfolio(len(VARIANTS), 0.99, seed),
        variants=VARIANTS, signal=signal, exit_model=c.exit, exit_cols=m.exit_cols,
        i_rv=FEATURE_NAMES.index("vol_rv_24"), interval_ms=m.interval_ms, **kw,
    )  # fmt: skip
    for t, o, h, lo, cl, v in m.warm:
        core.warm_bar(int(t), o, h, lo, cl, v)
    return core
