"""Purged, embargoed splits over time (Lopez de Prado, AFML ch. 7), used walk-forward.

A row is (t = bar open time, label_end = when its label is known). For a test window
[test_start, test_end):
  - test rows: test_start <= t < test_end;
  - purge: a training row before the test must have its label known by test_start - embargo
    (label_end <= test_start - embargo), so no label window overlaps the test and the features
    just before the test (serially correlated with it) are held back by the embargo;
  - embargo after the test: when training may use rows after the test (train_after=True, k-fold
    style), those rows start only at test_end + embargo and, as the test labels reach past
    test_end, rows whose t is inside [test_end, max test label_end) are purged as well.
Walk-forward folds (the default for training) use only rows before the test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Fold:
    k: int
    test_start: int
    test_end: int
    train: np.ndarray  # row indices
    test: np.ndarray


def split(
    t: np.ndarray,
    label_end: np.ndarray,
    test_start: int,
    test_end: int,
    embargo_ms: int,
    train_after: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    test_mask = (t >= test_start) & (t < test_end)
    before = (t < test_start) & (label_end <= test_start - embargo_ms)
    train_mask = before
    if train_after:
        last_label = int(label_end[test_mask].max()) if test_mask.any() else test_end
        after = t >= max(test_end + embargo_ms, last_label)
        train_mask = before | after
    return np.flatnonzero(train_mask), np.flatnonzero(test_mask)


def walk_forward(
    t: np.ndarray, label_end: np.ndarray, n_folds: int, embargo_ms: int, step_ms: int = 3_600_000
) -> list[Fold]:
    """Split [min t, max t] into n_folds + 1 equal time blocks; fold k tests block k (k >= 1) and
    trains on everything before it (expanding window), purged and embargoed."""
    if n_folds < 1:
        raise ValueError("walk_forward: n_folds must be >= 1")
    lo, hi = int(t.min()), int(t.max()) + step_ms
    edges = [lo + (hi - lo) * i // (n_folds + 1) for i in range(n_folds + 2)]
    edges = [e - (e - lo) % step_ms for e in edges[:-1]] + [hi]  # on the bar grid
    folds = []
    for k in range(1, n_folds + 1):
        tr, te = split(t, label_end, edges[k], edges[k + 1], embargo_ms)
        folds.append(Fold(k, edges[k], edges[k + 1], tr, te))
    return folds
