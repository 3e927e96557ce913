"""From a loaded Dataset to a labelled training set (features via the live engine's batch path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kaizen.market.data import Dataset
from kaizen.models.features import BatchFeatures, batch_features
from kaizen.models.labels import net_forward_return


@dataclass
class TrainingSet:
    X: np.ndarray
    y: np.ndarray  # 1 if the long's net forward return > 0
    ret: np.ndarray  # net forward return
    t: np.ndarray  # open time ms, non-decreasing
    sid: np.ndarray
    symbols: list[str]
    dropped_unlabelled: int
    gross: np.ndarray | None = None  # gross forward log return (no fees, no funding)
    funding: np.ndarray | None = None  # latest settled funding rate at each row's bar close
    close: np.ndarray | None = None  # the bar's close (the price a decision at that row sees)
    bf: BatchFeatures | None = None  # every bar's features (the rows above are bf rows `rows`)
    rows: np.ndarray | None = None


def build(
    ds: Dataset, horizon: int, fee: float, leader: str = "BTCUSDT", warmup: int = 72, context: bool = False
) -> TrainingSet:
    """Labelled rows of `ds`; with `context`, X holds INPUT_NAMES (the engine features, then the
    regime context kaizen.models.features.context_matrix), else FEATURE_NAMES."""
    bf: BatchFeatures = batch_features(ds, leader=leader)
    ret = np.full(len(bf.sid), np.nan)
    gross = np.full(len(bf.sid), np.nan)
    for i, s in enumerate(bf.symbols):
        rows = np.flatnonzero(bf.sid == i)  # time order within a symbol
        k = ds.symbols[s].klines
        ret[rows] = net_forward_return(
            bf.open_time[rows], bf.close[rows], bf.funding[rows], horizon, k.interval_ms, fee
        )
        gross[rows] = net_forward_return(
            bf.open_time[rows], bf.close[rows], np.zeros(len(rows)), horizon, k.interval_ms, 0.0
        )
    # the first `warmup` bars of each symbol (windows not yet full) are not trained on
    warm = np.zeros(len(ret), bool)
    for i in range(len(bf.symbols)):
        rows = np.flatnonzero(bf.sid == i)
        warm[rows[:warmup]] = True
    keep = np.isfinite(ret) & ~warm
    X = bf.X[keep]
    if context:
        from kaizen.models.features import context_matrix

        X = np.hstack([X, context_matrix(bf, ds.symbols[bf.symbols[0]].klines.interval_ms)[keep]])
    return TrainingSet(
        X,
        (ret[keep] > 0).astype(np.float64),
        ret[keep],
        bf.open_time[keep],
        bf.sid[keep],
        bf.symbols,
        int((~keep).sum()),
        gross[keep],
        bf.funding[keep],
        bf.close[keep],
        bf,
        np.flatnonzero(keep),
    )
