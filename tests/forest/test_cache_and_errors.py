"""Compile cache behaviour, the load-time self-check, and clear errors for models we refuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xgboost as xgb

from kaizen.errors import DataError, KaizenError
from kaizen.models import compile as fc
from kaizen.models import forest_codegen
from kaizen.models.compile import load_forest
from tests.forest.conftest import train


@pytest.fixture(scope="module")
def model():
    return train("binary:logistic", depth=4, trees=10, features=5, seed=11)


def test_second_load_does_not_recompile(tmp_path, model):
    booster, X = model
    before = fc.compile_count
    f1 = load_forest(booster, backend="compiled", cache_dir=tmp_path)
    assert f1.build_info["compiled"] and fc.compile_count == before + 1
    so = f1.build_info["path"]
    stat1 = os.stat(so)
    f2 = load_forest(booster.save_raw("json"), backend="compiled", cache_dir=tmp_path)
    assert not f2.build_info["compiled"]
    assert fc.compile_count == before + 1
    assert os.stat(so).st_mtime_ns == stat1.st_mtime_ns and f2.build_info["path"] == so
    np.testing.assert_array_equal(f1.predict(X), f2.predict(X))


def test_default_cache_dir_from_env(tmp_path, monkeypatch, model):
    booster, _ = model
    monkeypatch.setenv("KAIZEN_CACHE_DIR", str(tmp_path))
    f = load_forest(booster, backend="compiled")
    assert f.build_info["path"].startswith(str(tmp_path / "forest"))


_LOAD = """
import json, sys
import numpy as np
from kaizen.models.compile import load_forest
model, cache, xfile = sys.argv[1:4]
f = load_forest(model, backend="compiled", cache_dir=cache)
X = np.load(xfile)
print(json.dumps({"compiled": f.build_info["compiled"], "path": f.build_info["path"], "pred": f.predict(X).tolist()}))
"""


def _load_in_child(repo_root, model_path, cache, xfile) -> dict:
    # A fresh process, as after a restart: the parent never maps the library it corrupts.
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    r = subprocess.run([sys.executable, "-c", _LOAD, str(model_path), str(cache), str(xfile)],
                       capture_output=True, text=True, env=env, cwd=repo_root, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("damage", ["flip_bytes", "truncate", "drop_sidecar"])
def test_corrupted_cache_is_rebuilt(tmp_path, model, damage, repo_root):
    booster, X = model
    model_path, xfile, cache = tmp_path / "m.json", tmp_path / "x.npy", tmp_path / "cache"
    booster.save_model(str(model_path))
    np.save(xfile, X)
    first = _load_in_child(repo_root, model_path, cache, xfile)
    assert first["compiled"]
    assert not _load_in_child(repo_root, model_path, cache, xfile)["compiled"]
    so = first["path"]
    if damage == "flip_bytes":
        data = bytearray(open(so, "rb").read())
        mid = len(data) // 2
        data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
        open(so, "wb").write(bytes(data))
    elif damage == "truncate":
        os.truncate(so, 100)
    else:
        os.unlink(so + ".sha256")
    again = _load_in_child(repo_root, model_path, cache, xfile)
    assert again["compiled"], "a damaged library must be rebuilt, not loaded"
    assert again["pred"] == first["pred"]
    np.testing.assert_allclose(again["pred"], booster.predict(xgb.DMatrix(X)), rtol=1e-6)


def test_divergent_compiled_model_is_refused(tmp_path, model, monkeypatch):
    booster, X = model
    real = forest_codegen.generate_c

    def broken(fm, key):
        # A codegen fault: missing values go right even where the default side is left.
        src = real(fm, key)
        assert "xx[f] = v != v ? -INFINITY : v;" in src
        return src.replace("xx[f] = v != v ? -INFINITY : v;", "xx[f] = v != v ? INFINITY : v;")

    monkeypatch.setattr(forest_codegen, "generate_c", broken)
    with pytest.raises(KaizenError, match="compiled predictor diverges from the interpreter"):
        load_forest(booster, backend="compiled", cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.so")), "a refused library must not stay in the cache"
    monkeypatch.setattr(forest_codegen, "generate_c", real)
    f = load_forest(booster, backend="compiled", cache_dir=tmp_path)
    np.testing.assert_allclose(f.predict(X), booster.predict(xgb.DMatrix(X)), rtol=1e-6)


def test_auto_falls_back_to_interp_without_compiler(tmp_path, model, monkeypatch):
    booster, X = model
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    f = load_forest(booster, cache_dir=tmp_path)
    assert f.backend == "interp"
    np.testing.assert_allclose(f.predict(X), booster.predict(xgb.DMatrix(X)), rtol=1e-6)
    with pytest.raises(KaizenError, match="no working C compiler"):
        load_forest(booster, backend="compiled", cache_dir=tmp_path)


def test_model_from_file_and_attributes(tmp_path, model):
    booster, X = model
    path = tmp_path / "m.json"
    booster.save_model(str(path))
    f = load_forest(path, backend="interp")
    assert (f.num_features, f.num_outputs, f.objective) == (5, 1, "binary:logistic")
    assert len(f.model_hash) == 64
    assert isinstance(f.predict_row(X[0]), float)


def test_categorical_split_refused():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 400), rng.normal(size=400)]).astype(np.float32)
    y = (X[:, 0] == 2).astype(int)
    dm = xgb.DMatrix(X, label=y, feature_types=["c", "q"], enable_categorical=True)
    b = xgb.train({"objective": "binary:logistic", "max_depth": 2}, dm, 3)
    with pytest.raises(DataError, match="categorical splits"):
        load_forest(b, backend="interp")


def test_bad_inputs_are_one_line_errors(tmp_path, model):
    booster, X = model
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not an XGBoost JSON model"):
        load_forest(bad)
    with pytest.raises(DataError, match="cannot read model"):
        load_forest(tmp_path / "missing.json")
    doc = json.loads(booster.save_raw("json"))
    doc["learner"]["objective"]["name"] = "rank:pairwise"
    with pytest.raises(DataError, match="objective 'rank:pairwise' not supported"):
        load_forest(json.dumps(doc).encode())
    with pytest.raises(KaizenError, match="backend 'gpu' unknown"):
        load_forest(booster, backend="gpu")
    f = load_forest(booster, backend="interp")
    with pytest.raises(DataError, match="expects rows of 5 features"):
        f.predict(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(DataError, match="expects 5"):
        f.predict_row(np.zeros(6, dtype=np.float32))
