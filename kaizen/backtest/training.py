"""Training the signal ensemble inside a replay: only on data the DataView lets through (bars closed
by the training time T, labels whose horizon ends by T), with the edge calibration and its
out-of-fold evidence in the manifest. Models are cached by the hash of their data and parameters,
so strategies that ask for the same model at the same time share one training run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kaizen.config import Config
from kaizen.engine.strategy import Costs
from kaizen.errors import DataError
from kaizen.market.data import Dataset


def params_of(cfg: Config):
    """[models] with the [backtest] training overrides (folds, trees, learning rate, one thread)."""
    from kaizen.market.data import interval_ms
    from kaizen.models import ensemble

    mc, bc = cfg.models, cfg.backtest
    return ensemble.TrainParams(
        folds=bc.train_folds,
        embargo_bars=mc.embargo_bars,
        horizon_bars=mc.horizon_bars,
        interval_ms=interval_ms(mc.interval),
        trees=bc.train_trees,
        max_depth=mc.max_depth,
        learning_rate=bc.train_learning_rate,
        meta_trees=bc.train_meta_trees,
        threads=1,
        fit_workers=bc.train_fit_workers,
        regime_context=mc.regime_context,
    )


def data_hash(ds: Dataset) -> str:
    """Content hash of a dataset's bars, marks and funding (what a model was trained on)."""
    h = hashlib.sha256()
    for s in sorted(ds.symbols):
        d = ds.symbols[s]
        k = d.klines
        h.update(s.encode())
        for a in (k.open_time, k.open, k.high, k.low, k.close, k.volume, d.funding, d.mark_close):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def train_signal_model(
    ds: Dataset,
    cfg: Config,
    costs: Costs,
    root: Path,
    progress: Callable[[str], None] | None = None,
    *,
    horizon_bars: int | None = None,
    features: list[str] | tuple[str, ...] = (),
    params_override: dict | None = None,
) -> tuple[Path, dict]:
    """Train (or find in the cache) the pooled ensemble on `ds`; returns (model dir, its info).

    A variant (kaizen.policy.roles.Variant) changes the label horizon, restricts the features (the
    others are missing, in training and at prediction: `SignalModel` masks them) and overrides
    XGBoost parameters of the base models."""
    import dataclasses

    from kaizen.models import ensemble
    from kaizen.models.edge import edge_evidence
    from kaizen.models.training import build

    params = params_of(cfg)
    if horizon_bars:
        params = dataclasses.replace(params, horizon_bars=int(horizon_bars))
    overrides = dict(params_override or {})
    for k in ("trees", "max_depth", "learning_rate", "meta_trees"):
        if k in overrides:
            params = dataclasses.replace(params, **{k: type(getattr(params, k))(overrides.pop(k))})
    if overrides:  # XGBoost parameters of the base models (a variant's hyper-parameters)
        params = dataclasses.replace(params, base_extra=overrides)
    features = list(features)
    dh = data_hash(ds)
    # fit_workers only sets how many cores a training uses: not part of what the model is
    key_params = {k: v for k, v in vars(params).items() if k != "fit_workers"}
    key_src = json.dumps(
        {"data": dh, "params": params.base_params(), "meta": params.meta_params(), "p": key_params,
         "fee": cfg.fees.taker, "rt": costs.round_trip, "leader": cfg.models.leader, "features": features,
         "xgb": overrides},
        sort_keys=True, default=str,
    )  # fmt: skip
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    out = root / key
    if (out / ensemble.MANIFEST).exists():
        info = json.loads((out / "training.json").read_text())
        return out, info
    ts = build(ds, params.horizon_bars, cfg.fees.taker, leader=cfg.models.leader, context=params.regime_context)
    from kaizen.models.features import FEATURE_NAMES
    from kaizen.models.trades import VOL_FEATURE

    # the per-bar vol the engine puts in BarContext.vol, kept before a variant masks its column:
    # the PnL drift channel's unit
    vol = ts.X[:, FEATURE_NAMES.index(VOL_FEATURE)].copy()
    if features:
        unknown = sorted(set(features) - set(FEATURE_NAMES))
        if unknown:
            raise DataError(f"variant features {unknown} are not engine features")
        ts.X[:, [i for i, n in enumerate(FEATURE_NAMES) if n not in features]] = np.nan
    if len(ts.y) < 500:
        raise DataError(f"too little history to train before {_iso(ds.end_ms)} ({len(ts.y)} labelled rows)")
    res = ensemble.train(ts.X, ts.y, ts.ret, ts.t, params, progress=progress)
    ev = edge_evidence(
        res.oof_meta, ts.gross, ts.close, ts.t, ts.sid, ts.funding,
        horizon=params.horizon_bars, interval_ms=params.interval_ms, round_trip=costs.round_trip,
        lags=params.horizon_bars * len(ts.symbols),
    )  # fmt: skip
    info = {
        "data": {"symbols": list(ds.symbols), "start_ms": int(ts.t.min()), "end_ms": int(ds.end_ms),
                 "hash": dh, "rows": int(len(ts.y))},
        "label": {"kind": "net_forward_return", "horizon_bars": params.horizon_bars, "fee_per_side": cfg.fees.taker},
        "params": {"base": params.base_params(), "base_rounds": params.trees, "meta": params.meta_params(),
                   "meta_rounds": params.meta_trees, "folds": params.folds, "embargo_bars": params.embargo_bars},
        "edge": ev,
        "overall": {k: v for k, v in res.overall.items()},
        "variant_features": features,
    }  # fmt: skip
    tmp = root / f".{key}.tmp"
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    version = ensemble.save(res, tmp, {k: info[k] for k in ("data", "label", "params", "edge", "variant_features")})
    info["version"] = version[:16]
    (tmp / "training.json").write_text(json.dumps(info, sort_keys=True, default=float))
    # the out-of-fold probabilities and outcomes: the drift monitor calibrates on their residuals
    ok = np.isfinite(res.oof_meta)
    # and the gross forward returns and the bar's vol: the PnL drift channel's reference (what the
    # rule earned, in vol units)
    np.savez(tmp / "oof.npz", p=res.oof_meta[ok], y=ts.y[ok], t=ts.t[ok], gross=ts.gross[ok], vol=vol[ok])
    if out.exists():  # another process finished the same model first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(out)
    return out, info


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
