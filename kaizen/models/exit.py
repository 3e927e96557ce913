"""The learned exit: at each bar of a position's life, is holding one more interval worth it?

Training examples are the bars of the trades the signal layer would have opened on history
(`kaizen.models.trades`: one trade per onset of the out-of-fold signal, walk-forward calibrated
edge, honest fills). At the close of bar j of a trade (bars_in_trade = j < max_hold) the row is

  - the position's state (STATE_NAMES): side, bars in trade, return since entry, MFE and MAE (all
    three in units of the per-bar vol at entry), entry regime (-1 unknown), the funding the trade
    pays if it holds through the next interval (latest settled rate, signed by side, 0 when no
    settlement falls inside it), the cost of exiting now over the bar's vol, the signal's current
    edge for the held side over the bar's vol, and the bar's vol over the entry vol;
  - the 36 market features at that close (kaizen.models.features, the live engine's numbers).

Target ("hold1", the issue's): the market part of holding one more interval instead of exiting
at the next open, g_j = V_{j+1} - V_j + funding_j, from `trades.value_matrix` (exactly: exiting
one bar later pays the same fee rate on a different price and the spread/slippage on a different
price, so the price move is scaled by (side - fee) * (1 - side * k); the funding settled inside the
interval is left out of the target because it is known in advance and charged explicitly). The
model regresses g_j / vol_j (clipped to +-target_clip, squared error).

Target ("cont", Longstaff-Schwartz, one step): the net value of holding one more interval and then
following the hold1 policy to its exit, V_tau - V_j (funding included), over vol_j. It sees past the
next bar (a one-bar target is myopic: it exits on any dip before a known later gain); its label is
known only when the trade's last possible fill is, and it is purged accordingly.

Which kind and which margin (below) serve a test window is chosen by an inner walk-forward split
of the training span (`select`), never by the test.

Policy (`LearnedExit`): at bars_in_trade j,
  hold value  h = predicted net value of holding one more interval (fraction of entry notional):
              "hold1": g_hat * vol_j - funding due in the next interval (latest rate, signed by
              side, 0 when no settlement falls inside it); "cont": its prediction * vol_j;
  cost of staying c = margin * vol_j: a risk charge per interval of volatility carried (0 = risk
              neutral; negative = the option value of holding on);
  exit when h < c. A hard stop (return since entry <= -hard_stop_vol * entry_vol *
  sqrt(horizon)) and the max-hold cap stay as risk controls, outside the model.

Purge and embargo: a row's label is known when the later exit fills (the open of bar j+2), so a
fold whose test window starts at S trains only on rows with label_end <= S - embargo, and the
margin is chosen on an inner validation span that ends there too (`train_walk_forward`).
Saved as a directory (model.json + manifest.json with a content hash, like the ensemble);
`ExitModel.load` serves it through kaizen.models.compile.load_forest (compiled C).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kaizen.engine.strategy import BarContext, Costs, ExitDecision, PositionState
from kaizen.errors import DataError
from kaizen.models.exit_rules import BaseExit
from kaizen.models.features import FEATURE_NAMES, FEATURES, feature_versions
from kaizen.models.trades import Market, Trades, bar_index, value_matrix

NAN = math.nan
MANIFEST = "manifest.json"
MODEL_FILE = "model.json"
SCHEMA = 1
KIND = "hold1"
TARGETS = {
    "hold1": "market return of holding one more interval / per-bar vol at the decision (funding charged by the policy)",
    "cont": "net return of holding one more interval then following the hold1 policy to its exit / per-bar vol",
}

STATE_NAMES = [
    "pos_side",
    "pos_bars",
    "pos_unreal_vol",
    "pos_mfe_vol",
    "pos_mae_vol",
    "pos_entry_regime",
    "pos_funding_due",
    "pos_exit_cost_vol",
    "pos_edge_vol",
    "pos_vol_ratio",
]
N_STATE = len(STATE_NAMES)
NAMES = STATE_NAMES + FEATURE_NAMES


def state_values(side, bars, last_return, mfe, mae, regime, entry_vol, vol, funding_due, edge, exit_cost):
    """The position-state part of a row, in STATE_NAMES order. Plain arithmetic so the live rule
    (floats) and the training set (arrays) compute the very same numbers; entry_vol and vol must
    be > 0 or nan."""
    return (
        side,
        bars,
        last_return / entry_vol,
        mfe / entry_vol,
        mae / entry_vol,
        regime,
        funding_due,
        exit_cost / vol,
        side * edge / vol,
        vol / entry_vol,
    )


def funding_due(side, rate, due, last_return):
    """Funding the position pays if it holds through the next interval, per unit of entry notional
    (+ = a cost): side * rate * [a settlement falls inside it] * price / entry price."""
    return side * rate * due * (1.0 + side * last_return)


# --------------------------------------------------------------------------------------- examples


@dataclass
class ExitExamples:
    """Every (trade, bars_in_trade) cell, shape (n_trades, H) unless noted."""

    X: np.ndarray  # (n, H, len(NAMES)) float32 rows as the live rule builds them
    g: np.ndarray  # market part of holding one more interval (nan at j = H)
    paid: np.ndarray  # funding actually settled inside that interval
    fund_hat: np.ndarray  # funding due the policy charges (latest rate)
    vol: np.ndarray  # the bar's per-bar vol (nan when not > 0)
    last_return: np.ndarray
    unit: np.ndarray  # (n,) entry_vol * sqrt(horizon): the hard stop's unit
    label_end: np.ndarray  # int64 ms: when the row's label is known (the later exit's fill)
    t_dec: np.ndarray  # int64 ms: the decision time (bar close)
    V: np.ndarray  # value_matrix: net return of exiting at j
    horizon_bars: int

    @property
    def H(self) -> int:
        return self.V.shape[1]


def _pos(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.nan)


def build_examples(markets: list[Market], trades: Trades, costs: Costs, horizon_bars: int) -> ExitExamples:
    n, H = len(trades), trades.max_hold
    V, P = value_matrix(markets, trades, costs)
    X = np.empty((n, H, len(NAMES)), np.float32)
    shape = (n, H)
    lr_all, vol_all, fh_all = np.empty(shape), np.empty(shape), np.empty(shape)
    label_end = np.empty(shape, np.int64)
    t_dec = np.empty(shape, np.int64)
    jj = np.arange(1, H + 1, dtype=np.float64)[None, :]
    for si, m in enumerate(markets):
        rows = np.flatnonzero(trades.sym == si)
        if len(rows) == 0:
            continue
        tr = trades.subset(trades.sym == si)
        b = bar_index(tr)
        s = tr.side.astype(np.float64)[:, None]
        pe = tr.entry_price[:, None]
        lr = s * (m.close[b] / pe - 1.0)
        mfe = np.maximum.accumulate(np.maximum(lr, 0.0), axis=1)
        mae = np.minimum.accumulate(np.minimum(lr, 0.0), axis=1)
        ev = _pos(tr.entry_vol)[:, None]
        vol = _pos(m.vol[b])
        rate = np.nan_to_num(m.funding_rate[b], nan=0.0)
        fh = funding_due(s, rate, m.funding_due()[b], lr)
        st = state_values(s, jj, lr, mfe, mae, -1.0, ev, vol, fh, m.edge[b], costs.taker_side)
        for c, v in enumerate(st):
            X[rows, :, c] = np.broadcast_to(v, (len(rows), H))
        X[rows, :, N_STATE:] = m.X[b]
        lr_all[rows], vol_all[rows], fh_all[rows] = lr, vol, fh
        nxt = np.minimum(b + 2, len(m) - 1)
        label_end[rows] = m.open_time[nxt]
        t_dec[rows] = m.close_time[b]
    g = np.full(shape, np.nan)
    paid = np.full(shape, np.nan)
    g[:, :-1] = (V[:, 1:] - V[:, :-1]) + (P[:, 1:] - P[:, :-1])
    paid[:, :-1] = P[:, 1:] - P[:, :-1]
    unit = _pos(trades.entry_vol) * math.sqrt(horizon_bars)
    return ExitExamples(X, g, paid, fh_all, vol_all, lr_all, unit, label_end, t_dec, V, horizon_bars)


# ----------------------------------------------------------------------------------------- policy


def hold_values(pred: np.ndarray, ex: ExitExamples, rows: np.ndarray, kind: str) -> np.ndarray:
    """The policy's hold value per cell from the model's predictions (vol units): "hold1" predicts
    the market part and the funding due is charged here; "cont" predicts the net value itself."""
    h = pred.astype(np.float64) * ex.vol[rows]
    return h - ex.fund_hat[rows] if kind == "hold1" else h


def policy_exit_bars(
    pred: np.ndarray,
    ex: ExitExamples,
    rows: np.ndarray,
    margin: float,
    hard_stop_vol: float,
    kind: str = KIND,
) -> np.ndarray:
    """Exit bar j (1..H) per trade in `rows` under the LearnedExit policy, from the model's
    predictions pred (len(rows), H) in vol units. Same decisions as LearnedExit.on_bar."""
    return np.argmax(_exit_cells(pred, ex, rows, margin, hard_stop_vol, kind), axis=1) + 1


def _exit_cells(pred, ex, rows, margin, hard_stop_vol, kind) -> np.ndarray:
    cond = hold_values(pred, ex, rows, kind) < margin * ex.vol[rows]
    if hard_stop_vol > 0:
        cond |= ex.last_return[rows] <= -hard_stop_vol * ex.unit[rows][:, None]
    cond[:, -1] = True
    return cond


def net_of(ex: ExitExamples, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
    return ex.V[rows, j - 1]


# --------------------------------------------------------------------------------------- training


@dataclass
class ExitParams:
    horizon_bars: int = 4
    max_hold_bars: int = 16
    folds: int = 6
    embargo_bars: int = 24
    interval_ms: int = 3_600_000
    trees: int = 200
    max_depth: int = 3
    learning_rate: float = 0.05
    min_child_weight: float = 200.0
    threads: int = 2
    seed: int = 7
    target_clip: float = 4.0
    # candidates chosen by the inner walk-forward split (ties go to the first: hold1, margin 0)
    kinds: tuple[str, ...] = ("hold1", "cont")
    margins: tuple[float, ...] = (0.0, -0.1, -0.05, 0.05, 0.1)
    hard_stop_vol: float = 3.0
    inner_frac: float = 0.3
    min_rows: int = 2000
    min_trades: int = 50

    @property
    def embargo_ms(self) -> int:
        return self.embargo_bars * self.interval_ms

    @property
    def n_candidates(self) -> int:
        return len(self.kinds) * len(self.margins)

    def xgb_params(self) -> dict[str, Any]:
        return {
            "objective": "reg:squarederror", "tree_method": "hist", "max_depth": self.max_depth,
            "eta": self.learning_rate, "subsample": 0.8, "colsample_bytree": 0.8,
            "min_child_weight": self.min_child_weight, "lambda": 5.0, "nthread": self.threads,
            "seed": self.seed,
        }  # fmt: skip


def target(ex: ExitExamples, clip: float) -> np.ndarray:
    """The "hold1" target: g / vol clipped (nan where undefined: the last bar, or no vol)."""
    with np.errstate(invalid="ignore"):
        return np.clip(ex.g / ex.vol, -clip, clip)


def label_end(ex: ExitExamples, kind: str) -> np.ndarray:
    """When each cell's label is known: the later exit's fill for "hold1"; for "cont" the label
    follows the policy to its exit, so (conservatively) the trade's last possible fill."""
    if kind == "hold1":
        return ex.label_end
    return np.broadcast_to(ex.label_end[:, -1:], ex.label_end.shape)


def train_rows(
    ex: ExitExamples, y: np.ndarray, until_ms: int, kind: str = KIND, trade_mask: np.ndarray | None = None
) -> np.ndarray:
    """Flat indices (i * H + j - 1) of rows whose label is known by until_ms."""
    ok = (label_end(ex, kind) <= until_ms) & np.isfinite(y)
    ok[:, -1] = False
    if trade_mask is not None:
        ok &= trade_mask[:, None]
    return np.flatnonzero(ok.ravel())


def fit_booster(ex: ExitExamples, y: np.ndarray, flat_rows: np.ndarray, params: ExitParams):
    import xgboost as xgb

    F = ex.X.shape[2]
    X = ex.X.reshape(-1, F)[flat_rows]
    d = xgb.DMatrix(X, label=y.ravel()[flat_rows], missing=np.nan)
    return xgb.train(params.xgb_params(), d, num_boost_round=params.trees)


def predict_booster(booster, ex: ExitExamples, rows: np.ndarray) -> np.ndarray:
    F = ex.X.shape[2]
    X = ex.X[rows].reshape(-1, F)
    return np.asarray(booster.inplace_predict(X, missing=np.nan)).reshape(len(rows), ex.H)


def continuation_target(
    ex: ExitExamples, rows: np.ndarray, pred: np.ndarray, params: ExitParams
) -> np.ndarray:
    """The "cont" target of trades `rows` (Longstaff-Schwartz): the net value of holding one more
    interval and then following the myopic policy (pred: its predictions, vol units, margin 0) to
    its exit, V[tau(j+1)] - V[j], over the bar's vol, clipped to +-2 * target_clip."""
    cond = _exit_cells(pred, ex, rows, 0.0, params.hard_stop_vol, "hold1")
    H = ex.H
    nxt = np.empty(cond.shape, np.int64)  # first exit cell at or after each cell
    nxt[:, -1] = H - 1
    for c in range(H - 2, -1, -1):
        nxt[:, c] = np.where(cond[:, c], c, nxt[:, c + 1])
    V = ex.V[rows]
    y = np.full(cond.shape, np.nan)
    tau = nxt[:, 1:]  # holding at cell c continues from cell c + 1
    y[:, :-1] = np.take_along_axis(V, tau, axis=1) - V[:, :-1]
    with np.errstate(invalid="ignore"):
        return np.clip(y / ex.vol[rows], -2 * params.target_clip, 2 * params.target_clip)


@dataclass
class Fitted:
    kind: str
    booster: Any
    rows: np.ndarray  # flat rows of the final stage
    stage_rows: np.ndarray  # flat rows of every stage (for the leakage checks)


def fit_kind(ex: ExitExamples, params: ExitParams, kind: str, until_ms: int) -> Fitted | None:
    """Fit a model of `kind` on what is known by until_ms (None when too few rows)."""
    y1 = target(ex, params.target_clip)
    rows1 = train_rows(ex, y1, until_ms, "hold1")
    if len(rows1) < params.min_rows:
        return None
    b1 = fit_booster(ex, y1, rows1, params)
    if kind == "hold1":
        return Fitted(kind, b1, rows1, rows1)
    done = np.flatnonzero(ex.label_end[:, -1] <= until_ms)  # paths complete by until
    y = np.full(ex.V.shape, np.nan)
    y[done] = continuation_target(ex, done, predict_booster(b1, ex, done), params)
    rows = train_rows(ex, y, until_ms, "cont")
    if len(rows) < params.min_rows:
        return None
    return Fitted(kind, fit_booster(ex, y, rows, params), rows, np.union1d(rows, rows1))


@dataclass
class Selection:
    margin: float
    kind: str = KIND
    scores: dict[str, float] = field(default_factory=dict)  # "kind margin" -> validation net per trade (bp)
    n_train: int = 0
    n_val: int = 0
    note: str = ""
    # what the choice was made on (flat example rows fitted, trades scored), for the leakage tests
    inner_rows: np.ndarray | None = None
    val_trades: np.ndarray | None = None


def select(ex: ExitExamples, trades: Trades, params: ExitParams, until_ms: int) -> Selection:
    """Choose the kind and margin on an inner walk-forward split of what is known by until_ms: fit
    on rows known by v_start - embargo, score each candidate by net return per trade on the trades
    entered in [v_start, until) that finished by until_ms. Too little data: hold1, margin 0."""
    y1 = target(ex, params.target_clip)
    usable = train_rows(ex, y1, until_ms)
    default = params.kinds[0]
    if len(usable) < params.min_rows:
        return Selection(0.0, default, note=f"too few rows ({len(usable)}) to choose; {default}, margin 0")
    t0 = int(ex.t_dec.ravel()[usable].min())
    iv = params.interval_ms
    v_start = until_ms - int(params.inner_frac * (until_ms - t0))
    v_start -= v_start % iv
    val = np.flatnonzero((trades.t_entry >= v_start) & (ex.label_end[:, -1] <= until_ms))
    fits = {k: fit_kind(ex, params, k, v_start - params.embargo_ms) for k in params.kinds}
    if len(val) < params.min_trades or any(f is None for f in fits.values()):
        return Selection(
            0.0, default, n_val=len(val), note=f"too little inner data to choose; {default}, margin 0"
        )
    scores: dict[str, float] = {}
    best, best_score = (default, 0.0), -math.inf
    for k, f in fits.items():
        pred = predict_booster(f.booster, ex, val)
        for mg in params.margins:
            j = policy_exit_bars(pred, ex, val, mg, params.hard_stop_vol, k)
            sc = float(net_of(ex, val, j).mean() * 1e4)
            scores[f"{k} {mg:g}"] = sc
            if sc > best_score:  # strictly better: the first of equals wins
                best, best_score = (k, mg), sc
    inner = np.unique(np.concatenate([f.stage_rows for f in fits.values()]))
    return Selection(best[1], best[0], scores, len(inner), len(val), inner_rows=inner, val_trades=val)


@dataclass
class FoldResult:
    k: int
    test_start: int
    test_end: int
    train_rows: np.ndarray  # flat example indices the fold's model(s) were fitted on (every stage)
    test_trades: np.ndarray  # trade indices tested
    selection: Selection
    booster: Any
    final_rows: np.ndarray | None = None  # the final stage's rows (labels per label_end(ex, kind))


def exit_folds(start_ms: int, end_ms: int, n_folds: int, interval_ms: int) -> list[tuple[int, int, int]]:
    """n_folds equal test windows over [start, end) on the bar grid: (k, test_start, test_end)."""
    if n_folds < 1 or end_ms <= start_ms:
        raise ValueError("exit_folds: need n_folds >= 1 and end > start")
    edges = [start_ms + (end_ms - start_ms) * i // n_folds for i in range(n_folds + 1)]
    edges = [e - (e - start_ms) % interval_ms for e in edges[:-1]] + [end_ms]
    return [(k + 1, edges[k], edges[k + 1]) for k in range(n_folds)]


def train_walk_forward(
    ex: ExitExamples,
    trades: Trades,
    params: ExitParams,
    start_ms: int,
    end_ms: int,
    progress: Callable[[str], None] | None = None,
) -> list[FoldResult]:
    """One model per test window of [start, end): trained on rows with label_end <= test_start -
    embargo, its margin chosen on an inner split of that same span."""
    tick = progress or (lambda note: None)
    out = []
    for k, s, e in exit_folds(start_ms, end_ms, params.folds, params.interval_ms):
        until = s - params.embargo_ms
        sel, fit = fit_selected(ex, trades, params, until)
        if fit is None:
            n = len(train_rows(ex, target(ex, params.target_clip), until))
            raise DataError(
                f"exit fold {k}: only {n} training rows before {_date(s)} (need {params.min_rows}); "
                "start the evaluation later or use more history"
            )
        test = np.flatnonzero((trades.t_entry >= s) & (trades.t_entry < e))
        out.append(FoldResult(k, s, e, fit.stage_rows, test, sel, fit.booster, fit.rows))
        tick(f"exit fold {k}")
    return out


def fit_selected(
    ex: ExitExamples, trades: Trades, params: ExitParams, until_ms: int
) -> tuple[Selection, Fitted | None]:
    """Choose (kind, margin) on the inner split, then fit that kind on everything known by until_ms."""
    sel = select(ex, trades, params, until_ms)
    return sel, fit_kind(ex, params, sel.kind, until_ms)


def _date(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


# ------------------------------------------------------------------------------------ save / load


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


def manifest_for(
    params: ExitParams, selection: Selection, costs: Costs, info: dict[str, Any]
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": selection.kind,
        "target": TARGETS[selection.kind],
        "names": list(NAMES),
        "state_names": list(STATE_NAMES),
        "features": list(FEATURE_NAMES),
        "feature_versions": feature_versions(),
        "margin": selection.margin,
        "selection": {"scores_bp": selection.scores, "n_train": selection.n_train, "n_val": selection.n_val,
                      "note": selection.note},
        "hard_stop_vol": params.hard_stop_vol,
        "max_hold_bars": params.max_hold_bars,
        "horizon_bars": params.horizon_bars,
        "interval_ms": params.interval_ms,
        "costs": {"taker_fee": costs.taker_fee, "half_spread": costs.half_spread, "slippage": costs.slippage},
        "params": {"xgb": params.xgb_params(), "rounds": params.trees, "target_clip": params.target_clip,
                   "kinds": list(params.kinds), "margins": list(params.margins),
                   "embargo_bars": params.embargo_bars},
        **info,
    }  # fmt: skip


def _hash(model_bytes: bytes, body: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(b"exit\0" + model_bytes)
    h.update(json.dumps(body, sort_keys=True).encode())
    return h.hexdigest()


def save(booster, out: Path, manifest: dict[str, Any]) -> str:
    """Write model.json and manifest.json (with the content hash); return the hash."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / MODEL_FILE))
    data = (out / MODEL_FILE).read_bytes()
    body = json.loads(json.dumps({**manifest, "file": MODEL_FILE}, default=_json_default))
    body["content_hash"] = _hash(data, body)
    (out / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True, default=_json_default))
    return body["content_hash"]


class ExitModel:
    """A loaded exit model: its manifest and a Forest (compiled C by default)."""

    def __init__(self, manifest: dict[str, Any], forest: Any, path: Path | None = None) -> None:
        self.manifest = manifest
        self.forest = forest
        self.path = path
        self.version: str = manifest["content_hash"][:16]
        self.names: list[str] = manifest["names"]
        self.margin = float(manifest["margin"])
        self.hard_stop_vol = float(manifest["hard_stop_vol"])
        self.max_hold_bars = int(manifest["max_hold_bars"])
        self.horizon_bars = int(manifest["horizon_bars"])
        self.kind: str = manifest.get("kind", "")
        if self.kind not in TARGETS:
            raise DataError(f"{path}: exit model kind {self.kind!r} unknown (expected {', '.join(TARGETS)})")
        if self.names != NAMES:
            raise DataError(f"{path}: exit model inputs differ from this build's (state + market features)")
        versions = {f.name: f.version for f in FEATURES}
        for n, v in manifest["feature_versions"].items():
            if versions.get(n) != v:
                raise DataError(
                    f"{path}: feature {n} was version {v} at training, this build has {versions.get(n)}"
                )

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", cache_dir: str | Path | None = None) -> ExitModel:
        from kaizen.models.compile import load_forest

        path = Path(path)
        mp = path / MANIFEST
        try:
            manifest = json.loads(mp.read_text())
        except FileNotFoundError:
            raise DataError(f"{mp}: exit model manifest not found") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{mp}: not valid JSON: {exc}") from None
        try:
            data = (path / manifest.get("file", MODEL_FILE)).read_bytes()
        except OSError as exc:
            raise DataError(f"{path / MODEL_FILE}: cannot read exit model: {exc.strerror}") from None
        body = {k: v for k, v in manifest.items() if k != "content_hash"}
        if _hash(data, body) != manifest.get("content_hash"):
            raise DataError(f"{path}: content hash mismatch (exit model or manifest changed after training)")
        return cls(manifest, load_forest(data, backend=backend, cache_dir=cache_dir), path)

    @classmethod
    def from_booster(
        cls, booster, manifest: dict[str, Any], backend: str = "auto", cache_dir: str | Path | None = None
    ) -> ExitModel:
        """An in-memory model (a walk-forward fold's), served through the same Forest path."""
        from kaizen.models.compile import load_forest

        raw = bytes(booster.save_raw("json"))
        body = json.loads(json.dumps({**manifest, "file": MODEL_FILE}, default=_json_default))
        body["content_hash"] = _hash(raw, body)
        return cls(body, load_forest(raw, backend=backend, cache_dir=cache_dir))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions in vol units for rows (n, len(NAMES)) float32."""
        return np.asarray(self.forest.predict(np.ascontiguousarray(X, np.float32)), np.float64).ravel()


class LearnedExit(BaseExit):
    """Exit when the predicted net value of holding one more interval is below the cost of
    staying (module doc); the hard stop and max hold are risk controls outside the model."""

    name = "learned"

    def __init__(
        self,
        model: ExitModel,
        hard_stop_vol: float | None = None,
        max_hold_bars: int | None = None,
        margin: float | None = None,
    ) -> None:
        super().__init__(model.horizon_bars, max_hold_bars or model.max_hold_bars)
        self.model = model
        self.hard_stop_vol = model.hard_stop_vol if hard_stop_vol is None else float(hard_stop_vol)
        self.margin = model.margin if margin is None else float(margin)
        self.names = model.names
        self._charge_funding = model.kind == "hold1"  # "cont" predicts the net value itself
        self._row = np.full(len(NAMES), np.nan, np.float32)
        self._predict = model.forest.predict_row

    def on_bar(self, ctx: BarContext) -> ExitDecision:
        pos = ctx.position
        if pos.bars_in_trade >= self.max_hold_bars:
            return ExitDecision(exit=True, reason="max_hold", model=self.model.version)
        if self.hard_stop_vol > 0 and pos.last_return <= -self.hard_stop_vol * self.unit(pos):
            return ExitDecision(exit=True, reason="hard_stop", model=self.model.version)
        return self.decide(ctx, pos)

    def decide(self, ctx: BarContext, pos: PositionState) -> ExitDecision:
        row = self._row
        fh = fill_row(row, ctx, pos)
        vol = ctx.vol if ctx.vol > 0 else NAN
        hold = float(self._predict(row)) * vol
        if self._charge_funding:
            hold -= fh
        cost = self.margin * vol
        out = hold < cost
        return ExitDecision(
            exit=out,
            hold_value=hold,
            cost=cost,
            reason="model" if out else "hold",
            model=self.model.version,
            names=self.names,
            values=row,
        )


def fill_row(row: np.ndarray, ctx: BarContext, pos: PositionState) -> float:
    """Write the model's input row for this bar (state + market features) into `row` (float32);
    return the funding due if the position holds one more interval (float64)."""
    vol = ctx.vol if ctx.vol > 0 else NAN
    ev = pos.entry_vol if pos.entry_vol > 0 else NAN
    rate = ctx.funding_rate if ctx.funding_rate == ctx.funding_rate else 0.0
    ts_ms = ctx.ts_ns // 1_000_000
    nf = ctx.next_funding_ms
    due = 1.0 if ts_ms < nf <= ts_ms + ctx.interval_ms else 0.0
    side = float(pos.side)
    lr = pos.last_return
    fh = funding_due(side, rate, due, lr)
    st = state_values(
        side, float(pos.bars_in_trade), lr, pos.mfe, pos.mae, float(pos.entry_regime), ev, vol, fh,
        ctx.signal_edge, ctx.costs.taker_side,
    )  # fmt: skip
    row[:N_STATE] = st
    row[N_STATE:] = ctx.features
    return fh
