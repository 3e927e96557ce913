"""`regime_bandit` inside `kaizen backtest` on a synthetic market: the regime detector trained
before --start names the regimes the portfolios are keyed on (and agrees with the planted truth far
above chance), every bar's variant is a Thompson draw of that role, and the same seed gives the same
backtest byte for byte."""

from __future__ import annotations

import json
from collections import Counter

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
[backtest]
strategies = ["regime_bandit"]
train_window_days = 60
"""
ARGS = ("--start", "2024-03-05", "--end", "2024-03-19", "--no-progress")


@pytest.fixture(scope="module")
def bandit_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bandit")
    res = run_kaizen("data", "synth", "--seed", "5151", "--days", "80", "--symbols", ",".join(SYMBOLS),
                     "--out", str(tmp / "data"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (tmp / "c.toml").write_text(CONFIG)
    for name in ("a", "b"):
        res = run_kaizen("backtest", "--data", str(tmp / "data"), "--config", str(tmp / "c.toml"), *ARGS,
                         "--out", str(tmp / name), timeout=600)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
    return tmp


def _records(path):
    return list(LineageReader(path).records())


def test_detected_regimes_key_the_roles_and_follow_the_truth(bandit_runs):
    from kaizen.market.synth import read_truth
    from kaizen.models.regime import REGIMES

    recs = _records(bandit_runs / "a" / "lineage" / "regime_bandit")
    changes = [r for r in recs if isinstance(r, R.MarketStatus) and r.status == "regime"]
    assert changes and {r.reason for r in changes} <= set(REGIMES)
    # a variant is drawn whenever the symbol's book is flat (a trade stays with the variant that
    # opened it), keyed by the detected regime
    choices = [r for r in recs if isinstance(r, R.BanditChoice)]
    assert len(choices) >= 50
    roles = Counter(c.role.split("/")[1] for c in choices)
    assert set(roles) <= set(REGIMES)
    decisions = [r for r in recs if isinstance(r, R.Decision)]
    assert len(decisions) >= 14 * 24 * len(SYMBOLS) - len(SYMBOLS)
    # the regime in force at each decision, from the change records, against the planted truth
    truth = read_truth(bandit_runs / "data")
    hit = n = 0
    for sym in SYMBOLS:
        ch = sorted((r.ts, r.reason) for r in changes if r.symbol == sym)
        tt, rr = truth[sym]
        for c in (d for d in decisions if d.symbol == sym):
            cur = [name for ts, name in ch if ts <= c.ts]
            if not cur:
                continue
            i = int(np.searchsorted(tt, c.ts // 1_000_000 - 3_600_000))  # the bar that just closed
            hit += cur[-1] == REGIMES[int(rr[min(i, len(rr) - 1)])]
            n += 1
    assert n > 500
    print(f"detected regime = planted regime on {hit / n:.1%} of {n} decisions")
    assert hit / n > 0.5, hit / n  # four classes: chance is about 0.25


def test_same_seed_same_backtest_bytes(bandit_runs):
    a = (bandit_runs / "a" / "summary.json").read_bytes()
    b = (bandit_runs / "b" / "summary.json").read_bytes()
    assert a == b
    assert json.loads(a)["strategies"]["regime_bandit"]["decisions"] > 0
    ra = _records(bandit_runs / "a" / "lineage" / "regime_bandit")
    rb = _records(bandit_runs / "b" / "lineage" / "regime_bandit")
    assert len(ra) == len(rb)
    draws_a = [(r.role, r.variant, r.draw) for r in ra if isinstance(r, R.BanditChoice)]
    draws_b = [(r.role, r.variant, r.draw) for r in rb if isinstance(r, R.BanditChoice)]
    assert draws_a == draws_b and len({v for _, v, _ in draws_a}) >= 2
