"""`kaizen exit eval` on the real data, walk-forward out of sample from 2022-01-01 (slow: it trains
the signal ensemble and the exit models; about 5-10 minutes on 2 cores). The numbers are reported
(README), not asserted: the checks are the protocol's."""

from __future__ import annotations

import json

import pytest

from kaizen.models.exit_rules import baseline_names
from tests.conftest import run_kaizen


@pytest.mark.slow
def test_exit_eval_real_data(shared_data, tmp_path):
    out = tmp_path / "out"
    r = run_kaizen(
        "exit", "eval", "--data", str(shared_data), "--start", "2022-01-01", "--out", str(out), timeout=3600
    )
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    table = json.loads((out / "exits.json").read_text())
    detail = json.loads((out / "exits_detail.json").read_text())
    rules = table["rules"]
    assert set(rules) == set(baseline_names(4)) | {"learned", "oracle"}
    assert len({x["trades"] for x in rules.values()}) == 1 and rules["learned"]["trades"] > 100
    assert rules["oracle"]["net_per_trade_bps"] >= max(x["net_per_trade_bps"] for x in rules.values())
    assert detail["vectorized_policy_mismatches"] == 0 and detail["start"] == "2022-01-01"
    assert all(f["test_start"] >= "2022-01-01" for f in detail["folds"])
    assert detail["trades_before_start"] > 0  # the exit model trained on earlier out-of-fold trades
