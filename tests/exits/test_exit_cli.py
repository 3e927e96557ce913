"""`kaizen exit eval` end to end on a small synthetic archive (offline evaluator), the fixed JSON
shape, the deployed model, and one-line errors."""

from __future__ import annotations

import json

import pytest

from kaizen.models.exit import ExitModel
from kaizen.models.exit_rules import baseline_names
from tests.conftest import run_kaizen
from tests.exits.archive import write_archive

CFG = """
symbols = ["BTCUSDT", "ETHUSDT"]
[models]
folds = 3
trees = 20
meta_trees = 10
embargo_bars = 12
threads = 1
[exit]
folds = 2
trees = 40
embargo_bars = 12
"""

KEYS = {"net_per_trade_bps", "hit_rate", "avg_hold_bars", "worst_trade_bps", "sharpe", "trades"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("synth-archive"), seed=21)


def test_exit_eval_cli(archive, tmp_path):
    cfg = tmp_path / "k.toml"
    cfg.write_text(CFG)
    out = tmp_path / "out"
    r = run_kaizen(
        "exit", "eval", "--data", str(archive), "--config", str(cfg), "--start", "2020-07-20", "--out", str(out),
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "exit eval [" in r.stderr  # progress bar
    assert "best baseline" in r.stdout and "offline evaluator" in r.stdout
    table = json.loads((out / "exits.json").read_text())
    assert set(table) == {"rules", "learned", "best_baseline", "deflated_sharpe"}
    names = set(baseline_names(4)) | {"learned", "oracle"}
    assert set(table["rules"]) == names
    n = {x["trades"] for x in table["rules"].values()}
    assert len(n) == 1 and n.pop() > 50  # the same trades for every rule
    for x in table["rules"].values():
        assert set(x) == KEYS and 1 <= x["avg_hold_bars"] <= 16 and 0 <= x["hit_rate"] <= 1
    assert table["learned"] == "learned" and table["best_baseline"] in names - {"learned", "oracle"}
    best = table["rules"][table["best_baseline"]]["net_per_trade_bps"]
    assert all(table["rules"][b]["net_per_trade_bps"] <= best for b in baseline_names(4))
    assert table["rules"]["oracle"]["net_per_trade_bps"] >= max(
        x["net_per_trade_bps"] for x in table["rules"].values()
    )
    assert set(table["deflated_sharpe"]) == names - {"oracle"}
    trials = {d["trials"] for d in table["deflated_sharpe"].values()}
    assert trials == {len(baseline_names(4)) + 10}  # 14 baselines + the learned exit's 2 kinds x 5 margins
    detail = json.loads((out / "exits_detail.json").read_text())
    assert detail["vectorized_policy_mismatches"] == 0 and detail["start"] == "2020-07-20"
    m = ExitModel.load(out / "exit_model", backend="interp")
    assert m.version == detail["deployed_model"]["version"]


def test_exit_eval_errors(archive, tmp_path):
    r = run_kaizen("exit", "eval", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not found" in r.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[exit]\nrule = "oracle"\n')
    r = run_kaizen("exit", "eval", "--data", str(archive), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "hindsight" in r.stderr and "Traceback" not in r.stderr
    r = run_kaizen("exit", "eval", "--data", str(archive), "--start", "2020-05-01", "--end", "2020-04-01",
                   "--out", str(tmp_path / "o"))  # fmt: skip
    assert r.returncode == 2 and "not after" in r.stderr


def test_exit_help():
    r = run_kaizen("exit", "eval", "--help")
    assert r.returncode == 0 and "usage: kaizen exit eval" in r.stdout and "offline" in r.stdout.lower()
    r = run_kaizen("exit")  # no action: the help, exit 2
    assert r.returncode == 2 and "usage: kaizen exit" in r.stdout
