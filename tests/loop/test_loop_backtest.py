"""The improvement loop inside `kaizen backtest` on real data: its counts and events in the summary,
every pointer move traced by `kaizen log trace` to the comparison or alarm that decided it and from
there to the training run and its data range, and the registry consistent afterwards."""

from __future__ import annotations

import json
import re

import pytest

from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from kaizen.models.registry import ModelRegistry
from tests.conftest import run_kaizen

CONFIG = """
symbols = ["BTCUSDT", "ETHUSDT"]
[risk]
max_notional_per_symbol = 10000.0
daily_loss_limit = 10000.0
max_drawdown = 1.0
[backtest]
strategies = ["kaizen"]
train_window_days = 150
[loop]
retrain_every = "1d"
shadow_days = 4
gate_min_decisions = 150
"""


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("loop")
    (tmp / "c.toml").write_text(CONFIG)
    res = run_kaizen("backtest", "--data", str(shared_data), "--config", str(tmp / "c.toml"), "--start", "2023-09-01",
                     "--end", "2023-09-14", "--out", str(tmp / "out"), "--no-progress", timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp / "out"


def test_summary_counts_and_events(loop_run):
    k = json.loads((loop_run / "summary.json").read_text())["strategies"]["kaizen"]
    for key in ("retrains", "promotions", "retirements", "rollbacks", "drift_alarms"):
        assert key in k
    assert k["retrains"] >= 3  # one candidate per 4-day shadow period over 13 days
    assert k["promotions"] + k["retirements"] >= 2  # every finished shadow period was decided
    for e in k["events"]:
        assert set(e) == {"ts", "kind", "role", "from", "to"}
        assert e["kind"] in ("promotion", "retirement", "rollback", "drift_alarm")
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["ts"])
    assert (
        len([e for e in k["events"] if e["kind"] in ("promotion", "retirement")])
        == k["promotions"] + k["retirements"]
    )


def test_every_pointer_move_traces_to_its_decision_and_training(loop_run):
    lin = loop_run / "lineage" / "kaizen"
    recs = list(LineageReader(lin).records())
    by_id = {r.id: r for r in recs}
    moves = [
        r for r in recs if isinstance(r, R.PointerMove) and r.action in ("promote", "retire", "rollback")
    ]
    assert moves, "the run decided nothing"
    for mv in moves:
        deciders = [by_id[p] for p in mv.parents if p in by_id]
        assert any(isinstance(d, R.ShadowComparison | R.DriftAlarm | R.Rollback) for d in deciders), mv
        res = run_kaizen("log", "trace", str(lin), str(mv.id))
        assert res.returncode == 0, res.stderr
        assert '"type":"shadow"' in res.stdout or '"type":"rollback"' in res.stdout
        version = mv.model  # the version the move is about
        if version not in ("", "flat"):  # the version's training run and data range are reachable
            assert "trained by run train-" in res.stdout and " on data " in res.stdout, res.stdout[:2000]
    # and the registry on disk agrees with what the log says happened
    reg = ModelRegistry(loop_run / "loop" / "kaizen" / "registry")
    assert reg.fsck() == []
    retired = {mv.new for mv in moves if mv.pointer == "retired"}
    assert retired <= set(reg.retired("signal"))
