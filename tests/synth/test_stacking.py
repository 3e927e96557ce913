"""Regime-aware stacking: the meta takes the detector's out-of-sample regime probabilities beside
the base models' out-of-fold predictions; the manifest keeps what prediction needs; old manifests
still load; the logistic meta is a correct penalised logistic regression."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from kaizen.errors import DataError
from kaizen.market.synth import SynthParams, generate, write_archive
from kaizen.models import ensemble, stacking
from kaizen.models.ensemble import META, META_PLAIN, Ensemble, TrainParams
from kaizen.models.features import FEATURE_NAMES
from kaizen.models.regime import REGIMES, DetectorParams, detector_matrix, walk_forward_probs
from kaizen.models.training import build
from tests.conftest import run_kaizen


def _replace(params: TrainParams, **kw) -> TrainParams:
    from dataclasses import replace

    return replace(params, **kw)


def test_logistic_meta_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40_000, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    w = np.array([0.8, -0.3, 0.0])
    p = 1 / (1 + np.exp(-(0.2 + X @ w)))
    y = (rng.random(len(p)) < p).astype(float)
    m = stacking.fit_logistic(X, y, l2=1e-6)
    assert np.allclose(m["coef"], w, atol=0.05) and abs(m["intercept"] - 0.2) < 0.05
    # the penalty shrinks towards the base rate, never past it
    strong = stacking.fit_logistic(X, y, l2=1e8)
    assert np.abs(strong["coef"]).max() < 1e-3
    assert abs(stacking.predict_logistic(strong, X).mean() - y.mean()) < 1e-3


@pytest.fixture(scope="module")
def synth_set():
    ds, truth = generate(SynthParams(seed=6067, days=240, symbols=["BTCUSDT", "ETHUSDT"]))
    ts = build(ds, 4, 0.0005)
    params = TrainParams(folds=4, trees=15, meta_trees=15, embargo_bars=12, regime_stacking=True)
    X = detector_matrix(ts.bf, 3_600_000)[ts.rows]
    y = np.concatenate([truth.regime[s] for s in ts.bf.symbols])
    yb = np.empty(len(ts.bf.sid), np.int8)
    yb[np.concatenate([ts.bf.rows_of(s) for s in ts.bf.symbols])] = y
    P = walk_forward_probs(
        X, yb[ts.rows], ts.t, ensemble.folds_for(ts.t, params), 3_600_000, DetectorParams(trees=20)
    )
    return ts, params, P


def test_regime_probs_are_walk_forward(synth_set) -> None:
    ts, params, P = synth_set
    folds = ensemble.folds_for(ts.t, params)
    assert np.isnan(P[folds[0].train]).all()  # block 0 is never predicted: nothing before it
    for f in folds[1:]:
        assert np.isfinite(P[f.test]).all() and np.allclose(P[f.test].sum(axis=1), 1.0, atol=1e-5)


def test_regime_stacking_trains_saves_and_predicts(synth_set, tmp_path: Path) -> None:
    ts, params, P = synth_set
    # a fixed kind always takes the regime inputs ("select" takes them only where they validate:
    # the kaizen train test below checks that the manifest follows its choice)
    fixed = _replace(params, meta_kind="xgb")
    res = ensemble.train(ts.X, ts.y, ts.ret, ts.t, fixed, regime_oof=P, regime_classes=list(REGIMES))
    assert META in res.overall and META_PLAIN in res.overall
    assert set(res.meta_choice.values()) == {"xgb+regime"} and res.regime_classes == list(REGIMES)
    h = ensemble.save(res, tmp_path / "m", {"data": {}})
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["schema"] == 2 and man["regime_inputs"] == list(REGIMES) and man["content_hash"] == h
    x = ts.X[-5:]
    r = P[-5:]
    ref = Ensemble.load(tmp_path / "m", backend="xgboost").predict(x, regime_probs=r)
    got = Ensemble.load(tmp_path / "m").predict(x, regime_probs=r)
    assert np.allclose(ref[META], got[META], atol=1e-6)
    one = Ensemble.load(tmp_path / "m").predict(x[0], regime_probs=r[0])
    assert abs(one[META] - got[META][0]) < 1e-7
    # the regime inputs matter to the meta, and are required
    other = Ensemble.load(tmp_path / "m").predict(x, regime_probs=np.tile([0, 0, 0, 1.0], (5, 1)))
    assert not np.allclose(other[META], got[META])
    with pytest.raises(DataError, match="regime_probs"):
        Ensemble.load(tmp_path / "m").predict(x)


@pytest.mark.parametrize("kind", ["xgb", "logistic"])
def test_each_meta_kind_round_trips(synth_set, tmp_path: Path, kind: str) -> None:
    ts, params, _ = synth_set
    p = TrainParams(folds=3, trees=10, meta_trees=10, embargo_bars=12, meta_kind=kind)
    res = ensemble.train(ts.X, ts.y, ts.ret, ts.t, p)
    assert set(res.meta_choice.values()) == {kind}
    ensemble.save(res, tmp_path, {})
    assert (tmp_path / "meta.json").exists() == (kind == "xgb")
    ens = Ensemble.load(tmp_path)
    out = ens.predict(ts.X[:50])
    assert np.all((out[META] > 0) & (out[META] < 1))
    with pytest.raises(DataError, match="inputs per row"):
        ens.predict(ts.X[:5, :-1])


def test_schema_1_manifest_still_loads(synth_set, tmp_path: Path) -> None:
    """A model saved before the regime work (34 features, an XGBoost meta, schema 1) loads and
    predicts from this build's feature vector, features matched by name."""
    ts, _, _ = synth_set
    old = FEATURE_NAMES[:34]
    p = TrainParams(folds=3, trees=10, meta_trees=10, embargo_bars=12, meta_kind="xgb")
    res = ensemble.train(ts.X[:, :34], ts.y, ts.ret, ts.t, p, names=old)
    ensemble.save(res, tmp_path, {})
    man = json.loads((tmp_path / "manifest.json").read_text())
    for k in ("meta_kind", "meta_choice", "regime_inputs", "content_hash"):
        man.pop(k)
    man["schema"] = 1
    man["features"] = old
    man["feature_versions"] = {n: man["feature_versions"][n] for n in old}
    h = hashlib.sha256()
    for name, fname in sorted(man["files"].items()):
        h.update(name.encode() + b"\0" + (tmp_path / fname).read_bytes())
    h.update(json.dumps(man, sort_keys=True).encode())
    man["content_hash"] = h.hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    ens = Ensemble.load(tmp_path, backend="xgboost")
    assert ens.meta_kind == "xgb" and ens.regime_classes is None
    out = ens.predict(ts.X[:20])  # the full 36-feature vector of this build
    import xgboost as xgb

    bst = xgb.Booster()
    bst.load_model(str(tmp_path / "momentum.json"))
    cols = [FEATURE_NAMES.index(n) for n in man["surfaces"]["momentum"]]
    assert np.allclose(out["momentum"], bst.inplace_predict(ts.X[:20][:, cols]), atol=1e-7)


def test_train_cli_with_regime_stacking_prints_the_comparison(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    write_archive(*generate(SynthParams(seed=7079, days=200, symbols=["BTCUSDT", "ETHUSDT"])), data)
    cfg = tmp_path / "k.toml"
    cfg.write_text(
        'symbols = ["BTCUSDT", "ETHUSDT"]\n[models]\nfolds = 3\ntrees = 15\nmeta_trees = 15\n'
        "embargo_bars = 12\nregime_stacking = true\nregime_trees = 20\n"
    )
    out = tmp_path / "out"
    r = run_kaizen("train", "--data", str(data), "--config", str(cfg), "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "meta vs the best base" in r.stdout and "meta_plain" in r.stdout
    assert "meta without regime inputs vs best base" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert {"meta", "meta_plain"} <= set(m["overall"])
    man = json.loads((out / "models" / "manifest.json").read_text())
    kinds = {"xgb", "logistic", "xgb+regime", "logistic+regime"}
    assert set(man["meta_choice"].values()) <= kinds and "final" in man["meta_choice"]
    uses = man["meta_choice"]["final"].endswith("+regime")
    assert (
        man["regime_inputs"] == (list(REGIMES) if uses else None)
        and man["regime_detector"]["dir"] == "regime"
    )
    assert man["params"]["regime_stacking"] is True
    from kaizen.models.regime import RegimeModel

    det = RegimeModel.load(out / "models" / "regime")
    assert det.manifest["content_hash"] == man["regime_detector"]["content_hash"]
    assert det.manifest["labels"] == "truth"
