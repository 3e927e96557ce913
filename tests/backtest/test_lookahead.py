"""No look-ahead, on real data: cutting the data at a date D leaves every record before D of a run
byte-identical (decisions, fills, funding, retrains: a strategy retrained every 15 days included),
and a run on the cut data has the same summary as a run on the full data ending at D."""

from __future__ import annotations

import datetime as dt

import msgspec

from kaizen.lineage import records as R
from kaizen.lineage.reader import LineageReader
from tests.backtest.archive import cut_archive
from tests.backtest.conftest import CONFIG, START, backtest, write_config

D = "2023-07-01"
D_MS = int(dt.datetime(2023, 7, 1, tzinfo=dt.UTC).timestamp() * 1000)
NAMES = ["baseline_momentum", "periodic_retrain"]


def _before(path, cut_ns: int) -> list[bytes]:
    # RunStart names the config's hash, and the two configs list different strategies
    return [
        msgspec.json.encode(r)
        for r in LineageReader(path).records()
        if r.ts < cut_ns and not isinstance(r, R.RunStart)
    ]


def test_cutting_the_data_after_d_changes_nothing_before_d(bt_run, tmp_path, shared_data):
    cut = cut_archive(shared_data, tmp_path / "cut", ["BTCUSDT", "ETHUSDT"], D_MS)
    cfg_text = CONFIG.replace(
        'strategies = ["buy_and_hold", "baseline_momentum", "snapshot", "periodic_retrain", "kaizen"]',
        f"strategies = {NAMES!r}".replace("'", '"'),
    )
    cfg = write_config(tmp_path, cfg_text)
    backtest(tmp_path / "cut_run", cut, cfg, START, "2023-07-16")  # asks past D: the data stops at D
    cut_ns = D_MS * 1_000_000
    for name in NAMES:
        full = _before(bt_run / "lineage" / name, cut_ns)
        part = _before(tmp_path / "cut_run" / "lineage" / name, cut_ns)
        assert len(full) > 1000 and full == part, name
    # a run on the full data that ends at D sees the same world as the run on the cut data
    backtest(tmp_path / "end_run", shared_data, cfg, START, D)
    assert (tmp_path / "end_run" / "summary.json").read_bytes() == (
        tmp_path / "cut_run" / "summary.json"
    ).read_bytes()
