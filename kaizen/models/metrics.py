"""Out-of-sample metrics: log-loss, ROC AUC (ties averaged), information coefficient (Spearman
rank correlation of the prediction with the realized net forward return)."""

from __future__ import annotations

import numpy as np


def logloss(y: np.ndarray, p: np.ndarray, eps: float = 1e-15) -> float:
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) with ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), np.float64)
    edges = np.flatnonzero(np.diff(xs) != 0) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(x)]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auc(y: np.ndarray, p: np.ndarray) -> float:
    y = y.astype(bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    r = _rank(p)
    return float((r[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def ic(p: np.ndarray, ret: np.ndarray) -> float:
    rp, rr = _rank(p), _rank(ret)
    rp -= rp.mean()
    rr -= rr.mean()
    d = np.sqrt((rp * rp).sum() * (rr * rr).sum())
    return float((rp * rr).sum() / d) if d > 0 else float("nan")


def all_metrics(y: np.ndarray, p: np.ndarray, ret: np.ndarray) -> dict[str, float]:
    return {"logloss": logloss(y, p), "auc": auc(y, p), "ic": ic(p, ret)}
