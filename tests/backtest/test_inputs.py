"""Bad input to `kaizen backtest` gets one line and exit 2; a gap is reported and survived; and the
walk-forward rule: nothing after the replay clock is readable, by anyone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.backtest.driver import Job, run_job
from kaizen.config import Config
from kaizen.engine.strategy import BarContext, Target
from kaizen.market.data import load_dataset
from kaizen.market.view import DataView, LookaheadError
from tests.backtest.archive import T0, H, random_walk_archive
from tests.conftest import run_kaizen

CFG = """
symbols = ["BTCUSDT", "ETHUSDT"]
[risk]
max_notional_per_symbol = 10000.0
daily_loss_limit = 10000.0
max_drawdown = 1.0
[backtest]
strategies = ["buy_and_hold", "baseline_momentum"]
workers = 1
warmup_bars = 50
"""


def _run(tmp: Path, data: Path, *extra: str, cfg: str = CFG):
    (tmp / "c.toml").write_text(cfg)
    return run_kaizen("backtest", "--data", str(data), "--config", str(tmp / "c.toml"), "--out", str(tmp / "out"),
                      "--no-progress", *extra, timeout=120)  # fmt: skip


def _one_line_error(res, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kaizen: error:"), res.stderr
    for n in needles:
        assert n in err[0], err[0]


def test_missing_klines_of_a_symbol(tmp_path):
    data = random_walk_archive(tmp_path / "d", ["BTCUSDT"])
    _one_line_error(_run(tmp_path, data, "--start", "2023-01-20"), "no 1h klines for ETHUSDT")


def test_missing_funding_of_a_traded_symbol_is_an_error_never_zero(tmp_path):
    data = random_walk_archive(tmp_path / "d", ["BTCUSDT", "ETHUSDT"], funding=False)
    _one_line_error(_run(tmp_path, data, "--start", "2023-01-20"), "no funding series", "never assumed zero")


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--start", "2022-12-01"), "before the first bar"),
        (("--start", "2023-06-01"), "after the last bar"),
        (("--start", "2023-01-20", "--end", "2023-01-10"), "is not after --start"),
        (("--start", "2023-01-32"), "not a date"),
    ],
)
def test_bad_dates(tmp_path, args, needle):
    data = random_walk_archive(tmp_path / "d", ["BTCUSDT", "ETHUSDT"])
    _one_line_error(_run(tmp_path, data, *args), needle)


def test_a_gap_is_reported_and_the_features_restart(tmp_path):
    data = random_walk_archive(tmp_path / "d", ["BTCUSDT", "ETHUSDT"], drop=(600, 630))
    res = _run(tmp_path, data, "--start", "2023-01-10")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "gap(s), 30 missing bar(s)" in res.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["strategies"]["buy_and_hold"]["trades"] == 4
    # the features restarted after the gap (nan until their windows fill again), as in training
    from kaizen.lineage import records as R
    from kaizen.lineage.reader import LineageReader
    from kaizen.models.features import FEATURE_NAMES

    j = FEATURE_NAMES.index("mom_ret_24")
    snaps = [r for r in LineageReader(tmp_path / "out" / "lineage" / "buy_and_hold").records()
             if isinstance(r, R.FeatureSnapshot) and r.symbol == "BTCUSDT"]  # fmt: skip
    after = [r for r in snaps if r.bar_ts // 1_000_000 >= T0 + 630 * H]
    before = [r for r in snaps if r.bar_ts // 1_000_000 < T0 + 600 * H]
    assert before[-1].values[j] == before[-1].values[j]  # warm before the gap
    assert after[0].values[j] != after[0].values[j]  # nan: restarted
    assert after[30].values[j] == after[30].values[j]  # warm again


def test_the_view_refuses_every_read_after_its_clock(tmp_path):
    data = random_walk_archive(tmp_path / "d", ["BTCUSDT"])
    ds = load_dataset(data, ["BTCUSDT"], "1h")
    v = DataView(ds, now_ms=T0 + 100 * H)
    assert v.bar_at("BTCUSDT", T0 + 100 * H) is not None  # the bar that closed at T
    for read in (
        lambda: v.bar_at("BTCUSDT", T0 + 101 * H),
        lambda: v.open_at("BTCUSDT", T0 + 100 * H + 1),
        lambda: v.bars("BTCUSDT", T0 + 150 * H),
        lambda: v.funding_events(T0 + 200 * H),
        lambda: v.dataset(T0 + 100 * H + 1),
    ):
        with pytest.raises(LookaheadError):
            read()
    # what the trainer gets at T: bars closed by T only, funding settled by T only
    d = v.dataset().symbols["BTCUSDT"]
    assert int(d.klines.open_time[-1]) + H <= T0 + 100 * H
    assert int(d.funding_time[-1]) <= T0 + 100 * H
    with pytest.raises(ValueError):
        v.advance(T0)  # the clock never goes back


def test_a_strategy_that_peeks_gets_an_error_from_the_view(tmp_path):
    """A strategy holding the view (the most a strategy could ever get) and reading the next bar."""
    data = random_walk_archive(tmp_path / "d", ["BTCUSDT"])
    ds = load_dataset(data, ["BTCUSDT"], "1h")

    class Peeker:
        name = version = "peeker"

        def __init__(self, view: DataView) -> None:
            self.view = view
            self.reads = 0

        def decide(self, ctx: BarContext) -> Target:
            close_ms = ctx.ts_ns // 1_000_000
            assert self.view.bar_at(ctx.symbol, close_ms) is not None  # now is fine
            self.reads += 1
            self.view.bar_at(ctx.symbol, close_ms + H)  # the future is not
            return Target(exposure=0.0, reason="peek")

    job = Job(name="peeker", kind="custom", cfg=Config(symbols=["BTCUSDT"]), data_dir=str(data),
              symbols=["BTCUSDT"], start_ms=T0 + 200 * H, end_ms=T0 + 400 * H, out_dir=str(tmp_path / "o"))  # fmt: skip
    with pytest.raises(LookaheadError, match="data after T"):
        run_job(job, ds=ds, strategy_factory=Peeker)
