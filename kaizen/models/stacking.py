"""Meta models for the signal ensemble: what sits on top of the base models' out-of-fold predictions.

Kinds:
- "xgb": a shallow, heavily regularised XGBoost on the base logits (the original meta).
- "logistic": L2-regularised logistic regression on the standardised base logits (a weighted
  vote with calibration; 1 + n parameters). Its coefficients live in the ensemble manifest.
- "select": choose between the two by the walk-forward protocol (kaizen.models.ensemble): for each
  evaluation fold, each candidate is fitted on the earlier out-of-fold blocks but the last and
  scored on that last block; the better one is refitted on all earlier blocks and predicts the
  fold. Nothing is chosen on the rows it is scored on.

With regime inputs (`regime=True`) the meta also sees the regime detector's out-of-sample class
probabilities: the tree meta as extra columns (it can split on them), the logistic one as the
probabilities (intercept per regime) and each base logit times each regime probability (a weight
per base per regime: which surface to trust in which state).
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("xgb", "logistic", "select")
CANDIDATES = ("xgb", "logistic")
LOGISTIC_L2 = 10.0  # penalty on standardised coefficients, in units of log-likelihood (fixed a priori)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def design(base_logits: np.ndarray, regime_probs: np.ndarray | None, kind: str) -> np.ndarray:
    """Meta inputs from base logits (rows x bases) and regime probabilities (rows x K or None)."""
    Z = np.asarray(base_logits, dtype=np.float64)
    if regime_probs is None:
        return Z
    R = np.asarray(regime_probs, dtype=np.float64)
    if kind == "xgb":
        return np.hstack([Z, R])
    # logistic: regime probabilities (all but the last: the intercept carries it) and interactions
    inter = (Z[:, :, None] * R[:, None, :]).reshape(len(Z), -1)
    return np.hstack([R[:, :-1], inter])


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = LOGISTIC_L2, iters: int = 50) -> dict[str, Any]:
    """Newton-IRLS for L2-penalised logistic regression on standardised columns (the intercept is
    not penalised). Returns the model as plain numbers (JSON-able)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    Xs = np.hstack([np.ones((len(X), 1)), (X - mu) / sd])
    w = np.zeros(Xs.shape[1])
    base = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    w[0] = np.log(base / (1 - base))
    pen = np.full(Xs.shape[1], float(l2))
    pen[0] = 0.0
    for _ in range(iters):
        eta = Xs @ w
        p = 1.0 / (1.0 + np.exp(-eta))
        g = Xs.T @ (p - y) + pen * w
        h = (Xs * (p * (1 - p))[:, None]).T @ Xs + np.diag(pen + 1e-9)
        step = np.linalg.solve(h, g)
        w -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    coef = w[1:] / sd
    return {"kind": "logistic", "intercept": float(w[0] - (coef * mu).sum()), "coef": coef.tolist(), "l2": l2}


def predict_logistic(model: dict[str, Any], X: np.ndarray) -> np.ndarray:
    eta = model["intercept"] + np.asarray(X, dtype=np.float64) @ np.asarray(model["coef"], dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-eta))


def fit(kind: str, X: np.ndarray, y: np.ndarray, xgb_params: dict[str, Any], rounds: int) -> Any:
    if kind == "logistic":
        return fit_logistic(X, y)
    if kind == "xgb":
        import xgboost as xgb

        d = xgb.DMatrix(X, label=y, missing=np.nan)
        return xgb.train(xgb_params, d, num_boost_round=rounds)
    raise ValueError(f"meta kind {kind!r} cannot be fitted directly (known: {', '.join(CANDIDATES)})")


def predict(model: Any, X: np.ndarray) -> np.ndarray:
    if isinstance(model, dict):
        return predict_logistic(model, X)
    if hasattr(model, "inplace_predict"):
        return np.asarray(model.inplace_predict(np.asarray(X, dtype=np.float64), missing=np.nan), np.float64)
    # a kaizen Forest (compiled): float32 input like Booster.predict
    return np.asarray(model.predict(np.ascontiguousarray(X, dtype=np.float32)), np.float64).ravel()


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
