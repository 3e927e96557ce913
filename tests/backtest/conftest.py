"""A small real-data backtest, run once per session through the real CLI and shared by the tests
that check its accounting, report, lineage and determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_kaizen

CONFIG = """
symbols = ["BTCUSDT", "ETHUSDT"]
[risk]
max_notional_per_symbol = 10000.0
daily_loss_limit = 10000.0
max_drawdown = 1.0
[backtest]
strategies = ["buy_and_hold", "baseline_momentum", "snapshot", "periodic_retrain", "kaizen"]
retrain_every_days = 15
train_window_days = 240
workers = 2
"""
START, END = "2023-06-01", "2023-07-16"


def write_config(tmp: Path, text: str = CONFIG) -> Path:
    p = tmp / "bt.toml"
    p.write_text(text)
    return p


def backtest(out: Path, data: Path, cfg: Path, start: str = START, end: str = END) -> None:
    res = run_kaizen(
        "backtest", "--data", str(data), "--config", str(cfg), "--start", start, "--end", end,
        "--out", str(out), "--no-progress", timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="session")
def bt_run(tmp_path_factory, shared_data) -> Path:
    tmp = tmp_path_factory.mktemp("bt")
    res = backtest(tmp / "out", shared_data, write_config(tmp))
    (tmp / "out" / "stdout.txt").write_text(res.stdout)
    return tmp / "out"
