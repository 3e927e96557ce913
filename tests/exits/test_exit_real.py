"""`kaizen exit eval` on the real data, walk-forward out of sample from 2022-01-01 (slow: per period
it trains the signal ensemble and the exit model, then one engine backtest per rule; about 15-25
minutes on 2 shared cores). The numbers are reported (README), not asserted: the checks are the
protocol's."""

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
    assert detail["same_entries"] and detail["same_entry_fills"] and detail["start"] == "2022-01-01"
    assert all(p["start"] >= "2022-01-01" and p["signal_data_end"] <= p["start"] for p in detail["periods"])
    assert all(p["history_trades"] > 0 for p in detail["periods"])  # trained on earlier out-of-fold trades
    assert max(detail["accounting_parity_median_abs_bps"].values()) < 1.0
