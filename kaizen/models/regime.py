"""Market regimes: labels from realized statistics, an XGBoost detector on backward-looking features
run through the compiled predictor, and hysteresis so the detected regime does not flap.

Classes (4, the synthetic market's planted states): trend_low, trend_high, range_low, range_high
(kaizen.ext.marketmodel.REGIMES). Risk-on/off is labelled too (`risk_labels`) but is not a detector
class: it is one market-wide state shared by all symbols, so crossing it with the four would split
~1 year of four-symbol data into 8 classes with a few episodes each, and on the synthetic market
(where every check can be run against the truth) it is not planted. The specialists the bandit
picks between are keyed on trend/range and volatility.

Labels on real data (`realized_labels`), per symbol, from a window centred on the bar (W = 72 h):
  trend if |ln(c[t+W/2] / c[t-W/2])| / (sigma sqrt(bars)) >= 1.5 (drift over volatility), else range;
  high vol if the centred window's volatility exceeds 1.25x the median of the symbol's own trailing
  (backward) 90 days of 24-bar volatility, else low.
On the synthetic market the truth (DIR/truth/regimes.csv) is the label.

Detector inputs (`DETECTOR_FEATURES`): the engine's features (every non-live-only one, so the
detector sees what the engine sees) plus 23 regime features (kaizen.ext.regime.DERIVED: volatility
and bar range above the symbol's own calm level (a trailing floor), drift over volatility, efficiency ratios,
close-to-close against range volatility, the leader's drift) computed bar by bar from the engine
vector by `RegimeFeatures` - one code path live (`RegimeDetector.on_bar`) and in batch
(`detector_matrix`, `RegimeDetector.run`). All backward-looking.

Saved like the ensemble: OUT/detector.json (XGBoost JSON, multi:softprob) + OUT/manifest.json with
the feature names and versions, the classes, the hysteresis, training info and a content hash;
`RegimeModel.load(dir)` verifies the hash and loads the forest through
kaizen.models.compile.load_forest (generated C, or its interpreter).
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

from kaizen.errors import DataError
from kaizen.ext.marketmodel import REGIMES
from kaizen.ext.regime import DERIVED, Hysteresis, RegimeFeatures
from kaizen.models.features import (
    CONTEXT_VERSION,
    FEATURE_NAMES,
    FEATURES,
    BatchFeatures,
    context_matrix,
    context_state,
    feature_versions,
)

K = len(REGIMES)
ENGINE_INPUTS: list[str] = [f.name for f in FEATURES if not f.live_only]
DETECTOR_FEATURES: list[str] = ENGINE_INPUTS + list(DERIVED)
DERIVED_VERSION = CONTEXT_VERSION  # one version for kaizen.ext.regime's definitions
MANIFEST = "manifest.json"
MODEL_FILE = "detector.json"
SCHEMA = 1
DAY_MS = 86_400_000

# realized labels (real data)
LABEL_WINDOW_H = 72.0
TREND_Z = 1.5
HIGH_VOL_RATIO = 1.25
VOL_HISTORY_H = 90 * 24.0


@dataclass
class DetectorParams:
    trees: int = 150
    max_depth: int = 4
    learning_rate: float = 0.1
    min_child_weight: float = 20.0
    reg_lambda: float = 5.0
    threads: int = 2
    seed: int = 7
    # hysteresis: the lead in probability a new regime needs on `confirm` consecutive bars; chosen
    # on tuning seeds 0-4 (the best accuracy with at most ~2x the planted switches per day)
    margin: float = 0.5
    confirm: int = 1

    def xgb_params(self) -> dict[str, Any]:
        return {
            "objective": "multi:softprob", "num_class": K, "eval_metric": "mlogloss", "tree_method": "hist",
            "max_depth": self.max_depth, "eta": self.learning_rate, "subsample": 0.8, "colsample_bytree": 0.8,
            "min_child_weight": self.min_child_weight, "lambda": self.reg_lambda, "nthread": self.threads,
            "seed": self.seed,
        }  # fmt: skip


def _new_state(interval_ms: int) -> RegimeFeatures:
    return context_state(interval_ms)


_ENGINE_COLS = np.array([FEATURE_NAMES.index(n) for n in ENGINE_INPUTS])


def detector_matrix(bf: BatchFeatures, interval_ms: int) -> np.ndarray:
    """DETECTOR_FEATURES for every row of `bf` (rows in bf's order), each symbol's regime features
    computed over its rows in time order by the same RegimeFeatures the live detector runs."""
    out = np.empty((len(bf.sid), len(DETECTOR_FEATURES)), np.float64)
    out[:, : len(ENGINE_INPUTS)] = bf.X[:, _ENGINE_COLS]
    out[:, len(ENGINE_INPUTS) :] = context_matrix(bf, interval_ms)
    return out


# ------------------------------------------------------------------------------------------- labels


def _rolling_std(x: np.ndarray, w: int) -> np.ndarray:
    """Population std over windows ending at each index (nan until full or if any nan inside)."""
    out = np.full(len(x), np.nan)
    if len(x) < w:
        return out
    from numpy.lib.stride_tricks import sliding_window_view

    out[w - 1 :] = sliding_window_view(x, w).std(axis=1)
    return out


def realized_labels(close: np.ndarray, interval_ms: int) -> np.ndarray:
    """One symbol's realized regime per bar (time order, no gaps assumed inside windows; -1 where a
    window is incomplete). See the module doc for the definitions."""
    n = len(close)
    bars_h = interval_ms / 3_600_000.0
    half = max(2, int(round(LABEL_WINDOW_H / 2 / bars_h)))
    w = 2 * half
    y = np.full(n, -1, np.int8)
    if n <= w + 1:
        return y
    lc = np.log(close)
    r = np.diff(lc, prepend=np.nan)
    # the window of bar t: returns r[t-half+1 .. t+half], move lc[t+half] - lc[t-half]
    rs = _rolling_std(r[1:], w)  # rs[e]: std of r[e-w+2 .. e+1]
    tt = np.arange(half, n - half)
    sd_c = np.full(n, np.nan)
    sd_c[tt] = rs[tt + half - 1]
    move = np.full(n, np.nan)
    move[tt] = lc[tt + half] - lc[tt - half]
    z = np.abs(move) / (sd_c * math.sqrt(w))
    # trailing (backward) history of 24-bar volatility: its median over the last 90 days
    w24 = max(2, int(round(24 / bars_h)))
    rv24 = _rolling_std(np.nan_to_num(r, nan=0.0), w24)
    hist = max(w24, int(round(VOL_HISTORY_H / bars_h)))
    ref = np.full(n, np.nan)
    if n > hist:
        from numpy.lib.stride_tricks import sliding_window_view

        ref[hist - 1 :] = np.nanmedian(sliding_window_view(rv24, hist), axis=1)
    ok = np.isfinite(z) & np.isfinite(ref) & (ref > 0) & np.isfinite(sd_c)
    high = sd_c > HIGH_VOL_RATIO * ref
    trend = z >= TREND_Z
    y[ok] = (high[ok].astype(np.int8) + 2 * (~trend[ok]).astype(np.int8)).astype(np.int8)
    return y


def risk_labels(closes: dict[str, np.ndarray], leader: str, interval_ms: int) -> np.ndarray:
    """Market-wide risk-on (1) / risk-off (0) per bar of aligned closes (-1 where undefined):
    risk-off when the leader's centred 72 h move is down and the symbols' average pairwise
    correlation over the window is above its median (a correlated sell-off), else risk-on."""
    syms = list(closes)
    n = min(len(c) for c in closes.values())
    bars_h = interval_ms / 3_600_000.0
    half = max(2, int(round(LABEL_WINDOW_H / 2 / bars_h)))
    out = np.full(n, -1, np.int8)
    if n <= 2 * half + 1 or len(syms) < 2:
        return out
    R = np.array([np.diff(np.log(closes[s][:n]), prepend=np.nan) for s in syms])
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(R[:, 1:], 2 * half, axis=1)  # (syms, n - 2 half, 2 half)
    corr = np.full(n, np.nan)
    vals = []
    for a in range(len(syms)):
        for b in range(a + 1, len(syms)):
            xa = win[a] - win[a].mean(axis=1, keepdims=True)
            xb = win[b] - win[b].mean(axis=1, keepdims=True)
            den = np.sqrt((xa * xa).sum(1) * (xb * xb).sum(1))
            vals.append(np.where(den > 0, (xa * xb).sum(1) / np.where(den > 0, den, 1), np.nan))
    corr[half + 1 : half + 1 + win.shape[1]] = np.nanmean(np.array(vals), axis=0)
    lc = np.log(closes[leader][:n])
    move = np.full(n, np.nan)
    move[half : n - half] = lc[2 * half :] - lc[: n - 2 * half]
    ok = np.isfinite(move) & np.isfinite(corr)
    med = np.nanmedian(corr[ok]) if ok.any() else np.nan
    off = (move < 0) & (corr > med)
    out[ok] = np.where(off[ok], 0, 1)
    return out


# ------------------------------------------------------------------------------------ the model


def fit(X: np.ndarray, y: np.ndarray, params: DetectorParams):
    import xgboost as xgb

    if len(y) < 200:
        raise DataError(f"too few labelled rows to train the regime detector ({len(y)})")
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(
            f"regime detector: the training labels hold one class only ({REGIMES[int(present[0])]})"
        )
    d = xgb.DMatrix(X, label=y.astype(np.float32), missing=np.nan)
    return xgb.train(params.xgb_params(), d, num_boost_round=params.trees)


@dataclass
class RegimeModel:
    """A trained detector: the forest (kaizen Forest or xgboost Booster) and its manifest."""

    forest: Any
    manifest: dict[str, Any]
    path: Path | None = None
    backend: str = "auto"
    booster: Any = None  # the xgboost.Booster of a freshly trained model (what save() writes)
    version: str = field(init=False)

    def __post_init__(self) -> None:
        self.version = str(self.manifest.get("content_hash", ""))[:16]

    @property
    def interval_ms(self) -> int:
        return int(self.manifest["interval_ms"])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (rows x 4) for rows of DETECTOR_FEATURES."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if hasattr(self.forest, "inplace_predict"):
            p = self.forest.inplace_predict(X, missing=np.nan)
        else:
            p = self.forest.predict(X)
        return np.asarray(p, dtype=np.float64).reshape(len(X), K)

    def hysteresis(self) -> Hysteresis:
        h = self.manifest["hysteresis"]
        return Hysteresis(K, float(h["margin"]), int(h["confirm"]))

    def detector(self) -> RegimeDetector:
        """A fresh per-symbol detector sharing this forest."""
        return RegimeDetector(self)

    @classmethod
    def from_booster(
        cls, booster: Any, interval_ms: int, params: DetectorParams, info: dict[str, Any] | None = None,
        backend: str = "auto", cache_dir: str | Path | None = None,
    ) -> RegimeModel:  # fmt: skip
        """Wrap a freshly trained booster (compiled through load_forest unless backend='xgboost')."""
        manifest = _manifest(interval_ms, params, info or {})
        forest = booster
        if backend != "xgboost":
            from kaizen.models.compile import load_forest

            forest = load_forest(booster, backend=backend, cache_dir=cache_dir)
        return cls(forest, manifest, None, backend, booster)

    def save(self, out: str | Path) -> str:
        """Write OUT/detector.json + OUT/manifest.json; return the content hash."""
        booster = self.booster
        if booster is None:
            raise DataError("RegimeModel.save: only a freshly trained model can be saved")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(out / MODEL_FILE))
        data = (out / MODEL_FILE).read_bytes()
        manifest = json.loads(json.dumps({k: v for k, v in self.manifest.items() if k != "content_hash"}))
        h = hashlib.sha256(b"detector\0" + data)
        h.update(json.dumps(manifest, sort_keys=True).encode())
        manifest["content_hash"] = h.hexdigest()
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        self.manifest = manifest
        self.version = manifest["content_hash"][:16]
        self.path = out
        return manifest["content_hash"]

    @classmethod
    def load(
        cls, path: str | Path, backend: str = "auto", cache_dir: str | Path | None = None
    ) -> RegimeModel:
        """Load and verify a saved detector; features must match this build (names and versions)."""
        path = Path(path)
        mp = path / MANIFEST
        try:
            manifest = json.loads(mp.read_text())
        except FileNotFoundError:
            raise DataError(f"{mp}: regime detector manifest not found") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{mp}: not valid JSON: {exc}") from None
        try:
            data = (path / MODEL_FILE).read_bytes()
        except OSError as exc:
            raise DataError(f"{path / MODEL_FILE}: cannot read model: {exc.strerror}") from None
        h = hashlib.sha256(b"detector\0" + data)
        body = {k: v for k, v in manifest.items() if k != "content_hash"}
        h.update(json.dumps(body, sort_keys=True).encode())
        if h.hexdigest() != manifest.get("content_hash"):
            raise DataError(f"{path}: content hash mismatch (detector or manifest changed after training)")
        if manifest.get("features") != DETECTOR_FEATURES:
            raise DataError(f"{path}: detector features differ from this build's DETECTOR_FEATURES")
        versions = feature_versions()
        for n, v in manifest.get("feature_versions", {}).items():
            if versions.get(n) != v:
                raise DataError(
                    f"{path}: feature {n} was version {v} at training, this build has {versions.get(n)}"
                )
        if manifest.get("derived_version") != DERIVED_VERSION:
            raise DataError(
                f"{path}: regime features version {manifest.get('derived_version')}, this build has {DERIVED_VERSION}"
            )
        if manifest.get("classes") != list(REGIMES):
            raise DataError(f"{path}: detector classes {manifest.get('classes')} differ from {list(REGIMES)}")
        if backend == "xgboost":
            import xgboost as xgb

            forest = xgb.Booster()
            forest.load_model(bytearray(data))
            forest.set_param({"nthread": 1})
        else:
            from kaizen.models.compile import load_forest

            forest = load_forest(data, backend=backend, cache_dir=cache_dir)
        return cls(forest, manifest, path, backend)


def _manifest(interval_ms: int, params: DetectorParams, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": "regime_detector",
        "classes": list(REGIMES),
        "features": list(DETECTOR_FEATURES),
        "feature_versions": {n: feature_versions()[n] for n in ENGINE_INPUTS},
        "derived_version": DERIVED_VERSION,
        "interval_ms": int(interval_ms),
        "hysteresis": {"margin": params.margin, "confirm": params.confirm},
        "params": params.xgb_params(),
        "rounds": params.trees,
        **info,
    }


class RegimeDetector:
    """One symbol's detector: `on_bar(engine_vector) -> (regime_id, probs)` at each bar close.

    Keeps the symbol's regime-feature state and its hysteresis; `probs` are the forest's class
    probabilities (REGIMES order), `regime_id` the regime after hysteresis. `run(rows)` is the
    batch path over one symbol's engine vectors in time order, through the same state objects.
    """

    def __init__(self, model: RegimeModel) -> None:
        self.model = model
        self.features = _new_state(model.interval_ms)
        self.hyst = model.hysteresis()
        self._row = np.empty((1, len(DETECTOR_FEATURES)), np.float32)
        self.regime = -1

    def reset(self) -> None:
        self.features.reset()
        self.hyst.reset()
        self.regime = -1

    def on_bar(self, features_vector: np.ndarray) -> tuple[int, np.ndarray]:
        vec = np.ascontiguousarray(features_vector, dtype=np.float64)
        if vec.shape != (len(FEATURE_NAMES),):
            raise ValueError(
                f"on_bar: expected the engine's {len(FEATURE_NAMES)}-feature vector, got {vec.shape}"
            )
        derived = self.features.update(vec)
        row = self._row
        row[0, : len(ENGINE_INPUTS)] = vec[_ENGINE_COLS]
        row[0, len(ENGINE_INPUTS) :] = derived
        probs = self.model.predict_proba(row)[0]
        self.regime = int(self.hyst.step(probs))
        return self.regime, probs

    def run(self, engine_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batch: (regime ids, probs) for one symbol's engine vectors in time order."""
        E = np.ascontiguousarray(engine_rows, dtype=np.float64)
        X = np.empty((len(E), len(DETECTOR_FEATURES)), np.float64)
        X[:, : len(ENGINE_INPUTS)] = E[:, _ENGINE_COLS]
        X[:, len(ENGINE_INPUTS) :] = self.features.run_batch(E)
        P = self.model.predict_proba(X)
        ids = self.hyst.run(P)
        self.regime = int(ids[-1]) if len(ids) else self.regime
        return ids, P


# ---------------------------------------------------------------------------------- evaluation


def confusion(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    m = np.zeros((K, K), np.int64)
    np.add.at(m, (y.astype(np.intp), yhat.astype(np.intp)), 1)
    return m


def switches_per_day(ids_by_symbol: list[np.ndarray], interval_ms: int) -> float:
    sw = sum(int((np.diff(a) != 0).sum()) for a in ids_by_symbol)
    days = sum(len(a) for a in ids_by_symbol) * interval_ms / DAY_MS
    return sw / days if days > 0 else float("nan")


def scores(y: np.ndarray, yhat: np.ndarray) -> dict[str, Any]:
    cm = confusion(y, yhat)
    support = cm.sum(axis=1)
    recall = {REGIMES[k]: (float(cm[k, k] / support[k]) if support[k] else None) for k in range(K)}
    return {
        "accuracy": float((y == yhat).mean()) if len(y) else float("nan"),
        "vol_accuracy": float(((y & 1) == (yhat & 1)).mean()) if len(y) else float("nan"),
        "trend_accuracy": float(((y >> 1) == (yhat >> 1)).mean()) if len(y) else float("nan"),
        "recall": recall,
        "support": {REGIMES[k]: int(support[k]) for k in range(K)},
        "confusion": cm.tolist(),
    }


def labelled_matrix(
    ds: Any, truth: dict[str, tuple[np.ndarray, np.ndarray]] | None, leader: str = "BTCUSDT",
    tick: Callable[[str], None] | None = None,
) -> tuple[BatchFeatures, np.ndarray, np.ndarray, int]:  # fmt: skip
    """Engine features, detector matrix and labels (truth where given, else realized; -1 where
    none) for every bar of `ds`."""
    from kaizen.market.data import interval_ms as iv_ms
    from kaizen.models.features import batch_features

    tick = tick or (lambda note: None)
    iv = iv_ms(ds.interval)
    bf = batch_features(ds, leader=leader)
    tick("features")
    X = detector_matrix(bf, iv)
    tick("regime features")
    y = np.full(len(bf.sid), -1, np.int8)
    for i, s in enumerate(bf.symbols):
        rows = np.flatnonzero(bf.sid == i)
        if truth is not None:
            if s not in truth:
                raise DataError(f"truth/regimes.csv has no rows for {s}")
            tt, tr = truth[s]
            pos = np.searchsorted(tt, bf.open_time[rows])
            hit = (pos < len(tt)) & (tt[np.minimum(pos, len(tt) - 1)] == bf.open_time[rows])
            y[rows[hit]] = tr[pos[hit]]
        else:
            y[rows] = realized_labels(bf.close[rows], iv)
    return bf, X, y, iv


def train_on(
    ds: Any, truth: dict[str, tuple[np.ndarray, np.ndarray]] | None, leader: str = "BTCUSDT",
    params: DetectorParams | None = None, backend: str = "auto", progress: Callable[[str], None] | None = None,
) -> tuple[RegimeModel, int]:  # fmt: skip
    """Fit the detector on every labelled bar of `ds` after the regime features' warm-up."""
    tick = progress or (lambda note: None)
    params = params or DetectorParams()
    bf, X, y, iv = labelled_matrix(ds, truth, leader, tick)
    t = bf.open_time
    span_days = (int(t.max()) + iv - int(t.min())) / DAY_MS
    warm = int(t.min()) + int(min(14.0, 0.1 * span_days) * DAY_MS)
    rows = (t >= warm) & (y >= 0)
    booster = fit(X[rows], y[rows], params)
    tick("fit")
    info = {
        "labels": "truth" if truth is not None else "realized",
        "train": {"start_ms": int(t.min()), "end_ms": int(t.max()) + iv, "rows": int(rows.sum()),
                  "symbols": list(bf.symbols)},
        "leader": leader,
    }  # fmt: skip
    model = RegimeModel.from_booster(booster, iv, params, info, backend=backend)
    tick("compile")
    return model, int(rows.sum())


def walk_forward_probs(
    X: np.ndarray, y: np.ndarray, t: np.ndarray, folds: list[Any], interval_ms: int,
    params: DetectorParams | None = None, backend: str = "auto", progress: Callable[[str], None] | None = None,
) -> np.ndarray:  # fmt: skip
    """Out-of-sample class probabilities for the test rows of each fold (nan elsewhere): the
    detector for fold k is trained only on rows before its test block, minus the span its labels
    look ahead (realized labels are centred) plus one bar. X rows of DETECTOR_FEATURES, y labels
    (-1: none), t open times; `folds` with .k, .test_start and .test (kaizen.models.folds.Fold)."""
    tick = progress or (lambda note: None)
    params = params or DetectorParams()
    P = np.full((len(y), K), np.nan)
    purge = int(LABEL_WINDOW_H / 2 * 3_600_000) + interval_ms
    warm = int(t.min()) + int(14 * DAY_MS)
    for f in folds:
        rows = (t >= warm) & (t < f.test_start - purge) & (y >= 0)
        if rows.sum() < 200 or len(np.unique(y[rows])) < 2:
            tick(f"regime fold {f.k} skipped")
            continue
        booster = fit(X[rows], y[rows], params)
        model = RegimeModel.from_booster(booster, interval_ms, params, backend=backend)
        P[f.test] = model.predict_proba(X[f.test])
        tick(f"regime fold {f.k}")
    return P


@dataclass
class EvalResult:
    report: dict[str, Any]
    model: RegimeModel


def evaluate(
    ds: Any,
    truth: dict[str, tuple[np.ndarray, np.ndarray]] | None,
    train_days: float | None = None,
    params: DetectorParams | None = None,
    leader: str = "BTCUSDT",
    backend: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """Train on the first `train_days` of `ds`, score out of sample on the rest.

    Labels: the truth where given (synthetic markets), else `realized_labels` (training rows whose
    centred label window reaches past the cut are purged). Scores the detector after hysteresis
    (and the raw argmax) against the labels: accuracy, per-class recall, confusion matrix
    (rows = label, columns = detected), switches per day detected vs labelled.
    """
    tick = progress or (lambda note: None)
    params = params or DetectorParams()
    bf, X, y, iv = labelled_matrix(ds, truth, leader, tick)
    source = "truth" if truth is not None else "realized"
    t = bf.open_time
    t0, t1 = int(t.min()), int(t.max()) + iv
    span_days = (t1 - t0) / DAY_MS
    if train_days is None:
        train_days = math.floor(0.65 * span_days)
    if not 0 < train_days < span_days:
        raise DataError(f"--train-days must be inside (0, {span_days:.0f}) for this data, got {train_days}")
    cut = t0 + int(train_days * DAY_MS)
    warm = t0 + int(min(14.0, 0.1 * span_days) * DAY_MS)  # regime features warm up
    purge = 0 if truth is not None else int(LABEL_WINDOW_H / 2 * 3_600_000) + iv
    train = (t >= warm) & (t < cut - purge) & (y >= 0)
    test = (t >= cut) & (y >= 0)
    if test.sum() < 50:
        raise DataError(f"too few labelled rows after the cut ({int(test.sum())}) to score the detector")
    booster = fit(X[train], y[train], params)
    tick("fit")
    info = {
        "labels": source,
        "train": {"start_ms": t0, "end_ms": cut, "rows": int(train.sum()), "symbols": list(bf.symbols)},
        "leader": leader,
    }
    model = RegimeModel.from_booster(booster, iv, params, info, backend=backend)
    tick("compile")
    # score: each symbol's detector runs from the cut forward (state warmed on the training part)
    y_true, y_hyst, y_raw, ids_by_sym, lab_by_sym, probs_all = [], [], [], [], [], []
    for i in range(len(bf.symbols)):
        rows = np.flatnonzero(bf.sid == i)
        P = model.predict_proba(X[rows])
        tm = t[rows] >= cut
        hy = model.hysteresis()
        ids = hy.run(np.ascontiguousarray(P[tm]))
        keep = y[rows][tm] >= 0
        y_true.append(y[rows][tm][keep])
        y_hyst.append(ids[keep])
        y_raw.append(P[tm].argmax(axis=1)[keep])
        ids_by_sym.append(ids)
        lab_by_sym.append(y[rows][tm][keep])
        probs_all.append(P[tm][keep])
    yt, yh, yr = (np.concatenate(a).astype(np.int64) for a in (y_true, y_hyst, y_raw))
    Pt = np.concatenate(probs_all)
    mlogloss = float(-np.mean(np.log(np.clip(Pt[np.arange(len(yt)), yt], 1e-15, 1.0))))
    rep = {
        "labels": source,
        "classes": list(REGIMES),
        "interval": ds.interval,
        "symbols": list(bf.symbols),
        "train_days": train_days,
        "test_days": round((t1 - cut) / DAY_MS, 3),
        "train_rows": int(train.sum()),
        "test_rows": int(len(yt)),
        "hysteresis": {"margin": params.margin, "confirm": params.confirm},
        **scores(yt, yh),
        "raw_accuracy": float((yt == yr).mean()),
        "mlogloss": mlogloss,
        "switches_per_day": switches_per_day(ids_by_sym, iv),
        "switches_per_day_raw": switches_per_day([a for a in y_raw], iv),
        "label_switches_per_day": switches_per_day(lab_by_sym, iv),
        "detector_version": model.version,
    }
    if truth is not None:
        # how well the real-data label definition recovers the planted regimes (same test rows)
        agree = []
        for i in range(len(bf.symbols)):
            rows = np.flatnonzero(bf.sid == i)
            rl = realized_labels(bf.close[rows], iv)
            m = (t[rows] >= cut) & (rl >= 0) & (y[rows] >= 0)
            agree.append((rl[m], y[rows][m]))
        rl_all = np.concatenate([a for a, _ in agree]).astype(np.int64)
        tr_all = np.concatenate([b for _, b in agree]).astype(np.int64)
        if len(rl_all):
            rep["realized_label_vs_truth"] = {
                "accuracy": float((rl_all == tr_all).mean()),
                "vol_accuracy": float(((rl_all & 1) == (tr_all & 1)).mean()),
                "trend_accuracy": float(((rl_all >> 1) == (tr_all >> 1)).mean()),
            }
    elif len(bf.symbols) >= 2 and leader in bf.symbols:
        # the market-wide risk label over the times every symbol has a bar
        times = [bf.open_time[bf.sid == i] for i in range(len(bf.symbols))]
        common = times[0]
        for tt in times[1:]:
            common = np.intersect1d(common, tt)
        closes = {
            s: bf.close[bf.sid == i][np.searchsorted(times[i], common)] for i, s in enumerate(bf.symbols)
        }
        rl = risk_labels(closes, leader, iv)
        ok = (common >= cut) & (rl >= 0)
        if ok.any():
            rep["risk_on_share"] = float((rl[ok] == 1).mean())
    return EvalResult(rep, model)


def format_report(rep: dict[str, Any]) -> str:
    lines = [
        f"regime detector, out of sample: {rep['test_rows']} bars of {', '.join(rep['symbols'])} in the last "
        f"{rep['test_days']} days, after {rep['train_days']} training days; labels: {rep['labels']}",
        f"accuracy {rep['accuracy']:.4f} (raw argmax {rep['raw_accuracy']:.4f}; vol axis "
        f"{rep['vol_accuracy']:.4f}, trend axis {rep['trend_accuracy']:.4f}); mlogloss {rep['mlogloss']:.4f}",
        f"switches per day per symbol: detected {rep['switches_per_day']:.3f} (raw argmax "
        f"{rep['switches_per_day_raw']:.3f}), labels {rep['label_switches_per_day']:.3f}",
        "",
        "confusion (rows: label, columns: detected)",
    ]
    w = max(len(r) for r in REGIMES) + 2
    lines.append(" " * w + "".join(f"{r:>{w}}" for r in REGIMES) + f"{'recall':>9}")
    for k, r in enumerate(REGIMES):
        rec = rep["recall"][r]
        lines.append(
            f"{r:<{w}}"
            + "".join(f"{v:>{w}}" for v in rep["confusion"][k])
            + (f"{rec:9.4f}" if rec is not None else f"{'-':>9}")
        )
    if "realized_label_vs_truth" in rep:
        a = rep["realized_label_vs_truth"]
        lines.append(
            f"\nreal-data label definition against the truth (same bars): accuracy {a['accuracy']:.4f} "
            f"(vol {a['vol_accuracy']:.4f}, trend {a['trend_accuracy']:.4f})"
        )
    if rep.get("risk_on_share") is not None:
        lines.append(f"\nrisk-on share of the test bars (market-wide label): {rep['risk_on_share']:.3f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ backtest


def backtest_detector(view: Any, job: Any, out: str | Path) -> tuple[Callable[[str], RegimeDetector], list[str]]:
    """The detector a replay starting at `view.now_ms` may use: trained on the view's window before
    its clock (`[backtest] train_window_days`), with the planted truth as labels where the data
    directory has one (synthetic markets; rows cut at the clock) and realized labels otherwise.
    Returns (a per-symbol detector factory, the regime names in class order)."""
    from kaizen.market.synth import read_truth

    cfg = job.cfg
    t = int(view.now_ms)
    ds = view.dataset(until_ms=t, since_ms=t - int(cfg.backtest.train_window_days * DAY_MS))
    truth = read_truth(job.data_dir)
    if truth is not None:
        from kaizen.market.data import interval_ms as iv_ms

        iv = iv_ms(ds.interval)
        truth = {s: (tt[tt + iv <= t], rr[tt + iv <= t]) for s, (tt, rr) in truth.items()}
    params = DetectorParams(trees=int(cfg.models.regime_trees))
    model, _ = train_on(ds, truth, params=params)
    model.save(Path(out) / "regime")
    return (lambda symbol: model.detector()), list(REGIMES)
