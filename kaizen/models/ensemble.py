"""Signal ensemble: one XGBoost base model per feature surface and a meta model trained only on
the base models' out-of-fold predictions from purged, embargoed walk-forward folds.

Training (`train`):
  1. time blocks B0..BK (K = folds); for fold k >= 1 every base model is trained on rows before
     Bk (purged + embargoed, see folds.py) and predicts Bk -> out-of-fold base predictions;
  2. for fold k >= 2 the meta model is trained on the out-of-fold predictions of B1..B(k-1)
     (same purge/embargo) and predicts Bk; every model is scored on folds 2..K, the same rows;
  3. the saved models: bases refit on all rows, the meta refit on all out-of-fold predictions.
The meta model (kaizen.models.stacking) is a shallow XGBoost ("xgb"), an L2 logistic regression on
the base logits ("logistic"), or, by default, whichever the walk-forward protocol picks ("select":
per fold, fitted on the earlier out-of-fold blocks but the last, scored on that last block). With
`regime_stacking` the candidates can also take the regime detector's class probabilities for each
row (`regime_oof`: out of sample, produced walk-forward by the caller on the folds of `folds_for`);
"select" then uses them only where they validate, and the training result also scores the meta
chosen among the candidates without them ("meta_plain").
Saved as XGBoost JSON plus manifest.json (features and versions, data range, parameters, fold
metrics, content hash); `Ensemble.load(dir).predict(x)` serves them. By default every model is
loaded through kaizen.models.compile.load_forest (generated C, or its interpreter), so live
prediction never calls XGBoost's Python API; `Ensemble.load(dir, backend="xgboost")` keeps
Boosters (the reference; both agree to 1e-6, tests/signal/test_per_symbol_and_compiled.py).
A logistic meta is kept as its coefficients in the manifest. An ensemble trained with regime inputs
needs them at prediction: `Ensemble.load(dir).predict(x, regime_probs=p)`, p the detector's class
probabilities (kaizen.models.regime.RegimeDetector.on_bar). Manifests of schema 1 (34 features, an
XGBoost meta, no regime inputs) still load: features are matched by name and version.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kaizen.errors import DataError
from kaizen.models import stacking
from kaizen.models.features import CONTEXT_NAMES, FEATURE_NAMES, INPUT_NAMES, input_versions, surfaces_of
from kaizen.models.folds import Fold, split, walk_forward
from kaizen.models.metrics import all_metrics

META = "meta"
META_PLAIN = "meta_plain"  # with regime stacking: the same meta without the regime inputs
MANIFEST = "manifest.json"
SCHEMA = 2


@dataclass
class TrainParams:
    folds: int = 6
    embargo_bars: int = 24
    horizon_bars: int = 4
    interval_ms: int = 3_600_000
    trees: int = 200
    max_depth: int = 4
    learning_rate: float = 0.05
    meta_trees: int = 100
    threads: int = 2
    # fits run at once in a thread pool (each with `threads` XGBoost threads): the base models of
    # every fold and the final refits are independent and each is seeded, so the result is the
    # same for any value; it only sets how many cores one training may use
    fit_workers: int = 1
    seed: int = 7
    base_extra: dict[str, Any] = field(default_factory=dict)  # XGBoost parameters over the defaults
    meta_kind: str = "select"  # "xgb" | "logistic" | "select" (kaizen.models.stacking)
    regime_stacking: bool = False  # the meta also takes the regime detector's probabilities
    regime_context: bool = False  # inputs: the engine features + the regime context (features.py)

    def base_params(self) -> dict[str, Any]:
        return {
            "objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
            "max_depth": self.max_depth, "eta": self.learning_rate, "subsample": 0.8,
            "colsample_bytree": 0.8, "min_child_weight": 50, "lambda": 5.0, "nthread": self.threads,
            "seed": self.seed,
        } | self.base_extra  # fmt: skip

    def meta_params(self) -> dict[str, Any]:
        return {
            "objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
            "max_depth": 2, "eta": 0.05, "min_child_weight": 200, "lambda": 10.0, "subsample": 0.8,
            "nthread": self.threads, "seed": self.seed,
        }  # fmt: skip


@dataclass
class TrainResult:
    models: dict[str, Any]  # name -> xgboost.Booster (final refits)
    surfaces: dict[str, list[int]]
    folds: list[dict[str, Any]]  # [{"start","end","models": {name: metrics}}]
    overall: dict[str, dict[str, float]]
    prior: dict[str, float]  # the constant base-rate predictor on the same rows (a floor)
    skipped: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    # Out-of-fold predictions per row (nan where a row was never in a test block): each base's
    # column in `surfaces` order, and the meta model's (folds 2..K). Later layers (edge
    # calibration, exit training) build on these, never on in-sample predictions.
    oof: np.ndarray | None = None
    oof_meta: np.ndarray | None = None
    # the meta kind used per evaluation fold (kind "select" picks one per fold) and for the final fit
    meta_choice: dict[str, str] = field(default_factory=dict)
    regime_classes: list[str] | None = None  # regime inputs of the meta (None: none)
    names: list[str] | None = None  # the input columns of X (FEATURE_NAMES, or INPUT_NAMES)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit(X: np.ndarray, y: np.ndarray, params: dict[str, Any], rounds: int):
    import xgboost as xgb

    # the matrix is built with the fit's own thread count: fits run side by side in threads, and an
    # OpenMP team per construction would oversubscribe the cores (the data, so the model, is the same)
    d = xgb.DMatrix(X, label=y, missing=np.nan, nthread=int(params.get("nthread") or 0) or None)
    return xgb.train(params, d, num_boost_round=rounds)


def _map(fn: Callable[[Any], Any], tasks: list[Any], workers: int) -> Iterator[Any]:
    """fn over tasks in order; with workers > 1 in a thread pool (XGBoost releases the GIL while it
    boosts), results still yielded in task order."""
    if workers <= 1 or len(tasks) <= 1:
        return map(fn, tasks)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kaizen-fit") as pool:
        return iter(list(pool.map(fn, tasks)))


def _predict(booster, X: np.ndarray) -> np.ndarray:
    if not hasattr(booster, "inplace_predict"):  # a kaizen Forest (compiled / interpreted)
        # float32 like Booster.predict, so the meta model sees the same logits on either backend
        p = booster.predict(np.ascontiguousarray(X, dtype=np.float32))
        return np.asarray(p, dtype=np.float32).ravel()
    import xgboost as xgb

    try:
        return booster.inplace_predict(X, missing=np.nan)
    except xgb.core.XGBoostError:  # gblinear has no inplace predict
        return booster.predict(xgb.DMatrix(X, missing=np.nan))


def _date(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def train(
    X: np.ndarray,
    y: np.ndarray,
    ret: np.ndarray,
    t: np.ndarray,
    params: TrainParams,
    names: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    regime_oof: np.ndarray | None = None,
    regime_classes: list[str] | None = None,
) -> TrainResult:
    """Rows must be in time order with finite labels. y in {0,1}; ret the net forward return.
    `regime_oof` (rows x classes, nan where none): the regime detector's out-of-sample
    probabilities, required when params.regime_stacking."""
    names = names or (list(INPUT_NAMES) if X.shape[1] == len(INPUT_NAMES) else list(FEATURE_NAMES))
    tick = progress or (lambda note: None)
    if len(y) < 100:
        raise DataError(f"too few labelled rows to train ({len(y)})")
    if params.meta_kind not in stacking.KINDS:
        raise DataError(f"meta kind {params.meta_kind!r} unknown (known: {', '.join(stacking.KINDS)})")
    if params.regime_stacking and (regime_oof is None or regime_oof.shape[0] != len(y)):
        raise DataError("regime stacking needs the detector's out-of-sample probabilities for every row")
    label_end = t + (params.horizon_bars + 1) * params.interval_ms
    embargo_ms = params.embargo_bars * params.interval_ms
    folds = folds_for(t, params)
    surfaces: dict[str, list[int]] = {}
    skipped: dict[str, str] = {}
    for s, idx in surfaces_of(names).items():
        if np.isnan(X[:, idx]).all():
            skipped[s] = "no data in the training set (live-only inputs)"
        else:
            surfaces[s] = idx
    bases = list(surfaces)
    oof = np.full((len(y), len(bases)), np.nan)
    fold_metrics: list[dict[str, Any]] = []
    bp = params.base_params()
    for f in folds:
        if len(f.train) < 100 or len(f.test) == 0:
            raise DataError(
                f"fold {f.k} ({_date(f.test_start)}..{_date(f.test_end)}) has too few rows to train"
            )
    # every base fit (per fold, then the final refits on all rows) is independent of the others
    fits = [(f, j, s) for f in folds for j, s in enumerate(bases)] + [(None, j, s) for j, s in enumerate(bases)]

    def fit_one(task: tuple[Fold | None, int, str]) -> Any:
        f, _, s = task
        cols = surfaces[s]
        if f is None:
            return _fit(X[:, cols], y, bp, params.trees)
        return _fit(X[np.ix_(f.train, cols)], y[f.train], bp, params.trees)

    finals: dict[str, Any] = {}
    for (f, j, s), m in zip(fits, _map(fit_one, fits, params.fit_workers), strict=True):
        if f is None:
            finals[s] = m
            continue
        oof[f.test, j] = _predict(m, X[np.ix_(f.test, surfaces[s])])
        tick(f"fold {f.k} {s}")
    # meta: trained on out-of-fold predictions of earlier test blocks only
    R = regime_oof if params.regime_stacking else None
    have_oof = ~np.isnan(oof).any(axis=1)
    have = have_oof & (~np.isnan(R).any(axis=1) if R is not None else True)
    Z = _logit(np.where(np.isnan(oof), 0.5, oof))
    meta_pred = np.full(len(y), np.nan)
    plain_pred = np.full(len(y), np.nan) if R is not None else None
    eval_folds: list[Fold] = folds[1:]
    choice: dict[str, str] = {}
    for idx, f in enumerate(eval_folds):
        tr, _ = split(t, label_end, f.test_start, f.test_end, embargo_ms)
        inner = eval_folds[idx - 1] if idx > 0 else None
        tr_m = tr[have[tr]]
        if len(tr_m) < 100:
            raise DataError(f"fold {f.k}: too few out-of-fold rows to train the meta model")
        m, kind = _meta_fit(params, Z, R, y, t, label_end, tr_m, inner, embargo_ms)
        te = f.test[have[f.test]]
        meta_pred[te] = _meta_predict(m, kind, Z[te], None if R is None else R[te])
        choice[f"{_date(f.test_start)}..{_date(f.test_end)}"] = kind
        if plain_pred is not None:
            tr_p = tr[have_oof[tr]]
            mp_, kind_p = _meta_fit(params, Z, None, y, t, label_end, tr_p, inner, embargo_ms)
            plain_pred[f.test] = _meta_predict(mp_, kind_p, Z[f.test], None)
        tick(f"fold {f.k} meta")
    preds = {s: oof[:, j] for j, s in enumerate(bases)}
    preds[META] = meta_pred
    if plain_pred is not None:
        preds[META_PLAIN] = plain_pred
    eval_rows = np.concatenate([f.test for f in eval_folds])
    if np.isnan(meta_pred[eval_rows]).any():
        raise DataError("the regime detector has no out-of-sample probabilities for some evaluation rows")
    prior_rows: list[np.ndarray] = []
    for f in eval_folds:
        fm = {name: all_metrics(y[f.test], p[f.test], ret[f.test]) for name, p in preds.items()}
        fold_metrics.append({"start": _date(f.test_start), "end": _date(f.test_end), "models": fm})
        prior_rows.append(np.full(len(f.test), y[f.train].mean()))
    overall = {name: all_metrics(y[eval_rows], p[eval_rows], ret[eval_rows]) for name, p in preds.items()}
    prior_p = np.concatenate(prior_rows)
    from kaizen.models.metrics import logloss

    prior = {"logloss": logloss(y[eval_rows], prior_p), "base_rate": float(y[eval_rows].mean())}
    # final refits
    models: dict[str, Any] = {}
    for s in bases:
        models[s] = finals[s]
        tick(f"final {s}")
    last = eval_folds[-1] if eval_folds else None
    models[META], kind = _meta_fit(params, Z, R, y, t, label_end, np.flatnonzero(have), last, embargo_ms)
    choice["final"] = kind
    tick("final meta")
    classes = None
    if kind.endswith("+regime"):  # the saved meta takes the regime probabilities
        classes = (
            list(regime_classes) if regime_classes is not None else [f"regime_{k}" for k in range(R.shape[1])]
        )
    return TrainResult(
        models, surfaces, fold_metrics, overall, prior, skipped, len(y), oof, meta_pred, choice, classes,
        list(names),
    )


def folds_for(t: np.ndarray, params: TrainParams) -> list[Fold]:
    """The walk-forward folds `train` uses on rows with open times t (for callers that build
    out-of-sample inputs, e.g. the regime detector's probabilities, on the same blocks)."""
    label_end = t + (params.horizon_bars + 1) * params.interval_ms
    return walk_forward(
        t, label_end, params.folds, params.embargo_bars * params.interval_ms, params.interval_ms
    )


def _meta_fit(
    params: TrainParams, Z: np.ndarray, R: np.ndarray | None, y: np.ndarray, t: np.ndarray,
    label_end: np.ndarray, rows: np.ndarray, inner: Fold | None, embargo_ms: int,
) -> tuple[Any, str]:  # fmt: skip
    """Fit the meta on `rows`; returns (model, kind), kind "xgb" / "logistic" with "+regime" when it
    takes the regime probabilities R. A fixed meta_kind uses R whenever given. Kind "select" scores
    each candidate (xgb, logistic; each with and without R when R is given) on the `inner` block
    (the last one before the rows' end), fitted on the rows before it (purged), and keeps the best:
    the regime inputs are used only where they validate. Without an inner block to score on (the
    first evaluation fold) "select" takes the logistic meta on the base logits alone, the one with
    the fewest parameters."""
    suffix = "+regime" if R is not None else ""
    kind = params.meta_kind + suffix
    if params.meta_kind == "select":
        kind = "logistic"
        cands = [c + sfx for sfx in ({"", suffix} if suffix else {""}) for c in stacking.CANDIDATES]
        if inner is not None:
            in_tr, _ = split(t, label_end, inner.test_start, inner.test_end, embargo_ms)
            in_tr = np.intersect1d(in_tr, rows)
            in_te = np.intersect1d(inner.test, rows)
            if len(in_tr) >= 100 and len(in_te) >= 50:
                scored = []
                for cand in sorted(cands):
                    m = _meta_fit_kind(params, cand, Z, R, y, in_tr)
                    p = _meta_predict(m, cand, Z[in_te], _rows(R, in_te))
                    scored.append((stacking.logloss(y[in_te], p), cand))
                kind = min(scored)[1]
    return _meta_fit_kind(params, kind, Z, R, y, rows), kind


def _meta_fit_kind(params: TrainParams, kind: str, Z, R, y, rows) -> Any:
    base, reg = kind.split("+")[0], kind.endswith("+regime")
    X = stacking.design(Z[rows], R[rows] if reg else None, base)
    return stacking.fit(base, X, y[rows], params.meta_params(), params.meta_trees)


def _rows(R: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if R is None else R[rows]


def _meta_predict(model: Any, kind: str, Z: np.ndarray, R: np.ndarray | None) -> np.ndarray:
    base, reg = kind.split("+")[0], kind.endswith("+regime")
    return stacking.predict(model, stacking.design(Z, R if reg else None, base))


def n_steps(params: TrainParams, n_bases: int) -> int:
    return params.folds * n_bases + (params.folds - 1) + n_bases + 1


def save(result: TrainResult, out: Path, info: dict[str, Any]) -> str:
    """Write models (XGBoost JSON) and the manifest; return the content hash."""
    out.mkdir(parents=True, exist_ok=True)
    names = result.names or list(FEATURE_NAMES)
    files: dict[str, str] = {}
    h = hashlib.sha256()
    linear = {k: v for k, v in result.models.items() if isinstance(v, dict)}  # a logistic meta
    for name, booster in sorted(result.models.items()):  # sorted: the manifest is written sorted
        if name in linear:
            continue
        fname = f"{name}.json"
        booster.save_model(str(out / fname))
        data = (out / fname).read_bytes()
        h.update(name.encode() + b"\0" + data)
        files[name] = fname
    manifest = {
        "schema": SCHEMA,
        "meta": META,
        "bases": [s for s in result.surfaces],
        "files": files,
        "features": list(names),
        "feature_versions": input_versions(list(names)),
        "surfaces": {s: [names[i] for i in idx] for s, idx in result.surfaces.items()},
        "skipped_surfaces": result.skipped,
        "fold_metrics": result.folds,
        "overall": result.overall,
        "prior": result.prior,
        "rows": result.rows,
        "meta_kind": result.meta_choice.get("final", "xgb").split("+")[0],
        "meta_choice": result.meta_choice,
        "regime_inputs": result.regime_classes,
        **info,
    }
    if META in linear:
        manifest["meta_model"] = linear[META]
    # hash the manifest exactly as Ensemble.load will see it (after a JSON round trip)
    manifest = json.loads(json.dumps(manifest, default=_json_default))
    h.update(json.dumps(manifest, sort_keys=True).encode())
    manifest["content_hash"] = h.hexdigest()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default))
    return manifest["content_hash"]


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


class Ensemble:
    """Loaded base + meta models. predict(vector or matrix of the full feature vector)."""

    def __init__(self, manifest: dict[str, Any], boosters: dict[str, Any], path: Path) -> None:
        self.manifest = manifest
        self.path = path
        self.version: str = manifest["content_hash"][:16]
        self.bases: list[str] = manifest["bases"]
        # features are matched by name (a model trained before features were added still loads);
        # every one it uses must exist in this build with the version it was trained on
        versions = input_versions(list(INPUT_NAMES))
        # a regime-context model (kaizen.models.features.CONTEXT_NAMES among its inputs) takes
        # INPUT_NAMES vectors, any other this build's engine vector
        self.context = any(n in CONTEXT_NAMES for n in manifest["features"])
        self.inputs: list[str] = list(INPUT_NAMES) if self.context else list(FEATURE_NAMES)
        missing = [n for n in manifest["features"] if n not in versions]
        if missing:
            raise DataError(f"{path}: model features {missing[:3]} are not in this build's FEATURES")
        for n, v in manifest["feature_versions"].items():
            if versions.get(n) != v:
                raise DataError(
                    f"{path}: feature {n} was version {v} at training, this build has {versions.get(n)}"
                )
        self._cols = {
            s: np.array([self.inputs.index(n) for n in manifest["surfaces"][s]]) for s in self.bases
        }
        self.meta_kind: str = manifest.get("meta_kind", "xgb")
        self.regime_classes: list[str] | None = manifest.get("regime_inputs")
        self._boosters = boosters  # name -> xgboost.Booster or kaizen Forest
        self.backend = "xgboost"

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", cache_dir: str | Path | None = None) -> Ensemble:
        """Load and verify a saved ensemble.

        backend: "auto" | "compiled" | "interp" | "capi" build every model through
        `kaizen.models.compile.load_forest` (no XGBoost Python API on the prediction path;
        "auto" compiles when a C compiler works, else interprets); "xgboost" keeps Boosters.
        """
        path = Path(path)
        if backend != "xgboost":
            from kaizen.models.compile import BACKENDS

            if backend not in BACKENDS:
                raise DataError(
                    f"ensemble backend {backend!r} unknown; expected xgboost or one of {', '.join(BACKENDS)}"
                )
        mp = path / MANIFEST
        try:
            manifest = json.loads(mp.read_text())
        except FileNotFoundError:
            raise DataError(f"{mp}: model manifest not found") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{mp}: not valid JSON: {exc}") from None
        h = hashlib.sha256()
        boosters = {}
        blobs = {}
        for name, fname in sorted(manifest["files"].items()):
            try:
                blobs[name] = (path / fname).read_bytes()
            except OSError as exc:
                raise DataError(f"{path / fname}: cannot read model: {exc.strerror}") from None
            h.update(name.encode() + b"\0" + blobs[name])
        body = {k: v for k, v in manifest.items() if k != "content_hash"}
        h.update(json.dumps(body, sort_keys=True).encode())
        if h.hexdigest() != manifest.get("content_hash"):
            raise DataError(f"{path}: content hash mismatch (models or manifest changed after training)")
        if backend == "xgboost":
            import xgboost as xgb

            for name, data in blobs.items():
                b = xgb.Booster()
                b.load_model(bytearray(data))
                b.set_param({"nthread": 1})
                boosters[name] = b
        else:
            from kaizen.models.compile import load_forest

            for name, data in blobs.items():
                boosters[name] = load_forest(data, backend=backend, cache_dir=cache_dir)
        if "meta_model" in manifest:
            boosters[META] = manifest["meta_model"]  # logistic: coefficients, no forest
        ens = cls(manifest, boosters, path)
        ens.backend = backend
        return ens

    def compiled(self):
        """The same models as one `kaizen.ext.ensemble.CompiledEnsemble` (the hot path's predictor:
        one C call per feature vector). Needs a Forest backend (not "xgboost")."""
        from kaizen.ext.ensemble import CompiledEnsemble

        if self.backend == "xgboost":
            raise DataError(f"{self.path}: compiled() needs a Forest backend, loaded with backend='xgboost'")
        bases = [(self._boosters[s], [int(c) for c in self._cols[s]]) for s in self.bases]
        k = len(self.regime_classes) if self.regime_classes is not None else 0
        return CompiledEnsemble(bases, self._boosters[META], len(self.inputs), k, self.version)

    def predict(self, x: np.ndarray, regime_probs: np.ndarray | None = None) -> dict[str, Any]:
        """Base-model probabilities per surface and the meta probability ("meta"). x: this build's
        feature vector (or rows of it); regime_probs: the regime detector's class probabilities
        (a vector, or rows), required when the ensemble was trained with regime inputs."""
        X = np.asarray(x, dtype=np.float64)
        single = X.ndim == 1
        if single:
            X = X[None, :]
        if X.shape[1] != len(self.inputs):
            raise DataError(f"predict: expected {len(self.inputs)} inputs per row, got {X.shape[1]}")
        R = None
        if self.regime_classes is not None:
            if regime_probs is None:
                raise DataError(
                    f"{self.path}: this ensemble's meta takes regime probabilities "
                    f"({', '.join(self.regime_classes)}); pass regime_probs"
                )
            R = np.asarray(regime_probs, dtype=np.float64).reshape(len(X), -1)
            if R.shape[1] != len(self.regime_classes):
                raise DataError(
                    f"predict: expected {len(self.regime_classes)} regime probabilities, got {R.shape[1]}"
                )
        out: dict[str, Any] = {}
        cols = []
        for s in self.bases:
            p = _predict(self._boosters[s], X[:, self._cols[s]])
            out[s] = p
            cols.append(p)
        Z = _logit(np.column_stack(cols).astype(np.float64))
        out[META] = stacking.predict(self._boosters[META], stacking.design(Z, R, self.meta_kind))
        if single:
            return {k: float(v[0]) for k, v in out.items()}
        return out
