"""The declared feature list (name, surface, version) and the batch path.

The numbers come from one implementation, the Cython engine in ext/features.pyx: live code calls
`FeatureEngine.on_bar` / `on_book` per event; training calls `batch_features`, which runs the very
same `bar_update` over arrays in a nogil loop. A feature's version changes whenever its definition
does; model manifests record the versions they were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from kaizen.ext.features import NAMES as _ENGINE_NAMES
from kaizen.ext.features import FeatureEngine
from kaizen.ext.regime import DERIVED as _CONTEXT
from kaizen.ext.regime import RegimeFeatures

if TYPE_CHECKING:
    from kaizen.market.data import Dataset, SymbolData

SURFACES = (
    "momentum",
    "volatility",
    "mean_reversion",
    "volume",
    "funding_basis",
    "cross_asset",
    "order_flow",
)


class Feature(msgspec.Struct, frozen=True):
    name: str
    surface: str
    version: int
    doc: str
    live_only: bool = False


def _f(name: str, surface: str, doc: str, version: int = 1, live_only: bool = False) -> Feature:
    return Feature(name, surface, version, doc, live_only)


# In engine order. r_t = ln(c_t / c_{t-1}); std is population std (ddof 0); windows in bars, ending at
# the current bar and never reaching across a gap (the windows restart; nan until warm again). A ratio
# with a zero denominator is nan (a z-score or correlation over a constant window too); nan inputs
# propagate unless a definition says "available". tests/signal/numpy_features.py implements every
# definition below a second time, in numpy, and the tests hold the engine to it.
# Version 2 of the z-scores and correlations: a constant window gives nan exactly (version 1 could
# return +-1 from rounding in the window mean).
FEATURES: tuple[Feature, ...] = (
    _f("mom_ret_1", "momentum", "r_t"),
    _f("mom_ret_4", "momentum", "ln(c_t / c_{t-4})"),
    _f("mom_ret_12", "momentum", "ln(c_t / c_{t-12})"),
    _f("mom_ret_24", "momentum", "ln(c_t / c_{t-24})"),
    _f("mom_ret_72", "momentum", "ln(c_t / c_{t-72})"),
    _f("mom_sharpe_24", "momentum", "mom_ret_24 / (vol_rv_24 * sqrt(24))"),
    _f("vol_rv_24", "volatility", "std of r over 24 bars"),
    _f("vol_rv_72", "volatility", "std of r over 72 bars"),
    _f("vol_parkinson_24", "volatility", "sqrt(mean(ln(h/l)^2) / (4 ln 2)) over 24 bars"),
    _f(
        "vol_garman_klass_24",
        "volatility",
        "sqrt(max(0, mean(0.5 ln(h/l)^2 - (2 ln2 - 1) ln(c/o)^2))) over 24",
    ),
    _f("vol_of_vol_24", "volatility", "std / mean of the last 24 values of vol_rv_24"),
    _f("vol_ratio_24_72", "volatility", "vol_rv_24 / vol_rv_72"),
    _f("mr_z_24", "mean_reversion", "(c - mean(c,24)) / std(c,24)", version=2),
    _f("mr_z_72", "mean_reversion", "(c - mean(c,72)) / std(c,72)", version=2),
    _f("mr_range_pos_72", "mean_reversion", "(c - min(l,72)) / (max(h,72) - min(l,72))"),
    _f("mr_autocorr_24", "mean_reversion", "corr(r_t, r_{t-1}) over 24 pairs", version=2),
    _f("vlm_ratio_24", "volume", "v / mean(v,24)"),
    _f("vlm_z_24", "volume", "z-score of ln(1+v) over 24", version=2),
    _f("vlm_clv_signed", "volume", "close location ((c-l)-(h-c))/(h-l) (0 if h=l) * vlm_ratio_24"),
    _f("vlm_trend_6_24", "volume", "mean(v,6) / mean(v,24)"),
    _f("fund_rate", "funding_basis", "latest settled funding rate at the bar close"),
    _f("fund_chg_24", "funding_basis", "fund_rate_t - fund_rate_{t-24}"),
    _f("fund_mean_72", "funding_basis", "mean of fund_rate over 72 bars"),
    _f("basis_premium", "funding_basis", "mark close / last close - 1 (nan without a mark bar)"),
    _f("basis_premium_mean_24", "funding_basis", "mean of the available basis_premium over 24 bars"),
    _f("x_leader_ret_1", "cross_asset", "leader's r_t at the same bar (nan for the leader)"),
    _f("x_leader_ret_4", "cross_asset", "leader's ln(c_t / c_{t-4})"),
    _f("x_corr_72", "cross_asset", "corr(r, leader r) over 72 bars", version=2),
    _f("x_spread_24", "cross_asset", "dispersion vs leader: mean |r - leader r| over 24"),
    _f("x_rel_mom_24", "cross_asset", "mom_ret_24 - leader's ln(c_t / c_{t-24})"),
    _f("book_imbalance", "order_flow", "latest book imbalance (from the order book)", live_only=True),
    _f("book_micro_drift", "order_flow", "microprice / mid - 1 (latest)", live_only=True),
    _f("book_imbalance_ema", "order_flow", "EMA (alpha 0.1 per event) of book imbalance", live_only=True),
    _f(
        "flow_signed_volume",
        "order_flow",
        "signed trade volume since the last bar / mean(v,24)",
        live_only=True,
    ),
    _f("vol_hl_1", "volatility", "ln(h / l) of the bar (its range; Parkinson per bar = this^2 / (4 ln 2))"),
    _f(
        "vol_ends_1",
        "volatility",
        "(|2c - h - l| + |2o - h - l|) / (2 (h - l)): how near the bar's open and close sit to its "
        "extremes (1: a path that ran from one end to the other; nan if h = l)",
    ),
)

if tuple(f.name for f in FEATURES) != tuple(_ENGINE_NAMES):  # one definition: fail loudly on drift
    raise ImportError("kaizen.models.features.FEATURES does not match the engine's NAMES (rebuild ext?)")

FEATURE_NAMES: list[str] = [f.name for f in FEATURES]
_BY_NAME = {f.name: f for f in FEATURES}
_CONTEXT_SET = frozenset(_CONTEXT)


# Regime context (`[models] regime_context`): the regime detector's backward-looking features
# (kaizen.ext.regime.DERIVED: volatility over its own calm floor, drift over volatility, efficiency
# ratios, ...) appended to the engine vector as model inputs. A signal whose sign depends on the
# market state (momentum in trends, reversion in ranges) cancels out in a pooled model that cannot
# see the state; with the context one base model ("regime") sees momentum and mean-reversion
# features beside it and can learn the interaction. Computed from the engine vector by one
# RegimeFeatures per symbol, the same object live (`context_state().update`) and in batch
# (`context_matrix`).
CONTEXT_NAMES: list[str] = list(_CONTEXT)
CONTEXT_VERSION = 1  # bump when kaizen.ext.regime's definitions change
INPUT_NAMES: list[str] = FEATURE_NAMES + CONTEXT_NAMES  # a regime-context model's input vector
CONTEXT_SURFACE = "regime"
_CONTEXT_WITH = ("momentum", "mean_reversion")  # the surfaces the regime base model sees besides


def context_state(interval_ms: int) -> RegimeFeatures:
    """A fresh per-symbol regime-feature state (feed it every bar's engine vector in time order)."""
    ix = {n: i for i, n in enumerate(FEATURE_NAMES)}
    return RegimeFeatures(
        interval_ms / 3_600_000.0,
        ix["mom_ret_1"],
        ix["vol_rv_24"],
        ix["vol_parkinson_24"],
        ix["x_leader_ret_1"],
        ix["vol_hl_1"],
        ix["vol_ends_1"],
        len(FEATURE_NAMES),
    )


def context_matrix(bf: BatchFeatures, interval_ms: int) -> np.ndarray:
    """CONTEXT_NAMES for every row of `bf` (bf's row order), per symbol in time order."""
    out = np.empty((len(bf.sid), len(CONTEXT_NAMES)), np.float64)
    for i in range(len(bf.symbols)):
        rows = np.flatnonzero(bf.sid == i)  # feed order is time order within a symbol
        out[rows] = context_state(interval_ms).run_batch(np.ascontiguousarray(bf.X[rows]))
    return out


def input_versions(names: list[str]) -> dict[str, int]:
    """Versions of model inputs: engine features and, where used, the regime context."""
    v = feature_versions()
    return {n: (v[n] if n in v else CONTEXT_VERSION) for n in names}


def surfaces_of(names: list[str]) -> dict[str, list[int]]:
    """Column indices of `names` grouped by surface (in SURFACES order); with regime-context
    inputs among `names`, the "regime" surface: them plus the momentum and mean-reversion columns."""
    out: dict[str, list[int]] = {s: [] for s in SURFACES}
    ctx: list[int] = []
    for i, n in enumerate(names):
        if n in _BY_NAME:
            out[_BY_NAME[n].surface].append(i)
        elif n in _CONTEXT_SET:
            ctx.append(i)
        else:
            raise KeyError(f"unknown model input {n!r}")
    res = {s: idx for s, idx in out.items() if idx}
    if ctx:
        res[CONTEXT_SURFACE] = sorted([i for s in _CONTEXT_WITH for i in out[s]] + ctx)
    return res


def feature_versions() -> dict[str, int]:
    return {f.name: f.version for f in FEATURES}


@dataclass
class BatchFeatures:
    """Rows in feed order (by open_time, the leader first at each time)."""

    X: np.ndarray  # (rows, n_features) float64
    sid: np.ndarray  # int32 index into `symbols`
    open_time: np.ndarray  # int64 ms
    close: np.ndarray
    funding: np.ndarray
    status: np.ndarray  # engine status per row (0 ok, 1 restarted after a gap)
    symbols: list[str]
    names: list[str]

    def rows_of(self, symbol: str) -> np.ndarray:
        return np.flatnonzero(self.sid == self.symbols.index(symbol))


def batch_features(data: Dataset | dict[str, SymbolData], leader: str = "BTCUSDT") -> BatchFeatures:
    """Features for every bar of every symbol, through the same engine as live (see module doc)."""
    frames = data.symbols if hasattr(data, "symbols") and not isinstance(data, dict) else data
    symbols = list(frames)
    # the leader is fed first at each open time, as the live engine expects
    order_rank = {s: (0 if s == leader else 1 + i) for i, s in enumerate(symbols)}
    ivs = {d.klines.interval_ms for d in frames.values()}
    if len(ivs) != 1:
        raise ValueError(f"batch_features: symbols have different intervals {sorted(ivs)}")
    cols = {k: [] for k in ("sid", "t", "rank", "o", "h", "l", "c", "v", "f", "m")}
    for i, (s, d) in enumerate(frames.items()):
        k = d.klines
        n = len(k)
        cols["sid"].append(np.full(n, i, np.int32))
        cols["rank"].append(np.full(n, order_rank[s], np.int32))
        cols["t"].append(k.open_time.astype(np.int64))
        for key, arr in (
            ("o", k.open),
            ("h", k.high),
            ("l", k.low),
            ("c", k.close),
            ("v", k.volume),
            ("f", d.funding),
            ("m", d.mark_close),
        ):
            cols[key].append(np.asarray(arr, np.float64))
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((cat["rank"], cat["t"]))
    a = {k: np.ascontiguousarray(v[order]) for k, v in cat.items()}
    n = len(order)
    X = np.empty((n, len(FEATURES)), np.float64)
    status = np.empty(n, np.int8)
    fe = FeatureEngine(symbols, leader=leader, interval_ms=ivs.pop())
    fe.run_batch(a["sid"], a["t"], a["o"], a["h"], a["l"], a["c"], a["v"], a["f"], a["m"], X, status)
    if np.any(status < 0):
        i = int(np.argmax(status < 0))
        raise ValueError(
            f"batch_features: {symbols[a['sid'][i]]} bar at {a['t'][i]} rejected (status {status[i]})"
        )
    return BatchFeatures(X, a["sid"], a["t"], a["c"], a["f"], status, symbols, list(FEATURE_NAMES))


__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "SURFACES",
    "Feature",
    "FeatureEngine",
    "BatchFeatures",
    "batch_features",
    "surfaces_of",
    "feature_versions",
]
