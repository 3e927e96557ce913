"""Per-symbol models from config (`models.pooled = false`) and inference through the compiled
forest predictors (kaizen.models.compile), checked against XGBoost on real feature rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kaizen.errors import DataError
from kaizen.market.data import load_dataset, parse_date_ms
from kaizen.models.ensemble import META, Ensemble, TrainParams, save, train
from kaizen.models.training import build
from tests.conftest import run_kaizen

BASES = {"momentum", "volatility", "mean_reversion", "volume", "funding_basis", "cross_asset"}


def test_train_per_symbol_real_slice(tmp_path, shared_data):
    cfg = tmp_path / "k.toml"
    cfg.write_text(
        'symbols = ["BTCUSDT", "ETHUSDT"]\n[models]\npooled = false\nfolds = 3\ntrees = 10\n'
        "meta_trees = 5\nembargo_bars = 12\n"
    )
    out = tmp_path / "out"
    r = run_kaizen(
        "train", "--data", str(shared_data), "--config", str(cfg),
        "--start", "2024-01-01", "--end", "2024-04-01", "--out", str(out), timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "== BTCUSDT" in r.stdout and "== ETHUSDT" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["meta"] == "BTCUSDT/meta"
    keys = set(m["overall"])
    assert {"BTCUSDT/meta", "ETHUSDT/meta", "BTCUSDT/momentum", "ETHUSDT/momentum"} <= keys
    assert all(k.split("/")[0] in ("BTCUSDT", "ETHUSDT") for k in keys)
    for sym in ("BTCUSDT", "ETHUSDT"):
        names = {k.split("/", 1)[1] for k in keys if k.startswith(sym + "/")}
        assert META in names and names - {META} <= BASES and len(names) >= 4
    # same date range for both symbols -> same fold spans, each fold carries every model
    assert len(m["folds"]) == 2
    for f in m["folds"]:
        assert f["start"] < f["end"] and set(f["models"]) == keys
        for x in f["models"].values():
            assert set(x) == {"logloss", "auc", "ic"} and 0 < x["logloss"] < 2
    assert not (out / "models" / "manifest.json").exists()
    for sym in ("BTCUSDT", "ETHUSDT"):
        man = json.loads((out / "models" / sym / "manifest.json").read_text())
        assert man["data"]["symbols"] == [sym] and man["params"]["pooled"] is False
        # each symbol's model sees only its own rows: its metrics differ from the other symbol's
        ens = Ensemble.load(out / "models" / sym, backend="xgboost")
        assert set(ens.bases) == {k.split("/", 1)[1] for k in keys if k.startswith(sym + "/")} - {META}
        assert man["overall"][META] == m["overall"][f"{sym}/meta"]
    assert m["overall"]["BTCUSDT/meta"] != m["overall"]["ETHUSDT/meta"]


@pytest.fixture(scope="module")
def real_ensemble(tmp_path_factory, shared_data):
    ds = load_dataset(
        shared_data,
        ["BTCUSDT", "ETHUSDT"],
        "1h",
        parse_date_ms("2024-01-01", "s"),
        parse_date_ms("2024-04-01", "e"),
    )
    ts = build(ds, 4, 0.0005)
    p = TrainParams(folds=3, embargo_bars=12, trees=25, meta_trees=15, max_depth=4)
    res = train(ts.X, ts.y, ts.ret, ts.t, p)
    d = tmp_path_factory.mktemp("ens")
    save(res, d, {"test": True})
    return d, ts


@pytest.mark.parametrize("backend", ["compiled", "interp", "auto"])
def test_compiled_ensemble_equals_xgboost(real_ensemble, tmp_path, backend):
    d, ts = real_ensemble
    ref = Ensemble.load(d, backend="xgboost")
    ens = Ensemble.load(d, backend=backend, cache_dir=tmp_path)
    assert ens.backend == backend and ens.version == ref.version
    # no XGBoost Booster on the prediction path
    assert all(type(b).__name__ == "Forest" for b in ens._boosters.values())
    X = ts.X  # real feature rows, NaNs included (live-only surfaces, warm-up)
    assert np.isnan(X).any() and len(X) > 2000
    want, got = ref.predict(X), ens.predict(X)
    assert set(got) == set(want) == set(ref.bases) | {META}
    for k in want:
        assert got[k].shape == want[k].shape
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-6, err_msg=k)
    assert np.std(want[META]) > 0  # not a constant model
    for i in (0, len(X) // 2, len(X) - 1):  # single-vector path (the live call)
        one = ens.predict(X[i])
        for k in want:
            assert abs(one[k] - want[k][i]) <= 1e-6


def test_ensemble_unknown_backend(real_ensemble):
    d, _ = real_ensemble
    with pytest.raises(DataError, match="ensemble backend 'gpu' unknown"):
        Ensemble.load(d, backend="gpu")
