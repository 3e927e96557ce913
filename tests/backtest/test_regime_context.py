"""`[models] regime_context`: the signal models also read the regime features. The engine computes
them bar by bar (BarContext.inputs) and training computes them in batch; a model trained on the batch
matrix must see exactly the same inputs in the backtest engine, so its predictions there equal its
predictions on the training rows of the same bars. (The floors in the context follow a symbol's
calm level with a slow rise, so they remember their start: the engine here warms up from the first
bar, as the training matrix does; a backtest warms up CONTEXT_WARMUP_DAYS by default.)"""

from __future__ import annotations

import numpy as np
import pytest

from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from tests.conftest import run_kaizen

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
CONFIG = """
symbols = ["BTCUSDT", "ETHUSDT"]
[risk]
max_notional_per_symbol = 10000.0
daily_loss_limit = 10000.0
max_drawdown = 1.0
[models]
regime_context = true
[backtest]
strategies = ["snapshot"]
train_window_days = 70
warmup_bars = 5000  # from the first bar, as training: the context's floors remember their whole path
"""


@pytest.fixture(scope="module")
def context_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ctx")
    res = run_kaizen("data", "synth", "--seed", "4242", "--days", "80", "--symbols", ",".join(SYMBOLS),
                     "--out", str(tmp / "data"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (tmp / "c.toml").write_text(CONFIG)
    res = run_kaizen("backtest", "--data", str(tmp / "data"), "--config", str(tmp / "c.toml"), "--start",
                     "2024-03-12", "--end", "2024-03-20", "--out", str(tmp / "out"), "--no-progress",
                     timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp


def test_engine_inputs_equal_training_inputs(context_run):
    from kaizen.market.data import load_dataset
    from kaizen.models.ensemble import Ensemble
    from kaizen.models.features import CONTEXT_NAMES, INPUT_NAMES
    from kaizen.models.training import build

    (mdir,) = [p for p in (context_run / "out" / "models").iterdir() if p.is_dir() and not p.name.startswith(".")]
    ens = Ensemble.load(mdir, backend="xgboost")
    assert ens.manifest["features"] == INPUT_NAMES
    assert "regime" in ens.bases
    assert set(CONTEXT_NAMES) <= set(ens.manifest["surfaces"]["regime"])
    served = {}
    for r in LineageReader(context_run / "out" / "lineage" / "snapshot").records():
        if isinstance(r, R.Prediction):
            served[(r.symbol, r.ts)] = r.value
    assert len(served) >= 8 * 24 * len(SYMBOLS) - len(SYMBOLS)
    ds = load_dataset(context_run / "data", SYMBOLS, "1h")
    ts = build(ds, ens.manifest["label"]["horizon_bars"], 0.0005, context=True)
    assert ts.X.shape[1] == len(INPUT_NAMES)
    batch = ens.predict(ts.X)["meta"]
    close_ns = (ts.t + 3_600_000) * 1_000_000
    pairs = [(served[(ts.symbols[s], int(c))], b) for s, c, b in zip(ts.sid, close_ns, batch, strict=True)
             if (ts.symbols[s], int(c)) in served]  # fmt: skip
    assert len(pairs) >= len(served) - 8 * len(SYMBOLS)  # the last bars have no label yet
    got = np.array(pairs)
    np.testing.assert_allclose(got[:, 0], got[:, 1], rtol=0, atol=1e-6)
    # the context columns carry information (not all missing) on the served bars
    assert np.isfinite(ts.X[:, len(INPUT_NAMES) - len(CONTEXT_NAMES) :]).mean() > 0.9
