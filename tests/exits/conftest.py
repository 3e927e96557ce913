from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from kaizen.engine.strategy import Costs
from kaizen.models.edge import entry_side
from kaizen.models.exit import ExitExamples, ExitParams, FoldResult, build_examples, train_walk_forward
from kaizen.models.trades import Market, Trades, make_trades
from tests.exits.synth import planted

COSTS = Costs()


@dataclass
class Setup:
    markets: list[Market]
    trades: Trades
    ex: ExitExamples
    params: ExitParams
    folds: list[FoldResult]
    start: int
    end: int


def trades_of(markets: list[Market], max_hold: int = 16) -> Trades:
    sides = [entry_side(m.edge, COSTS, m.funding_rate, 4)[0] for m in markets]
    return make_trades(markets, sides, COSTS, max_hold)


def span(markets: list[Market], trades: Trades) -> tuple[int, int]:
    t0, t1 = int(trades.t_entry.min()), int(max(m.close_time[-1] for m in markets))
    start = t0 + (t1 - t0) // 3
    return start - start % 3_600_000, t1


@pytest.fixture(scope="module")
def small() -> Setup:
    """A small planted market (seed 3) and a quick walk-forward exit model on it."""
    markets, _ = planted(3, n_bars=6000)
    trades = trades_of(markets)
    ex = build_examples(markets, trades, COSTS, 4)
    params = ExitParams(folds=2, trees=30, min_rows=400, min_trades=15, threads=1)
    start, end = span(markets, trades)
    folds = train_walk_forward(ex, trades, params, start, end)
    return Setup(markets, trades, ex, params, folds, start, end)


def rows_of(ex: ExitExamples, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.divmod(flat, ex.H)
