"""Regime detector: one code path live and in batch, hysteresis, save/load through the compiled
predictor, realized labels, and the `kaizen regime` commands.

Must show (issue 13): on synthetic data from seeds never used for tuning, accuracy against the
planted regime >= 90 % out of sample, with the confusion matrix printed by `kaizen regime eval`.
The market and detector parameters were tuned on seeds 0-4 only; the seeds below are others.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from kaizen.errors import DataError
from kaizen.ext.regime import DERIVED, Hysteresis
from kaizen.market.synth import SynthParams, generate
from kaizen.models.features import FEATURE_NAMES, batch_features
from kaizen.models.regime import (
    DETECTOR_FEATURES,
    REGIMES,
    DetectorParams,
    RegimeModel,
    _new_state,
    detector_matrix,
    evaluate,
    fit,
    format_report,
    realized_labels,
)
from tests.conftest import run_kaizen

UNSEEN = (1013, 2027, 3041)


@pytest.fixture(scope="module")
def small():
    ds, truth = generate(SynthParams(seed=4049, days=60, symbols=["BTCUSDT", "ETHUSDT"]))
    bf = batch_features(ds)
    X = detector_matrix(bf, 3_600_000)
    y = np.concatenate([truth.regime[s] for s in bf.symbols])
    order = np.concatenate([bf.rows_of(s) for s in bf.symbols])
    yy = np.empty(len(bf.sid), np.int8)
    yy[order] = y
    booster = fit(X, yy, DetectorParams(trees=20, threads=1))
    return ds, truth, bf, X, yy, booster


def test_regime_features_live_equal_batch(small) -> None:
    _, _, bf, X, _, _ = small
    rows = bf.rows_of("ETHUSDT")
    live = _new_state(3_600_000)
    got = np.array([live.update(np.ascontiguousarray(bf.X[r])) for r in rows])
    want = X[rows][:, -len(DERIVED) :]
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])  # the same code: bit for bit
    assert np.isfinite(want[200:]).all()


def test_hysteresis_needs_a_lead_on_consecutive_bars() -> None:
    h = Hysteresis(4, 0.1, 2)
    seq = [
        [0.7, 0.1, 0.1, 0.1],  # start: 0
        [0.3, 0.5, 0.1, 0.1],  # 1 leads by 0.2: first bar
        [0.6, 0.2, 0.1, 0.1],  # back: reset
        [0.3, 0.5, 0.1, 0.1],
        [0.35, 0.42, 0.13, 0.1],  # leads by 0.07 < margin: reset
        [0.2, 0.6, 0.1, 0.1],
        [0.2, 0.6, 0.1, 0.1],  # second consecutive: switch
        [0.45, 0.4, 0.1, 0.05],  # 0 leads but 1 is current: stays
    ]
    P = np.array(seq)
    assert [Hysteresis(4, 0.1, 2).step(p) for p in [P[0]]] == [0]
    assert [h.step(p) for p in P] == [0, 0, 0, 0, 0, 0, 1, 1]
    assert Hysteresis(4, 0.1, 2).run(P).tolist() == [0, 0, 0, 0, 0, 0, 1, 1]  # batch: same steps


def test_detector_on_bar_equals_batch_and_save_load(small, tmp_path: Path) -> None:
    _, _, bf, _, _, booster = small
    model = RegimeModel.from_booster(booster, 3_600_000, DetectorParams(trees=20), {"labels": "truth"})
    h = model.save(tmp_path / "det")
    rows = bf.rows_of("BTCUSDT")
    live = model.detector()
    got = [live.on_bar(bf.X[r]) for r in rows]
    ids, P = model.detector().run(bf.X[rows])
    assert [g[0] for g in got] == ids.tolist()
    assert np.allclose(np.array([g[1] for g in got]), P, atol=1e-12)
    assert np.allclose(P.sum(axis=1), 1.0, atol=1e-5)
    # reload through the compiled predictor and through XGBoost itself: same probabilities
    for backend in ("auto", "xgboost", "interp"):
        m2 = RegimeModel.load(tmp_path / "det", backend=backend)
        assert m2.version == h[:16]
        _, P2 = m2.detector().run(bf.X[rows])
        assert np.allclose(P2, P, atol=1e-6), backend
    man = json.loads((tmp_path / "det" / "manifest.json").read_text())
    assert man["classes"] == list(REGIMES) and man["features"] == DETECTOR_FEATURES
    man["hysteresis"]["margin"] += 0.25
    (tmp_path / "det" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DataError, match="content hash"):
        RegimeModel.load(tmp_path / "det")
    with pytest.raises(ValueError, match="feature vector"):
        live.on_bar(np.zeros(len(FEATURE_NAMES) - 1))


def test_realized_labels_from_drift_and_volatility() -> None:
    rng = np.random.default_rng(5)
    n = 24 * 300
    sd = np.where(np.arange(n) < n // 2, 0.004, 0.012)  # volatility triples half way
    drift = np.where((np.arange(n) // (24 * 10)) % 2 == 0, 0.0, 0.4) * sd  # 10-day trends, 10-day flats
    r = drift + sd * rng.standard_normal(n)
    y = realized_labels(np.exp(np.cumsum(r)) * 100.0, 3_600_000)
    ok = y >= 0
    trend = (drift > 0) & ok
    mid = (np.arange(n) % 240 > 48) & (np.arange(n) % 240 < 192)  # away from the switches
    assert ((y[trend & mid] >> 1) == 0).mean() > 0.9
    assert ((y[~trend & ok & mid] >> 1) == 1).mean() > 0.8
    late = ok & (np.arange(n) > n // 2) & (np.arange(n) < n // 2 + 24 * 20)  # vol just tripled
    assert ((y[late] & 1) == 1).mean() > 0.9
    assert (y[: 24 * 89] == -1).all()  # no 90-day volatility history yet


def _accuracy(seed: int, days: int, symbols=None, train_days=None) -> dict:
    ds, truth = generate(SynthParams(seed=seed, days=days, **({"symbols": symbols} if symbols else {})))
    t = {s: (truth.open_time, truth.regime[s]) for s in truth.regime}
    return evaluate(ds, t, train_days).report


@pytest.mark.slow
@pytest.mark.parametrize("seed", UNSEEN)
def test_detector_accuracy_on_unseen_seeds(seed: int) -> None:
    """Must show: >= 90 % out of sample against the planted regime (365 days, 4 symbols,
    trained on the first 240 days)."""
    rep = _accuracy(seed, 365, train_days=240)
    print(f"seed {seed}: accuracy {rep['accuracy']:.4f} confusion {rep['confusion']}")
    assert rep["accuracy"] >= 0.90, rep["accuracy"]
    # no flapping: a detected regime lasts a day on average, and the hysteresis holds back switches
    # the raw argmax would make
    assert rep["switches_per_day"] <= 1.0
    assert rep["switches_per_day"] < 0.5 * rep["switches_per_day_raw"]


def test_regime_commands_on_a_synthetic_archive(tmp_path: Path) -> None:
    """Fast version of the must-show: `kaizen data synth` then `kaizen regime eval` on an unseen
    seed (4 symbols, 300 days, trained on 200), the confusion matrix printed."""
    out = tmp_path / "synth"
    r = run_kaizen(
        "data", "synth", "--seed", "5059", "--days", "300", "--break-day", "250", "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert (out / "truth" / "regimes.csv").is_file() and "break at day 250" in r.stdout
    r = run_kaizen(
        "regime",
        "eval",
        "--data",
        str(out),
        "--train-days",
        "200",
        "--json",
        "--out",
        str(tmp_path / "d"),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    print(f"seed 5059: accuracy {rep['accuracy']:.4f}")
    assert rep["labels"] == "truth" and rep["train_days"] == 200
    assert rep["accuracy"] >= 0.88, rep["accuracy"]  # 100 test days: a little noisier than the 365-day check
    cm = np.array(rep["confusion"])
    assert cm.shape == (4, 4) and cm.sum() == rep["test_rows"]
    assert math.isclose(np.trace(cm) / cm.sum(), rep["accuracy"])
    text = format_report(rep)  # what `kaizen regime eval` prints without --json
    assert "confusion (rows: label, columns: detected)" in text
    for k, name in enumerate(REGIMES):
        assert text.count(name) == 2 and " ".join(str(v) for v in cm[k]) in " ".join(text.split())
    assert RegimeModel.load(tmp_path / "d").manifest["labels"] == "truth"
    r = run_kaizen("regime", "eval", "--data", str(out), "--train-days", "400")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--train-days" in r.stderr


def test_risk_off_is_a_correlated_sell_off() -> None:
    from kaizen.models.regime import risk_labels

    rng = np.random.default_rng(3)
    n = 24 * 60
    common = rng.normal(0, 0.01, n)
    down = (np.arange(n) >= 24 * 20) & (np.arange(n) < 24 * 40)
    common[down] -= 0.004  # a 20-day slide
    own = rng.normal(0, 0.01, (2, n))
    corr_w = np.where(down, 1.0, 0.2)  # the symbols move together in the slide only
    closes = {
        "BTCUSDT": 100 * np.exp(np.cumsum(common)),
        "ETHUSDT": 50 * np.exp(np.cumsum(corr_w * common + (1 - corr_w) * own[0])),
        "SOLUSDT": 20 * np.exp(np.cumsum(corr_w * common + (1 - corr_w) * own[1])),
    }
    y = risk_labels(closes, "BTCUSDT", 3_600_000)
    mid = (np.arange(n) >= 24 * 24) & (np.arange(n) < 24 * 36)
    calm = (np.arange(n) >= 24 * 45) & (np.arange(n) < 24 * 55)
    assert (y[mid] == 0).mean() > 0.9 and (y[calm] == 1).mean() > 0.9
    assert (y[:30] == -1).all() and (y[-30:] == -1).all()  # the centred window is incomplete
